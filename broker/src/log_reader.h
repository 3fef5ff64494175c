#pragma once
// Reads a partition's committed batches for Fetch: partition state and index entries through the
// index cache (ctx.index), batch bytes through the read cache (ctx.cache), base offsets patched.
// Blocking: run on the blocking pool.
#include <cstdint>
#include <string>
#include <vector>

#include "broker_context.h"

namespace sh::broker {

// A run of whole batches inside one shared read-cache buffer, sent without copying. When
// `patch` is set, the first batch's baseOffset field (its first 8 bytes) must be sent as
// `base_offset` instead of the stored value (the base offset is not covered by the CRC); the
// run then holds exactly that one batch.
struct record_chunk {
  storage::shared_bytes owner;  // keeps `data` alive
  const uint8_t* data = nullptr;
  size_t size = 0;
  bool patch = false;
  int64_t base_offset = 0;
};

struct partition_chunks {
  kafka::error_code error = kafka::error_code::none;
  int64_t high_watermark = -1;
  int64_t log_start_offset = -1;
  std::vector<record_chunk> chunks;  // whole magic-2 batches, in offset order
  size_t bytes = 0;                  // sum of the chunks' sizes
};

struct partition_read {
  kafka::error_code error = kafka::error_code::none;
  int64_t high_watermark = -1;
  int64_t log_start_offset = -1;
  std::vector<uint8_t> records;  // whole magic-2 batches with real base offsets
};

// The Kafka error for a failed partition lookup in the metadata store.
inline kafka::error_code partition_lookup_error(metadata::errc code) {
  return code == metadata::errc::not_found ? kafka::error_code::unknown_topic_or_partition
                                           : kafka::error_code::kafka_storage_error;
}

// Batches from the one containing `fetch_offset`, up to `max_bytes` (but at least one batch
// when `at_least_one`), never past the high watermark, as views into the read cache.
partition_chunks read_partition_chunks(broker_context& ctx, const std::string& topic,
                                       int32_t partition, int64_t fetch_offset, int64_t max_bytes,
                                       bool at_least_one);
// The same, copied into one buffer with the base offsets patched.
partition_read read_partition(broker_context& ctx, const std::string& topic, int32_t partition,
                              int64_t fetch_offset, int64_t max_bytes, bool at_least_one);
// Appends the chunks' bytes (patched) to `out`.
void append_chunks(const std::vector<record_chunk>& chunks, std::vector<uint8_t>& out);

// Walks the batches in `range` (a committed index entry's bytes, in order) computing their base
// offsets from `base_offset`; calls fn(batch_bytes, batch_base, batch_last) until it returns
// false. The bytes are not modified (they may be shared with the read cache): whoever copies a
// batch out patches its baseOffset. Returns false if the bytes are not whole batches.
template <class Fn>
bool for_each_batch_in_range(std::span<const uint8_t> range, int64_t base_offset, Fn&& fn);
// Writes a batch's baseOffset field (not covered by its CRC).
void patch_base_offset(uint8_t* batch, int64_t base_offset);
// The baseOffset stored in a batch's first 8 bytes.
int64_t stored_base_offset(const uint8_t* batch);

}  // namespace sh::broker

#include "log_reader_inl.h"
