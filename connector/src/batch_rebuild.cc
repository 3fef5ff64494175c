#include "batch_rebuild.h"

#include <algorithm>
#include <climits>

namespace sh::connector {

std::vector<rebuilt_batch> rebuild_batches(std::span<const source_record> records,
                                           size_t batch_max_bytes, int compression) {
  std::vector<rebuilt_batch> out;
  if (records.empty()) return out;
  size_t i = 0;
  int64_t batch_base = records.front().offset;
  while (i < records.size()) {
    const source_record& first = records[i];
    std::vector<kafka::record_spec> specs;
    size_t bytes = 0;
    int64_t max_ts = first.timestamp;
    size_t j = i;
    for (; j < records.size(); ++j) {
      const source_record& r = records[j];
      if (j > i) {
        if (r.log_append_time != first.log_append_time) break;
        if (r.log_append_time && r.timestamp != first.timestamp) break;
        if (bytes + r.size > batch_max_bytes) break;
      }
      // Offset deltas are int32: a gap that large (impossible in practice) ends the batch.
      if (r.offset - batch_base > INT32_MAX / 2) {
        if (j > i) break;
        batch_base = r.offset;  // lone record: start the batch at it (a gap between ranges)
      }
      kafka::record_spec spec;
      spec.key = r.key;
      spec.value = r.value;
      spec.headers = r.headers;
      spec.timestamp_delta = r.log_append_time ? 0 : r.timestamp - first.timestamp;
      spec.offset_delta = static_cast<int32_t>(r.offset - batch_base);
      max_ts = std::max(max_ts, r.timestamp);
      bytes += r.size;
      specs.push_back(std::move(spec));
    }
    kafka::batch_build_options opt;
    opt.base_offset = batch_base;
    opt.attributes = static_cast<int16_t>(compression | (first.log_append_time ? 0x8 : 0));
    opt.base_timestamp = first.timestamp;
    opt.max_timestamp = max_ts;
    const int32_t last_delta = static_cast<int32_t>(records[j - 1].offset - batch_base);
    opt.last_offset_delta = last_delta;
    rebuilt_batch b;
    b.bytes = kafka::build_batch(opt, specs);
    b.offset_count = last_delta + 1;
    b.max_timestamp = max_ts;
    b.first_timestamp = first.timestamp;
    out.push_back(std::move(b));
    batch_base = records[j - 1].offset + 1;
    i = j;
  }
  return out;
}

}  // namespace sh::connector
