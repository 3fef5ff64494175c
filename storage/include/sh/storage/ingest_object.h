#pragma once
// Ingest objects: what a broker PUTs on each flush. Kafka record batches of many partitions,
// grouped by partition, then a protobuf footer (streamhouse.storage.v1.IngestFooter) listing the
// partition ranges, then a fixed 16-byte trailer. Byte layout: docs/storage-format.md.
//
// Base offsets are not written here: the metadata commit assigns them, and the read path patches
// them into the batches it serves.
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sh/storage/aligned_buffer.h"
#include "sh/storage/object_store.h"

namespace sh::storage {

inline constexpr uint32_t ingest_format_version = 1;
// [u32 LE footer length][u32 LE CRC32C of the footer]["SHINGST1"]
inline constexpr size_t ingest_trailer_size = 16;
inline constexpr char ingest_magic[9] = "SHINGST1";

struct ingest_batch_meta {
  int32_t offset_count;  // lastOffsetDelta + 1
  int64_t max_timestamp;
  int64_t first_timestamp;
};

struct ingest_range {
  std::string topic;
  int32_t partition = 0;
  uint64_t offset = 0;  // of the range's first byte, from the start of the object
  uint64_t length = 0;
  uint32_t batch_count = 0;
  int64_t offset_count = 0;   // sum of the batches' lastOffsetDelta + 1
  int64_t min_timestamp = 0;  // min of the batches' first_timestamp
  int64_t max_timestamp = 0;  // max of the batches' max_timestamp
  uint32_t crc32c = 0;        // of the range's bytes
};

// Where one batch landed in the finished object.
struct batch_location {
  uint64_t offset = 0;  // from the start of the object
  uint64_t length = 0;
};

// Collects batches for one ingest object. Not thread-safe: one owner at a time (the broker's
// flusher hands a full builder off and starts a new one).
//
// The batch bytes are copied once on the way into the object: add() copies a batch into the
// builder (and finish() once more into the object); add_view() only remembers where the bytes
// are, and finish() / finish_into() copy them straight into the object.
class ingest_object_builder {
 public:
  explicit ingest_object_builder(std::string writer_id);

  // Appends one batch (its bytes are copied) to the partition's group and returns its index
  // within that group. Batches of a group keep the order they were added in. The batch is
  // stored verbatim; validating it is the caller's job.
  uint32_t add(const std::string& topic, int32_t partition, std::span<const uint8_t> batch,
               const ingest_batch_meta& meta);
  // The same without the copy: `batch` must stay valid and unchanged until finish() or
  // finish_into() returns (or the builder is destroyed).
  uint32_t add_view(const std::string& topic, int32_t partition, std::span<const uint8_t> batch,
                    const ingest_batch_meta& meta);

  // Batch bytes added so far (the footer, written by finish(), comes on top).
  size_t size_bytes() const { return _size; }
  bool empty() const { return _groups.empty(); }

  struct finished {
    bytes data;                        // the whole object, ready to PUT (empty from finish_into)
    std::vector<ingest_range> ranges;  // in object order, sorted by (topic, partition)
    // batches[i][j]: where batch j (as numbered by add()) of ranges[i] is in the object.
    std::vector<std::vector<batch_location>> batches;
  };
  // Builds the object (footer stamped with the current wall clock) and resets the builder.
  finished finish();
  finished finish(int64_t created_at_ms);
  // Builds the same bytes into `out` (resized to the object's size; a reused buffer keeps its
  // pages), so a store writing with O_DIRECT needs no bounce copy. The returned `data` is
  // empty; ranges and batches are as from finish(). Resets the builder.
  finished finish_into(aligned_buffer& out, int64_t created_at_ms);
  finished finish_into(aligned_buffer& out);

 private:
  // One batch: bytes owned by the group (at `owned_offset` in group::owned) or a caller's view.
  struct piece {
    const uint8_t* view = nullptr;  // null: owned
    uint64_t owned_offset = 0;
    uint64_t size = 0;
  };
  struct group {
    bytes owned;
    std::vector<piece> pieces;
    uint64_t length = 0;
    int64_t offset_count = 0;
    int64_t min_timestamp = 0;
    int64_t max_timestamp = 0;
  };
  group& group_for(const std::string& topic, int32_t partition, const ingest_batch_meta& meta);
  // Lays out the object and streams its bytes to `put` (called with consecutive spans), the
  // footer and trailer last; returns the layout. `reserve` first gets an upper bound of the
  // object's size.
  template <class Reserve, class Put>
  finished build(int64_t created_at_ms, Reserve&& reserve, Put&& put);

  std::string _writer_id;
  std::map<std::pair<std::string, int32_t>, group> _groups;
  size_t _size = 0;
};

struct ingest_footer {
  uint32_t format_version = 0;
  int64_t created_at_ms = 0;
  std::string writer_id;
  std::vector<ingest_range> ranges;
};

// Decodes the footer from the object's last bytes (or the whole object). `object_tail_or_whole`
// must be the final bytes of an object of `object_size` bytes and hold at least the footer and
// trailer (ingest_tail_size() says how many that is). A damaged or truncated object is
// errc::corrupt with a message naming the problem; a newer format_version is errc::unsupported;
// too short a tail is errc::invalid_argument. Every returned range lies inside the object's
// data area, so a reader may fetch it without further bounds checks.
sresult<ingest_footer> parse_ingest_footer(std::span<const uint8_t> object_tail_or_whole,
                                           uint64_t object_size);
sresult<std::vector<ingest_range>> read_ingest_footer(std::span<const uint8_t> object_tail_or_whole,
                                                      uint64_t object_size);

// From at least the last ingest_trailer_size bytes of an object: how many bytes from its end
// hold footer + trailer. Lets a reader fetch a guessed tail, then the rest if the guess was
// short.
sresult<uint64_t> ingest_tail_size(std::span<const uint8_t> object_tail, uint64_t object_size);

// head + ranged GETs of the tail (usually one) + parse.
sresult<ingest_footer> read_ingest_footer(object_store& store, const std::string& key);

// CRC32C check of a range's bytes as fetched; errc::corrupt names the range on a mismatch.
sresult<void> verify_range(std::span<const uint8_t> range_bytes, const ingest_range& range);

// "<prefix>/ingest/<writer_id>/<sequence, 20 digits>.ing" ("ingest/..." for an empty prefix;
// trailing '/' on the prefix is ignored). Zero-padding makes key order sequence order.
// writer_id must be a single key segment (no '/').
std::string ingest_object_key(const std::string& prefix, const std::string& writer_id,
                              uint64_t sequence);

}  // namespace sh::storage
