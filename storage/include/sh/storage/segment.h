#pragma once
// Segments: one partition's Kafka record batches with their real offsets, in offset order, plus
// a protobuf footer (streamhouse.storage.v1.SegmentFooter) with offsets, timestamps, counts, a
// checksum and a sparse index, then the 16-byte trailer. Written by compaction, read by the
// fetch path and by readers with nothing but object storage. Byte layout: docs/storage-format.md.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sh/storage/object_store.h"

namespace sh::storage {

inline constexpr uint32_t segment_format_version = 1;
inline constexpr char segment_magic[9] = "SHSEGMT1";
inline constexpr uint32_t default_segment_index_interval = 64 * 1024;

// Kafka magic-2 record batch header, the fields a segment reads (big-endian on the wire):
// baseOffset i64 @0, batchLength i32 @8, magic i8 @16, lastOffsetDelta i32 @23,
// baseTimestamp i64 @27, maxTimestamp i64 @35, recordCount i32 @57.
inline constexpr size_t batch_header_size = 61;

struct segment_index_entry {
  int64_t offset = 0;         // baseOffset of the batch at `position`
  uint64_t position = 0;      // in the segment
  int64_t max_timestamp = 0;  // running maximum up to and including that batch
};

struct segment_info {
  uint32_t format_version = 0;
  int64_t created_at_ms = 0;
  std::string writer_id;
  std::string topic;
  int32_t partition = 0;
  int64_t base_offset = 0;
  int64_t last_offset = 0;
  int64_t min_timestamp = 0;
  int64_t max_timestamp = 0;
  int64_t record_count = 0;
  uint32_t batch_count = 0;
  uint64_t data_length = 0;
  uint32_t data_crc32c = 0;
  uint32_t index_interval = 0;
  std::vector<segment_index_entry> index;

  // Where to start reading batches to find `offset`: the position of the last indexed batch
  // whose baseOffset <= offset (0 when offset is before the segment). Scan forward from there;
  // the batch holding the offset starts before the next index entry.
  uint64_t position_for_offset(int64_t offset) const;
  // Where to start reading batches to find the first batch with maxTimestamp >= ts (Kafka's
  // ListOffsets by timestamp): the last index entry whose running maximum is < ts, or 0. That
  // batch is in [start, scan_end(start)] (it may be the batch starting at scan_end(start)), or
  // absent when ts > max_timestamp.
  uint64_t position_for_timestamp(int64_t ts) const;
  // End of the scan window that starts at `position`: the next index entry, or data_length.
  uint64_t scan_end(uint64_t position) const;
};

// Builds one segment. Not thread-safe: one owner (a compaction task).
class segment_builder {
 public:
  segment_builder(std::string writer_id, std::string topic, int32_t partition,
                  uint32_t index_interval = default_segment_index_interval);

  // Appends a copy of one magic-2 batch, writing `base_offset` (its committed offset) into the
  // copy's baseOffset field, which the batch CRC does not cover. Timestamps, lastOffsetDelta and
  // recordCount come from the batch header. Offsets must increase: base_offset after the
  // previous batch's last offset (gaps are fine). invalid_argument if not, or if the bytes are
  // not one whole magic-2 batch (size, batchLength, magic); the builder is unchanged then.
  sresult<void> add(std::span<const uint8_t> batch, int64_t base_offset);

  size_t size_bytes() const { return _data.size(); }
  bool empty() const { return _batch_count == 0; }
  // Offset the next batch may start at (previous last offset + 1), if any batch was added.
  std::optional<int64_t> next_offset() const;

  struct finished {
    bytes data;
    segment_info info;
  };
  // Builds the object and resets the builder. An empty builder gives a valid empty segment
  // (no batches) that callers normally don't write.
  finished finish();
  finished finish(int64_t created_at_ms);

 private:
  std::string _writer_id;
  std::string _topic;
  int32_t _partition;
  uint32_t _index_interval;
  bytes _data;
  segment_info _info;
  uint32_t _batch_count = 0;
  uint64_t _last_indexed_position = 0;
  uint32_t _crc = 0;
};

// Decodes and checks the footer from the segment's last bytes (or all of it); like
// parse_ingest_footer: corrupt / unsupported / invalid_argument (tail too short).
sresult<segment_info> parse_segment_footer(std::span<const uint8_t> object_tail_or_whole,
                                           uint64_t object_size);
// From at least the last 16 bytes: how many bytes from the end hold footer + trailer.
sresult<uint64_t> segment_tail_size(std::span<const uint8_t> object_tail, uint64_t object_size);
// head + ranged GET(s) of the tail + parse.
sresult<segment_info> read_segment_footer(object_store& store, const std::string& key);
// CRC32C of the whole data area [0, data_length) against the footer.
sresult<void> verify_segment_data(std::span<const uint8_t> data, const segment_info& info);

// "<prefix>/topics/<topic>/<partition>/<base offset, 20 digits>.seg"
std::string segment_object_key(const std::string& prefix, const std::string& topic,
                               int32_t partition, int64_t base_offset);
struct segment_key_parts {
  std::string topic;
  int32_t partition = 0;
  int64_t base_offset = 0;
};
// Inverse of segment_object_key for keys relative to the prefix ("topics/t/0/...seg");
// nullopt for anything else.
std::optional<segment_key_parts> parse_segment_key(std::string_view key_without_prefix);

}  // namespace sh::storage
