#pragma once
// Reads a partition's committed batches for Fetch: index lookup in the metadata store, ranged
// GETs from the object store, base offsets patched in. Blocking: run on the blocking pool.
#include <cstdint>
#include <string>
#include <vector>

#include "broker_context.h"

namespace sh::broker {

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
// when `at_least_one`), never past the high watermark.
partition_read read_partition(broker_context& ctx, const std::string& topic, int32_t partition,
                              int64_t fetch_offset, int64_t max_bytes, bool at_least_one);

// Walks the batches in `range` (a committed index entry's bytes, in order) computing their base
// offsets from `base_offset`; calls fn(batch_bytes, batch_base, batch_last) until it returns
// false. The bytes are not modified (they may be shared with the read cache): whoever copies a
// batch out patches its baseOffset. Returns false if the bytes are not whole batches.
template <class Fn>
bool for_each_batch_in_range(std::span<const uint8_t> range, int64_t base_offset, Fn&& fn);
// Writes a batch's baseOffset field (not covered by its CRC).
void patch_base_offset(uint8_t* batch, int64_t base_offset);

}  // namespace sh::broker

#include "log_reader_inl.h"
