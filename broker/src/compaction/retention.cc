// Time and size retention (retention.ms / retention.bytes) over a partition's index rows.
#include <algorithm>

#include "compactor.h"

namespace sh::broker::compaction {
namespace {

bool is_segment(const std::string& key) {
  return key.size() >= 4 && key.compare(key.size() - 4, 4, ".seg") == 0;
}

// What retention removes at once: a whole segment, or one committed range in an ingest object.
struct unit {
  std::string object_key;
  bool segment = false;
  int64_t last_offset = 0;
  int64_t max_timestamp = -1;
  uint64_t bytes = 0;
};

}  // namespace

cresult<retention_outcome> apply_retention(metadata::metadata_store& meta, const std::string& topic,
                                           int32_t partition, const retention_options& options) {
  retention_outcome out;
  if (options.retention_ms < 0 && options.retention_bytes < 0) return out;
  // Size retention needs the whole partition's size; time retention only the expired prefix.
  const bool need_all = options.retention_bytes >= 0;
  std::vector<unit> units;
  uint64_t total = 0;
  int64_t from = 0;
  bool expired_prefix_done = false;
  for (;;) {
    auto rows = meta.read_index(topic, partition, from, 1000);
    if (!rows) return make_error(errc::metadata_error, rows.message());
    if (rows->empty()) break;
    for (const auto& e : *rows) {
      total += e.byte_length;
      bool seg = is_segment(e.object_key);
      if (!units.empty() && seg && units.back().segment &&
          units.back().object_key == e.object_key) {
        unit& u = units.back();
        u.last_offset = e.last_offset;
        u.max_timestamp = std::max(u.max_timestamp, e.max_timestamp);
        u.bytes += e.byte_length;
      } else {
        if (!need_all && !units.empty()) {
          // A unit is complete once the next starts: stop at the first one time keeps.
          const unit& prev = units.back();
          bool expired =
              prev.max_timestamp >= 0 && options.now_ms - prev.max_timestamp > options.retention_ms;
          if (!expired) {
            expired_prefix_done = true;
            break;
          }
        }
        units.push_back({e.object_key, seg, e.last_offset, e.max_timestamp, e.byte_length});
      }
    }
    if (expired_prefix_done) break;
    from = rows->back().last_offset + 1;
  }
  size_t remove = 0;
  uint64_t removed_bytes = 0;
  uint64_t remaining = total;
  for (const unit& u : units) {
    bool by_time = options.retention_ms >= 0 && u.max_timestamp >= 0 &&
                   options.now_ms - u.max_timestamp > options.retention_ms;
    // Kafka: delete while what stays is still at least retention.bytes.
    bool by_size = options.retention_bytes >= 0 &&
                   remaining >= u.bytes + static_cast<uint64_t>(options.retention_bytes);
    if (!by_time && !by_size) break;
    ++remove;
    remaining -= u.bytes;
    removed_bytes += u.bytes;
  }
  if (remove == 0) return out;
  int64_t new_start = units[remove - 1].last_offset + 1;
  auto moved = meta.delete_records(topic, partition, new_start);
  if (!moved) return make_error(errc::metadata_error, moved.message());
  out.applied = true;
  out.log_start_offset = *moved;
  out.units_removed = remove;
  out.bytes_removed = removed_bytes;
  return out;
}

}  // namespace sh::broker::compaction
