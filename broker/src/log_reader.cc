#include "log_reader.h"

#include <spdlog/spdlog.h>

namespace sh::broker {

partition_read read_partition(broker_context& ctx, const std::string& topic, int32_t partition,
                              int64_t fetch_offset, int64_t max_bytes, bool at_least_one) {
  partition_read out;
  auto state = ctx.meta->get_partition(topic, partition);
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
  while (offset < state->high_watermark) {
    auto entries = ctx.meta->read_index(topic, partition, offset, 16);
    if (!entries) {
      spdlog::error("fetch {}-{}@{}: index read failed: {}", topic, partition, offset,
                    entries.message());
      out.error = kafka::error_code::kafka_storage_error;
      return out;
    }
    if (entries->empty()) break;
    for (const auto& e : *entries) {
      auto bytes = ctx.cache->get_range(e.object_key, e.byte_offset, e.byte_length);
      if (!bytes || (*bytes)->size() != e.byte_length) {
        spdlog::error("fetch {}-{}@{}: reading {} [{}+{}] failed: {}", topic, partition, offset,
                      e.object_key, e.byte_offset, e.byte_length,
                      bytes ? "short read" : bytes.message());
        out.error = kafka::error_code::kafka_storage_error;
        return out;
      }
      bool full = false;
      const bool whole = for_each_batch_in_range(
          **bytes, e.base_offset, [&](std::span<const uint8_t> batch, int64_t base, int64_t last) {
            if (last < offset) return true;
            const bool first = out.records.empty() && at_least_one;
            if (!first && static_cast<int64_t>(out.records.size() + batch.size()) > max_bytes) {
              full = true;
              return false;
            }
            const size_t at = out.records.size();
            out.records.insert(out.records.end(), batch.begin(), batch.end());
            patch_base_offset(out.records.data() + at, base);
            return true;
          });
      if (!whole) {
        spdlog::error("fetch {}-{}: object {} range [{}+{}] is not a sequence of batches", topic,
                      partition, e.object_key, e.byte_offset, e.byte_length);
        out.error = kafka::error_code::corrupt_message;
        return out;
      }
      offset = e.last_offset + 1;
      if (full) return out;
    }
  }
  return out;
}

}  // namespace sh::broker
