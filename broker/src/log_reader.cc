#include "log_reader.h"

#include <spdlog/spdlog.h>

#include "sh/metadata/index_cache.h"

namespace sh::broker {

partition_chunks read_partition_chunks(broker_context& ctx, const std::string& topic,
                                       int32_t partition, int64_t fetch_offset, int64_t max_bytes,
                                       bool at_least_one) {
  partition_chunks out;
  auto state = ctx.index->get_partition(topic, partition);
  if (state && (fetch_offset < state->log_start_offset || fetch_offset > state->high_watermark)) {
    // The cached state may lag a commit made through another broker (its notification still in
    // flight): never answer OFFSET_OUT_OF_RANGE (the client would reset its position) without
    // asking the store.
    state = ctx.index->refresh_partition(topic, partition);
  }
  if (!state) {
    out.error = partition_lookup_error(state.code());
    return out;
  }
  out.high_watermark = state->high_watermark;
  out.log_start_offset = state->log_start_offset;
  if (fetch_offset < state->log_start_offset || fetch_offset > state->high_watermark) {
    out.error = kafka::error_code::offset_out_of_range;
    return out;
  }
  int64_t offset = fetch_offset;
  bool retried = false;
  while (offset < state->high_watermark) {
    auto entries = ctx.index->read_index(topic, partition, offset, 16);
    if (!entries) {
      spdlog::error("fetch {}-{}@{}: index read failed: {}", topic, partition, offset,
                    entries.message());
      out.error = kafka::error_code::kafka_storage_error;
      return out;
    }
    if (entries->empty()) break;
    bool reread = false;
    for (const auto& e : *entries) {
      // Committed after the state we answer with: the next fetch gets it with its watermark.
      if (e.base_offset >= state->high_watermark) return out;
      auto bytes = ctx.cache->get_range(e.object_key, e.byte_offset, e.byte_length);
      if (!bytes || (*bytes)->size() != e.byte_length) {
        if (!retried) {
          // Compaction may have swapped the rows the cache holds for segment rows and collected
          // the old object: forget the partition's cached rows and look again, once.
          retried = true;
          reread = true;
          ctx.index->invalidate(topic, partition);
          break;
        }
        spdlog::error("fetch {}-{}@{}: reading {} [{}+{}] failed: {}", topic, partition, offset,
                      e.object_key, e.byte_offset, e.byte_length,
                      bytes ? "short read" : bytes.message());
        out.error = kafka::error_code::kafka_storage_error;
        return out;
      }
      const storage::shared_bytes& owner = *bytes;
      bool full = false;
      const bool whole = for_each_batch_in_range(
          *owner, e.base_offset, [&](std::span<const uint8_t> batch, int64_t base, int64_t last) {
            if (last < offset) return true;
            const bool first = out.chunks.empty() && at_least_one;
            if (!first && static_cast<int64_t>(out.bytes + batch.size()) > max_bytes) {
              full = true;
              return false;
            }
            const bool patch = stored_base_offset(batch.data()) != base;
            if (!patch && !out.chunks.empty()) {
              record_chunk& prev = out.chunks.back();
              if (!prev.patch && prev.owner == owner && prev.data + prev.size == batch.data()) {
                prev.size += batch.size();
                out.bytes += batch.size();
                return true;
              }
            }
            out.chunks.push_back(record_chunk{owner, batch.data(), batch.size(), patch, base});
            out.bytes += batch.size();
            return true;
          });
      if (!whole) {
        spdlog::error("fetch {}-{}: object {} range [{}+{}] is not a sequence of batches", topic,
                      partition, e.object_key, e.byte_offset, e.byte_length);
        out.error = kafka::error_code::corrupt_message;
        out.chunks.clear();
        out.bytes = 0;
        return out;
      }
      offset = e.last_offset + 1;
      if (full) return out;
    }
    if (reread) continue;
  }
  return out;
}

void append_chunks(const std::vector<record_chunk>& chunks, std::vector<uint8_t>& out) {
  for (const auto& c : chunks) {
    const size_t at = out.size();
    out.insert(out.end(), c.data, c.data + c.size);
    if (c.patch) patch_base_offset(out.data() + at, c.base_offset);
  }
}

partition_read read_partition(broker_context& ctx, const std::string& topic, int32_t partition,
                              int64_t fetch_offset, int64_t max_bytes, bool at_least_one) {
  auto chunks = read_partition_chunks(ctx, topic, partition, fetch_offset, max_bytes, at_least_one);
  partition_read out;
  out.error = chunks.error;
  out.high_watermark = chunks.high_watermark;
  out.log_start_offset = chunks.log_start_offset;
  out.records.reserve(chunks.bytes);
  append_chunks(chunks.chunks, out.records);
  return out;
}

}  // namespace sh::broker
