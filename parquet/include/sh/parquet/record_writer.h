#pragma once
// record_writer: writes Kafka records (topic, partition, offset, timestamp, key, value, headers)
// to one Parquet file with a fixed schema (see parquet/README.md). Written from the Parquet format
// specification; no Arrow/Thrift library. Not thread-safe: one thread uses a writer at a time.
//
// The file is written under a temporary name beside `path` and renamed to `path` by close(), so a
// crash (or a writer destroyed without close()) never leaves a partial file under the final name.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "sh/common/result.h"

namespace sh::parquet {

// Starts at 1 so that sh::result::code() of a success (errc{}) is none of the error codes.
enum class errc { io_error = 1, invalid_argument, closed };

// Stable lower-case name of a code ("io_error"), for logs and test messages.
const char* to_string(errc code) noexcept;

// {code, message}: the error type every sh::result<T, errc> carries.
using error = sh::error_info<errc>;
template <class T>
using presult = sh::result<T, errc>;

enum class codec { none, snappy, zstd };

struct writer_options {
  codec compression = codec::zstd;
  // A row group is closed once its buffered (encoded, compressed) column data reaches this size;
  // the writer holds one row group in memory.
  uint64_t row_group_bytes = 64ull << 20;
  // A data page is closed once its encoded (uncompressed) size reaches this, at a row boundary.
  uint64_t page_bytes = 1ull << 20;
};

struct header_view {
  std::string_view key;
  std::optional<std::string_view> value;  // nullopt = null value
};

struct record_row {
  std::string_view topic;
  int32_t partition;
  int64_t offset;
  int64_t timestamp_ms;
  int32_t timestamp_type;                 // 0 CreateTime, 1 LogAppendTime
  std::optional<std::string_view> key;    // nullopt = null
  std::optional<std::string_view> value;  // nullopt = null
  std::span<const header_view> headers;
};

class record_writer {
 public:
  // Creates the temporary file; errc::invalid_argument for bad options, errc::io_error when the
  // file cannot be created.
  static presult<std::unique_ptr<record_writer>> open(const std::string& path,
                                                      const writer_options& options);

  record_writer(const record_writer&) = delete;
  record_writer& operator=(const record_writer&) = delete;
  // Without a successful close() the temporary file is removed and `path` is left untouched.
  ~record_writer();

  // Copies what it needs from `row` (its views may die after the call). errc::invalid_argument
  // for a topic that is not UTF-8 or a key/value/header over 1 GiB; errc::closed after close() or
  // after an earlier I/O error.
  presult<void> append(const record_row& row);

  // Flushes the last row group, writes the footer, fsyncs and renames the file to its final name.
  // The file is complete only after a successful close(). A second call gives errc::closed.
  presult<void> close();

  uint64_t rows_written() const;

 private:
  struct impl;
  explicit record_writer(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> _impl;
};

}  // namespace sh::parquet
