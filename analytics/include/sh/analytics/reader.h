#pragma once
// archive_reader: reads a topic's records straight from the archive (object storage, plus the
// metadata store for data not compacted yet), without a broker. See analytics/README.md.
//
// Two modes:
//  - metadata mode (metadata_url set): partitions from the topic row, records from the committed
//    index (ingest ranges and segments alike), numbered exactly as the broker's fetch path
//    numbers them. Sees everything committed up to the high watermark.
//  - segment-only mode (segments_only, or no metadata_url): lists
//    "topics/<topic>/<partition>/*.seg" in the store and reads the segments' footers and batches.
//    Needs nothing but object storage; sees compacted data only.
//
// Blocking calls (object store and database I/O). One archive_reader is used by one thread.
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sh/common/result.h"
#include "sh/storage/object_store.h"

namespace sh::metadata {
class metadata_store;
}

namespace sh::analytics {

enum class errc {
  ok = 0,
  invalid_argument,  // bad option, range or URL
  not_found,         // no such topic or partition
  metadata_error,    // the metadata store failed
  storage_error,     // the object store failed
  corrupt,           // bytes in the archive are not what the index / footer says
  io_error,          // writing the output failed
};
const char* to_string(errc code) noexcept;

template <class T>
using aresult = sh::result<T, errc>;

struct source_options {
  std::string metadata_url;  // "sqlite:...", "postgresql://..."; empty: segment-only mode
  std::string storage_url;   // "file:///dir" or "s3://bucket/prefix"
  storage::s3_options s3;    // used when storage_url is s3://
  bool segments_only = false;
};

struct record_header {
  std::string_view key;
  std::optional<std::string_view> value;  // nullopt: null header value
};

// One record. Views point into the reader's buffers and are valid only during the callback.
// Keys, values and header values are raw bytes (std::string_view is binary-safe here).
struct record {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp = 0;       // ms since the epoch, as a Kafka consumer sees it
  int32_t timestamp_type = 0;  // 0 CreateTime, 1 LogAppendTime (then the batch's max timestamp)
  std::optional<std::string_view> key;    // nullopt: null key
  std::optional<std::string_view> value;  // nullopt: null value (tombstone)
  std::span<const record_header> headers;
};

// Inclusive bounds on both axes; a record is read when its offset AND its timestamp are inside.
struct read_range {
  int64_t from_offset = 0;
  int64_t to_offset = std::numeric_limits<int64_t>::max();
  int64_t from_time = std::numeric_limits<int64_t>::min();
  int64_t to_time = std::numeric_limits<int64_t>::max();
};

// What a read did, for progress lines, logs and tests of the skipping logic.
struct read_stats {
  uint64_t records = 0;           // records passed to the callback
  uint64_t batches_read = 0;      // batches whose records were iterated (decompressed)
  uint64_t batches_skipped = 0;   // batches fetched but skipped on their header (range, control)
  uint64_t bytes_fetched = 0;     // bytes read from the object store (ranges and footers)
  uint64_t ranges_fetched = 0;    // GET requests for data
  uint64_t segments_skipped = 0;  // segments never fetched: footer or index says out of range
  uint64_t index_entries_skipped = 0;  // metadata index rows never fetched (out of range)
};

struct partition_summary {
  int32_t partition = 0;
  int64_t log_start_offset = 0;  // segment-only: first segment's base offset
  int64_t high_watermark = 0;    // next offset; segment-only: last segment's last offset + 1
};

// Called for each record in offset order; return false to stop the read early (not an error).
using record_fn = std::function<bool(const record&)>;

class archive_reader {
 public:
  // Opens the object store (and the metadata store unless segment-only). Sends no request yet.
  static aresult<std::unique_ptr<archive_reader>> open(const source_options& options);
  // For tests and embedding: stores owned elsewhere (metadata may be null: segment-only).
  static std::unique_ptr<archive_reader> open(std::shared_ptr<storage::object_store> store,
                                              std::shared_ptr<metadata::metadata_store> meta);
  ~archive_reader();
  archive_reader(const archive_reader&) = delete;
  archive_reader& operator=(const archive_reader&) = delete;

  bool segments_only() const { return _meta == nullptr; }
  // The topic's partitions in ascending order. not_found when the topic is unknown (metadata
  // mode) or has no segment (segment-only mode).
  aresult<std::vector<partition_summary>> list_partitions(const std::string& topic);
  // Reads one partition's records in `range`, in offset order, calling fn for each. Control
  // batches (transaction markers) are skipped, as Kafka consumers skip them. Errors leave the
  // records already delivered delivered.
  aresult<void> read(const std::string& topic, int32_t partition, const read_range& range,
                     const record_fn& fn);
  // Totals over every read() so far.
  const read_stats& stats() const { return _stats; }

 private:
  archive_reader(std::shared_ptr<storage::object_store> store,
                 std::shared_ptr<metadata::metadata_store> meta);
  struct batch_ctx;
  aresult<void> read_indexed(const std::string& topic, int32_t partition, const read_range& range,
                             const record_fn& fn, bool& stop);
  aresult<void> read_segments(const std::string& topic, int32_t partition, const read_range& range,
                              const record_fn& fn, bool& stop);
  // Delivers the records of one whole batch (base offset already known) inside range.
  aresult<void> deliver_batch(batch_ctx& ctx, std::span<const uint8_t> batch, int64_t base_offset,
                              const record_fn& fn, bool& stop);

  std::shared_ptr<storage::object_store> _store;
  std::shared_ptr<metadata::metadata_store> _meta;
  read_stats _stats;
  std::vector<record_header> _headers;  // reused per record
};

// Inclusive-bound timestamp parsing for CLI flags: epoch milliseconds ("1700000000000") or
// ISO 8601 "YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM|-HH:MM]" (no zone: UTC).
aresult<int64_t> parse_time(std::string_view text);

}  // namespace sh::analytics
