#pragma once
// Kafka record batches (message format v2, "magic 2"): framing, CRC32C, zero-copy record
// iteration and a builder for tests and tools.
//
// A records blob (Produce's `records` field, Fetch's answer) is a sequence of batches:
//   base_offset int64 | batch_length int32 | partition_leader_epoch int32 | magic int8 |
//   crc uint32 | attributes int16 | last_offset_delta int32 | base_timestamp int64 |
//   max_timestamp int64 | producer_id int64 | producer_epoch int16 | base_sequence int32 |
//   records_count int32 | records...
// batch_length counts the bytes after itself; the CRC covers attributes..end, so base_offset
// and partition_leader_epoch can be patched without recomputing it.
//
// All functions are pure; views point into caller-owned memory and live as long as it does.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "sh/common/result.h"

namespace sh::kafka {

// CRC32C (Castagnoli). Chains: crc32c(crc32c(0, a), b) == crc32c(0, a + b). Uses SSE4.2 when
// the CPU has it, a table otherwise.
uint32_t crc32c(uint32_t crc, const uint8_t* data, size_t n) noexcept;
inline uint32_t crc32c(std::span<const uint8_t> data) noexcept {
  return crc32c(0, data.data(), data.size());
}
// The two implementations, exposed so tests can compare them.
uint32_t crc32c_portable(uint32_t crc, const uint8_t* data, size_t n) noexcept;
bool crc32c_hardware_available() noexcept;
uint32_t crc32c_hardware(uint32_t crc, const uint8_t* data, size_t n) noexcept;  // needs SSE4.2

enum class batch_errc {
  ok = 0,
  truncated,                // the blob ends inside a batch
  bad_magic,                // not magic 2 (legacy message sets are reported here too)
  bad_crc,                  // CRC32C mismatch
  bad_length,               // batch_length below the header size
  bad_record,               // a record's framing is inconsistent with the batch
  unsupported_compression,  // codec bits 5..7 (or a compressed legacy format not handled)
  corrupt_compressed,       // the codec rejected the compressed records
  decompressed_too_large,   // decompressing would exceed the caller's bound
};
const char* batch_errc_name(batch_errc e) noexcept;

enum class compression_type : int8_t { none = 0, gzip = 1, snappy = 2, lz4 = 3, zstd = 4 };
enum class timestamp_type : int8_t { create_time = 0, log_append_time = 1 };

inline constexpr size_t batch_header_size = 61;
// Bytes before batch_length's coverage starts (base_offset + batch_length).
inline constexpr size_t batch_log_overhead = 12;
inline constexpr int8_t current_magic = 2;
// Offsets of header fields inside a batch.
inline constexpr size_t batch_partition_leader_epoch_offset = 12;
inline constexpr size_t batch_magic_offset = 16;
inline constexpr size_t batch_crc_offset = 17;
inline constexpr size_t batch_attributes_offset = 21;

struct batch_header {
  int64_t base_offset = 0;
  int32_t batch_length = 0;
  int32_t partition_leader_epoch = -1;
  int8_t magic = current_magic;
  uint32_t crc = 0;
  int16_t attributes = 0;
  int32_t last_offset_delta = 0;
  int64_t base_timestamp = 0;
  int64_t max_timestamp = 0;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
  int32_t records_count = 0;

  // Low 3 bits; values 5..7 are not valid codecs (callers see unsupported_compression).
  int compression_bits() const noexcept { return attributes & 0x7; }
  compression_type compression() const noexcept {
    return static_cast<compression_type>(attributes & 0x7);
  }
  timestamp_type ts_type() const noexcept {
    return (attributes & 0x8) ? timestamp_type::log_append_time : timestamp_type::create_time;
  }
  bool is_transactional() const noexcept { return (attributes & 0x10) != 0; }
  bool is_control() const noexcept { return (attributes & 0x20) != 0; }
  bool has_delete_horizon() const noexcept { return (attributes & 0x40) != 0; }
  int64_t last_offset() const noexcept { return base_offset + last_offset_delta; }
  // Total size of the batch on the wire.
  size_t size_bytes() const noexcept {
    return batch_log_overhead + static_cast<size_t>(batch_length);
  }
  bool operator==(const batch_header&) const = default;
};

// Reads the 61-byte header (no validation beyond the size; see split_batches).
std::optional<batch_header> parse_batch_header(std::span<const uint8_t> bytes) noexcept;
// Writes the 61-byte header at the start of out (out.size() >= batch_header_size).
void write_batch_header(const batch_header& h, std::span<uint8_t> out) noexcept;

struct batch_view {
  batch_header header;
  std::span<const uint8_t> bytes;  // the whole batch, including the 12-byte offset+length prefix

  // The (possibly compressed) records section after the header.
  std::span<const uint8_t> records_bytes() const noexcept {
    return bytes.subspan(batch_header_size);
  }
};

// Splits a records blob into validated batches: each has magic 2, batch_length >= 49 that fits
// in the blob, and a correct CRC32C. Legacy magic 0/1 -> bad_magic; a trailing partial batch ->
// truncated (producers never send one). An empty blob gives no batches.
result<std::vector<batch_view>, batch_errc> split_batches(std::span<const uint8_t> records);

// CRC32C of a batch's attributes..end (what the header's crc must equal).
uint32_t compute_batch_crc(std::span<const uint8_t> batch) noexcept;
// Patches the first 8 bytes (not covered by the CRC). batch.size() must be >= 8.
void set_base_offset(std::span<uint8_t> batch, int64_t base_offset) noexcept;
// Patches partition_leader_epoch (not covered by the CRC). batch.size() must be >= 16.
void set_partition_leader_epoch(std::span<uint8_t> batch, int32_t epoch) noexcept;
// Recomputes and stores the CRC after a change to the covered bytes.
void update_batch_crc(std::span<uint8_t> batch) noexcept;

struct header_view {
  std::string_view key;
  std::optional<std::span<const uint8_t>> value;
};

struct record_view {
  int8_t attributes = 0;
  int64_t timestamp_delta = 0;
  int32_t offset_delta = 0;
  std::optional<std::span<const uint8_t>> key;
  std::optional<std::span<const uint8_t>> value;
  std::vector<header_view> headers;
};

// Default bound on one batch's decompressed records section.
inline constexpr size_t default_max_decompressed_bytes = size_t{128} << 20;

// Iterates the records of a batch. Uncompressed batches are read in place (views point into the
// batch); compressed ones are decompressed once into the reader (views point into it, so they
// live as long as the reader). Checks each record's length framing, that exactly records_count
// records fill the section, and that nothing trails them. Move-only.
class record_reader {
 public:
  // unsupported_compression for codec bits 5..7, corrupt_compressed / decompressed_too_large
  // from the codec, bad_record for a negative records_count.
  static result<record_reader, batch_errc> open(
      const batch_view& batch, size_t max_decompressed = default_max_decompressed_bytes);
  // Reads the records of an already-decompressed records section.
  record_reader(std::span<const uint8_t> records, int32_t count) noexcept
      : _data(records), _count(count) {}
  record_reader(record_reader&&) noexcept = default;
  record_reader& operator=(record_reader&&) noexcept = default;
  record_reader(const record_reader&) = delete;
  record_reader& operator=(const record_reader&) = delete;

  // Fills out and returns true, or returns false at the end or on an error (see error()).
  // out.headers is reused across calls to avoid allocations.
  bool next(record_view& out);
  batch_errc error() const noexcept { return _err; }
  int32_t records_read() const noexcept { return _read; }
  // The (decompressed) records section being read.
  std::span<const uint8_t> records_section() const noexcept { return _data; }

 private:
  std::vector<uint8_t> _owned;  // decompressed records; moving a vector keeps its buffer
  std::span<const uint8_t> _data;
  size_t _pos = 0;
  int32_t _count = 0;
  int32_t _read = 0;
  batch_errc _err = batch_errc::ok;
};

// Calls f(const record_view&) for every record of a batch (decompressing if needed). f may
// return void, or bool where false stops the iteration early (not an error).
template <class F>
result<void, batch_errc> for_each_record(const batch_view& batch, F&& f,
                                         size_t max_decompressed = default_max_decompressed_bytes) {
  auto reader = record_reader::open(batch, max_decompressed);
  if (!reader) return reader.error();
  record_view rec;
  while (reader->next(rec)) {
    if constexpr (std::is_same_v<decltype(f(rec)), bool>) {
      if (!f(rec)) return {};
    } else {
      f(rec);
    }
  }
  if (reader->error() != batch_errc::ok) {
    return make_error(reader->error(), "record " + std::to_string(reader->records_read()));
  }
  return {};
}

// --- building batches (tests, tools, legacy conversion) ---

struct record_header_spec {
  std::string key;
  std::optional<std::string> value;
};

struct record_spec {
  std::optional<std::string> key;  // binary-safe
  std::optional<std::string> value;
  std::vector<record_header_spec> headers;
  int64_t timestamp_delta = 0;
  std::optional<int32_t> offset_delta;  // default: the record's index
  int8_t attributes = 0;
};

struct batch_build_options {
  int64_t base_offset = 0;
  int32_t partition_leader_epoch = -1;
  // All bits are copied as given; compression bits 1..4 compress the records section.
  int16_t attributes = 0;
  int compression_level = 0;  // 0 = the codec's default
  int64_t base_timestamp = 0;
  std::optional<int64_t> max_timestamp;      // default: base + max timestamp_delta
  std::optional<int32_t> last_offset_delta;  // default: largest offset_delta (or 0)
  std::optional<int32_t> records_count;      // default: records.size()
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
};

// A valid magic-2 batch with a correct CRC, compressed per options.attributes. Should the codec
// fail (it can't for valid input), the batch is written uncompressed with the bits cleared.
std::vector<uint8_t> build_batch(const batch_build_options& options,
                                 const std::vector<record_spec>& records);
// Appends one record in the v2 record encoding.
void append_record(std::vector<uint8_t>& out, const record_spec& rec, int32_t offset_delta);

}  // namespace sh::kafka
