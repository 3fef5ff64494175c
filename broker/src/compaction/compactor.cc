#include "compactor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>

#include "../admin/topic_configs.h"
#include "../log_reader.h"
#include "sh/storage/segment.h"

namespace sh::broker::compaction {
namespace {

// A segment key ends in ".seg"; ingest objects never do.
bool is_segment_key(const std::string& key) {
  return key.size() >= 4 && key.compare(key.size() - 4, 4, ".seg") == 0;
}

// An integer config value of at least `min`, or `fallback` when empty or malformed.
int64_t int_or(const std::string& value, int64_t min, int64_t fallback) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || v < min) {
    return fallback;
  }
  return v;
}

// A topic's value in force (its own, else the broker's log.* default, else Kafka's default).
int64_t topic_int(const metadata::topic_info& t, const broker_config& cfg, const char* name,
                  int64_t min, int64_t fallback) {
  return int_or(effective_topic_config(t.configs, name, cfg), min, fallback);
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

cresult<compaction_outcome> compact_partition_once(metadata::metadata_store& meta,
                                                   storage::object_store& objects,
                                                   const std::string& topic, int32_t partition,
                                                   const metadata::lease_fence& fence,
                                                   const compaction_options& options) {
  compaction_outcome out;
  // Rows in offset order; skip the ones already in segments, then take the contiguous run of
  // ingest rows after them.
  int64_t from = std::max<int64_t>(0, options.scan_from);
  std::vector<metadata::index_entry> run;
  uint64_t run_bytes = 0;
  for (;;) {
    auto rows = meta.read_index(topic, partition, from, 1000);
    if (!rows) return make_error(errc::metadata_error, rows.message());
    if (rows->empty()) break;
    bool stop = false;
    for (auto& e : *rows) {
      if (is_segment_key(e.object_key)) {
        if (!run.empty()) {
          stop = true;
          break;
        }
        continue;
      }
      if (!run.empty() && e.base_offset != run.back().last_offset + 1) {
        stop = true;
        break;
      }
      run_bytes += e.byte_length;
      run.push_back(std::move(e));
      if (run_bytes >= options.segment_bytes) {
        stop = true;
        break;
      }
    }
    if (stop) break;
    from = rows->back().last_offset + 1;
  }
  out.next_scan_from = run.empty() ? from : run.front().base_offset;
  if (run.empty()) return out;
  bool old_enough = run.front().max_timestamp >= 0 &&
                    options.now_ms - run.front().max_timestamp >= options.segment_ms;
  if (run_bytes < options.segment_bytes && !old_enough) return out;

  storage::segment_builder builder(options.writer_id, topic, partition);
  std::vector<metadata::index_entry> entries;
  metadata::index_entry chunk;  // the new row being filled
  uint64_t chunk_start = 0;
  auto close_chunk = [&] {
    if (chunk.record_count == 0) return;
    chunk.byte_offset = chunk_start;
    chunk.byte_length = builder.size_bytes() - chunk_start;
    entries.push_back(chunk);
    chunk = {};
    chunk_start = builder.size_bytes();
  };
  for (const auto& e : run) {
    out.input_bytes += e.byte_length;
    auto data = objects.get_range(e.object_key, e.byte_offset, e.byte_length);
    if (!data) return make_error(errc::storage_error, data.message());
    if (data->size() != e.byte_length) {
      return make_error(errc::storage_error, "short read of " + e.object_key);
    }
    std::string failure;
    bool whole =
        for_each_batch_in_range(std::span<const uint8_t>(*data), e.base_offset,
                                [&](std::span<const uint8_t> batch, int64_t base, int64_t last) {
                                  std::optional<std::vector<uint8_t>> rewritten;
                                  if (options.recompress_codec >= 0) {
                                    rewritten = recompress_batch(batch, options.recompress_codec);
                                    if (rewritten) {
                                      batch = *rewritten;
                                      ++out.batches_recompressed;
                                    }
                                  }
                                  ++out.batches;
                                  auto added = builder.add(batch, base);
                                  if (!added) {
                                    failure = added.message();
                                    return false;
                                  }
                                  if (chunk.record_count == 0) chunk.base_offset = base;
                                  chunk.last_offset = last;
                                  chunk.record_count += last - base + 1;
                                  // The batch's maxTimestamp (big-endian at byte 35) keeps the
                                  // row's max exact.
                                  constexpr size_t max_timestamp_at = 35;
                                  uint64_t ts_bits = 0;
                                  for (size_t i = 0; i < 8; ++i)
                                    ts_bits = (ts_bits << 8) | batch[max_timestamp_at + i];
                                  auto ts = static_cast<int64_t>(ts_bits);
                                  chunk.max_timestamp = std::max(chunk.max_timestamp, ts);
                                  if (builder.size_bytes() - chunk_start >= options.index_row_bytes)
                                    close_chunk();
                                  return true;
                                });
    if (!whole || !failure.empty()) {
      return make_error(errc::corrupt, "bad batches in " + e.object_key + " at " +
                                           std::to_string(e.byte_offset) + ": " + failure);
    }
  }
  close_chunk();
  if (entries.empty() || entries.front().base_offset != run.front().base_offset ||
      entries.back().last_offset != run.back().last_offset) {
    return make_error(errc::corrupt, "batches do not cover the committed offsets");
  }
  auto finished = builder.finish(options.now_ms);
  std::string key =
      storage::segment_object_key(options.prefix, topic, partition, run.front().base_offset);
  auto put = objects.put(key, finished.data);
  if (!put) return make_error(errc::storage_error, put.message());
  for (auto& e : entries) e.object_key = key;
  if (options.before_swap && !options.before_swap(key)) {
    out.segment_key = key;  // "crashed": the segment is left behind unregistered
    return out;
  }

  metadata::segment_replacement swap;
  swap.topic = topic;
  swap.partition = partition;
  swap.segment_key = key;
  swap.segment_size = finished.data.size();
  swap.first_offset = run.front().base_offset;
  swap.last_offset = run.back().last_offset;
  swap.replaced = run;
  swap.entries = std::move(entries);
  swap.fence = fence;
  auto swapped = meta.replace_with_segment(swap);
  if (!swapped) {
    // The index row that would reference it never existed: delete the orphan now (best effort;
    // should this fail too, the orphan sweep removes it later).
    (void)objects.remove(key);
    return make_error(errc::metadata_error, swapped.message());
  }
  out.compacted = true;
  out.segment_key = key;
  out.first_offset = swap.first_offset;
  out.last_offset = swap.last_offset;
  out.replaced_rows = run.size();
  out.segment_size = swap.segment_size;
  out.next_scan_from = swap.last_offset + 1;
  return out;
}

cresult<size_t> collect_garbage(metadata::metadata_store& meta, storage::object_store& objects,
                                int64_t now_ms, int64_t grace_ms, size_t max_objects) {
  auto due = meta.list_unreferenced_objects(now_ms - grace_ms, max_objects);
  if (!due) return make_error(errc::metadata_error, due.message());
  size_t removed = 0;
  for (const auto& o : *due) {
    auto gone = objects.remove(o.object_key);
    // Already gone: an earlier sweep deleted it and crashed before forgetting it.
    if (!gone && gone.error().code != storage::errc::not_found)
      return make_error(errc::storage_error, gone.message());
    auto forgot = meta.forget_object(o.object_key);
    if (!forgot) return make_error(errc::metadata_error, forgot.message());
    ++removed;
  }
  return removed;
}

compactor_options make_compactor_options(const broker_config& cfg, std::string owner) {
  compactor_options o;
  o.owner = std::move(owner);
  auto key = [&](const char* name) {
    auto it = cfg.raw.find(name);
    return it == cfg.raw.end() ? std::string() : it->second;
  };
  o.pass_interval_ms = int_or(key("compaction.interval.ms"), 1, o.pass_interval_ms);
  o.gc_grace_ms = int_or(key("object.gc.grace.ms"), 0, o.gc_grace_ms);
  o.sweep_interval_ms = int_or(key("object.sweep.interval.ms"), 1, o.sweep_interval_ms);
  o.lease_ttl_ms = int_or(key("compaction.lease.ms"), 1, o.lease_ttl_ms);
  o.broker = cfg;
  return o;
}

compactor::compactor(std::shared_ptr<metadata::metadata_store> meta,
                     std::shared_ptr<storage::object_store> objects, compactor_options options)
    : _meta(std::move(meta)),
      _objects(std::move(objects)),
      _options(std::move(options)),
      _sweeper({_options.prefix, _options.owner, _options.gc_grace_ms, _options.lease_ttl_ms}) {}

compactor::~compactor() { stop(); }

void compactor::start() {
  {
    std::lock_guard lock(_mu);
    _stop = false;
  }
  if (!_thread.joinable()) _thread = std::thread([this] { loop(); });
}

void compactor::stop() {
  {
    std::lock_guard lock(_mu);
    _stop = true;
  }
  _cv.notify_all();
  if (_thread.joinable()) _thread.join();
  // A clean stop hands the partitions over at once; a crash leaves them to lease expiry.
  for (const auto& [name, epoch] : _held) {
    if (auto r = _meta->release_lease(name, _options.owner, epoch); !r) {
      spdlog::debug("compaction: releasing {}: {}", name, r.message());
    }
  }
  _held.clear();
}

bool compactor::stopping() {
  std::lock_guard lock(_mu);
  return _stop;
}

void compactor::loop() {
  for (;;) {
    {
      std::unique_lock lock(_mu);
      _cv.wait_for(lock, std::chrono::milliseconds(_options.pass_interval_ms),
                   [this] { return _stop; });
      if (_stop) return;
    }
    run_pass();
  }
}

void compactor::run_pass() {
  auto topics = _meta->list_topics();
  if (!topics) {
    spdlog::warn("compaction: cannot list topics: {}", topics.message());
    return;
  }
  for (const auto& t : *topics) {
    for (int32_t p = 0; p < t.partition_count; ++p) {
      if (stopping()) return;
      run_partition(t, p);
    }
  }
  auto gc = collect_garbage(*_meta, *_objects, wall_ms(), _options.gc_grace_ms);
  if (!gc) {
    spdlog::warn("object garbage collection: {}", gc.message());
  } else if (*gc > 0) {
    spdlog::info("object garbage collection: deleted {} unreferenced objects", *gc);
  }
  int64_t now = wall_ms();
  if (now - _last_sweep_ms >= _options.sweep_interval_ms && !stopping()) {
    // One broker at a time lists the bucket.
    auto held = _meta->acquire_lease("sweep/objects", _options.owner, _options.lease_ttl_ms);
    if (held && held->owner == _options.owner) {
      _held[held->name] = held->epoch;
      _last_sweep_ms = now;
      auto swept = _sweeper.sweep(*_meta, *_objects, now);
      if (!swept) {
        spdlog::warn("orphan sweep: {}", swept.message());
      } else if (swept->unregistered > 0) {
        spdlog::info("orphan sweep: {} objects listed, {} unregistered, {} deleted", swept->listed,
                     swept->unregistered, swept->deleted);
      }
    }
  }
}

void compactor::run_partition(const metadata::topic_info& t, int32_t p) {
  const broker_config& cfg = _options.broker;
  std::string name = "compact/" + t.name + "/" + std::to_string(p);
  auto held = _meta->acquire_lease(name, _options.owner, _options.lease_ttl_ms);
  if (!held) {
    spdlog::warn("compaction: lease {}: {}", name, held.message());
    return;
  }
  if (held->owner != _options.owner) {  // another broker compacts it
    _held.erase(name);
    return;
  }
  _held[name] = held->epoch;
  metadata::lease_fence fence{held->name, held->epoch};

  // Retention first: no point compacting what is about to go.
  retention_options ret;
  ret.retention_ms = topic_int(t, cfg, "retention.ms", -1, -1);
  ret.retention_bytes = topic_int(t, cfg, "retention.bytes", -1, -1);
  ret.now_ms = wall_ms();
  auto retained = apply_retention(*_meta, t.name, p, ret);
  if (!retained) {
    spdlog::warn("retention of {}-{}: {}", t.name, p, retained.message());
  } else if (retained->applied) {
    if (_options.on_partition_changed) _options.on_partition_changed(t.name, p);
    spdlog::info("retention of {}-{}: removed {} units ({} bytes), log start offset now {}", t.name,
                 p, retained->units_removed, retained->bytes_removed, retained->log_start_offset);
  }

  compaction_options opts;
  opts.prefix = _options.prefix;
  opts.writer_id = _options.owner;
  opts.segment_bytes = static_cast<uint64_t>(topic_int(t, cfg, "segment.bytes", 1, 134217728));
  opts.segment_ms = topic_int(t, cfg, "segment.ms", 1, 600000);
  opts.recompress_codec =
      segment_codec(effective_topic_config(t.configs, "compression.type", cfg),
                    effective_topic_config(t.configs, "archive.compression.type", cfg));
  // Where the rows still in ingest objects start (rows only ever move into segments or go),
  // so a long partition is not rescanned from offset 0 every round. Keyed by topic id: a
  // re-created topic starts again at 0.
  std::string hint_key(reinterpret_cast<const char*>(t.id.data()), t.id.size());
  hint_key += "/" + std::to_string(p);
  // Several segments per pass when the backlog is large.
  for (int round = 0; round < 16 && !stopping(); ++round) {
    opts.now_ms = wall_ms();
    opts.scan_from = _scan_from[hint_key];
    auto done = compact_partition_once(*_meta, *_objects, t.name, p, fence, opts);
    if (done) _scan_from[hint_key] = done->next_scan_from;
    if (!done) {
      spdlog::warn("compaction of {}-{}: {}", t.name, p, done.message());
      break;
    }
    if (!done->compacted) break;
    if (_options.on_partition_changed) _options.on_partition_changed(t.name, p);
    spdlog::info(
        "compacted {}-{} offsets {}..{} ({} rows, {} bytes, {} of {} batches re-compressed) into "
        "{} ({} bytes)",
        t.name, p, done->first_offset, done->last_offset, done->replaced_rows, done->input_bytes,
        done->batches_recompressed, done->batches, done->segment_key, done->segment_size);
  }
}

}  // namespace sh::broker::compaction
