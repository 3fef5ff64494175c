#include "ingest_writer.h"

#include <spdlog/spdlog.h>

#include <random>

namespace sh::broker {
namespace {

kafka::error_code to_kafka_error(metadata::range_status s) {
  switch (s) {
    case metadata::range_status::ok:
    case metadata::range_status::duplicate_sequence:
      return kafka::error_code::none;
    case metadata::range_status::unknown_topic_or_partition:
      return kafka::error_code::unknown_topic_or_partition;
    case metadata::range_status::out_of_order_sequence:
      return kafka::error_code::out_of_order_sequence_number;
    case metadata::range_status::invalid_producer_epoch:
      return kafka::error_code::invalid_producer_epoch;
  }
  return kafka::error_code::unknown_server_error;
}

}  // namespace

ingest_writer::ingest_writer(std::shared_ptr<storage::object_store> store,
                             std::shared_ptr<metadata::metadata_store> meta, std::string writer_id,
                             int64_t flush_bytes, std::chrono::milliseconds flush_interval,
                             commit_listener on_commit)
    : _store(std::move(store)),
      _meta(std::move(meta)),
      _writer_id(std::move(writer_id)),
      _flush_bytes(flush_bytes),
      _flush_interval(flush_interval),
      _on_commit(std::move(on_commit)) {}

ingest_writer::~ingest_writer() { stop(); }

void ingest_writer::start() {
  for (size_t i = 0; i < max_inflight_puts; ++i) {
    _put_workers.emplace_back([this] { put_worker_loop(); });
  }
  _flusher = std::thread([this] { flusher_loop(); });
}

void ingest_writer::stop() {
  {
    std::lock_guard lk(_mu);
    _stopping = true;
  }
  _cv.notify_all();
  if (_flusher.joinable()) _flusher.join();
  for (auto& t : _put_workers) t.join();
  _put_workers.clear();
}

void ingest_writer::append(const std::vector<append_batch>& batches, completion done) {
  std::unique_lock lk(_mu);
  add_locked(batches, std::move(done), true, lk);
}

void ingest_writer::append_borrowed(const std::vector<append_batch>& batches, completion done) {
  std::unique_lock lk(_mu);
  add_locked(batches, std::move(done), !done, lk);
}

void ingest_writer::add_locked(const std::vector<append_batch>& batches, completion done, bool copy,
                               std::unique_lock<std::mutex>& lk) {
  if (_stopping) {
    lk.unlock();
    if (done) {
      done(std::vector<append_outcome>(batches.size(),
                                       {kafka::error_code::not_leader_or_follower, -1}));
    }
    return;
  }
  const bool was_empty = !_open;
  if (!_open) {
    _open = std::make_unique<open_object>();
    _open->first_append = std::chrono::steady_clock::now();
  }
  waiter w;
  w.done = std::move(done);
  w.slots.reserve(batches.size());
  _open->entries.reserve(_open->entries.size() + batches.size());
  for (const auto& b : batches) {
    auto [it, inserted] = _open->batches.try_emplace(partition_key{b.topic, b.partition});
    auto& commits = it->second;
    w.slots.emplace_back(it->first, static_cast<uint32_t>(commits.size()));
    commits.push_back(metadata::batch_commit{b.offset_count, b.max_timestamp, b.producer_id,
                                             b.producer_epoch, b.base_sequence});
    _open->first_timestamps[it->first].push_back(b.first_timestamp);
    std::span<const uint8_t> bytes = b.bytes;
    if (copy) bytes = _open->copies.emplace_back(b.bytes.begin(), b.bytes.end());
    _open->entries.push_back(
        entry{&it->first, bytes,
              storage::ingest_batch_meta{b.offset_count, b.max_timestamp, b.first_timestamp}});
    _open->size_bytes += bytes.size();
  }
  _open->waiters.push_back(std::move(w));
  const bool full = static_cast<int64_t>(_open->size_bytes) >= _flush_bytes;
  lk.unlock();
  if (was_empty || full) _cv.notify_all();
}

void ingest_writer::flusher_loop() {
  std::unique_lock lk(_mu);
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    const bool due = _open && (_stopping || now >= _open->first_append + _flush_interval ||
                               static_cast<int64_t>(_open->size_bytes) >= _flush_bytes);
    if (due && _inflight.size() < max_inflight_puts) {
      // Sealing is cheap (a pointer swap); a put worker builds, PUTs and commits the object.
      auto s = std::make_shared<sealed_object>();
      s->obj = std::move(_open);
      s->key = storage::ingest_object_key("", _writer_id, ++_sequence);
      s->sealed = now;
      _inflight.push_back(s);
      _to_put.push_back(std::move(s));
      _cv.notify_all();
      continue;
    }
    if (!_open && _inflight.empty() && _stopping) break;
    if (_open && !due) {
      _cv.wait_until(lk, _open->first_append + _flush_interval);
    } else {
      _cv.wait(lk);
    }
  }
  _workers_exit = true;
  _cv.notify_all();
}

void ingest_writer::put_worker_loop() {
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  std::unique_lock lk(_mu);
  for (;;) {
    _cv.wait(lk, [&] { return !_to_put.empty() || _workers_exit; });
    if (_to_put.empty()) return;
    auto s = std::move(_to_put.front());
    _to_put.pop_front();
    lk.unlock();
    const auto taken = clock::now();
    build_and_put(*s);
    const auto put_done = clock::now();
    lk.lock();
    // Commit in seal order: a later object never commits before an earlier one.
    _cv.wait(lk, [&] { return _inflight.front() == s; });
    lk.unlock();
    const auto turn = clock::now();
    commit(*s);
    const auto committed = clock::now();
    // Where produce latency goes, per object (log.level=debug).
    spdlog::debug(
        "ingest object {}: {} bytes, {} waiters; open {:.2f} ms, queued {:.2f}, build+put {:.2f} "
        "(build {:.2f}), commit turn {:.2f}, commit {:.2f}",
        s->key, s->object_size, s->obj->waiters.size(), ms(s->sealed - s->obj->first_append),
        ms(taken - s->sealed), ms(put_done - taken), ms(s->built - taken), ms(turn - put_done),
        ms(committed - turn));
    lk.lock();
    _inflight.pop_front();
    _cv.notify_all();
    lk.unlock();
    s.reset();  // the last reference: frees the object's batch lists outside the lock
    lk.lock();
  }
}

void ingest_writer::build_and_put(sealed_object& s) {
  // The one copy of the batch bytes: from the entries' views (request frames or the append()
  // copies, alive until the producers are answered) straight into this worker's page-aligned
  // buffer, grouped by partition. The buffer is reused object after object, so its pages stay
  // warm, and the local store writes it with O_DIRECT without a bounce copy.
  thread_local storage::aligned_buffer object_bytes;
  storage::ingest_object_builder builder(_writer_id);
  for (const auto& e : s.obj->entries) {
    builder.add_view(e.key->first, e.key->second, e.bytes, e.meta);
  }
  s.finished = builder.finish_into(object_bytes);
  s.object_size = object_bytes.size();
  s.built = std::chrono::steady_clock::now();
  // Retry transient store failures with exponential backoff and jitter before giving up.
  sh::result<void, storage::errc> put = _store->put(s.key, object_bytes.span());
  for (int attempt = 1; !put && attempt < 5; ++attempt) {
    spdlog::warn("ingest object {} put failed (attempt {}): {}", s.key, attempt, put.message());
    thread_local std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> jitter(0, 50 << attempt);
    std::this_thread::sleep_for(std::chrono::milliseconds((25 << attempt) + jitter(rng)));
    put = _store->put(s.key, object_bytes.span());
  }
  if (!put) spdlog::error("ingest object {} could not be stored: {}", s.key, put.message());
  s.put_ok = put.has_value();
}

void ingest_writer::commit(sealed_object& s) {
  auto& obj = s.obj;
  auto& finished = s.finished;
  const std::string& key = s.key;
  auto fail_all = [&](kafka::error_code err) {
    for (auto& w : obj->waiters) {
      if (w.done) w.done(std::vector<append_outcome>(w.slots.size(), {err, -1}));
    }
  };
  if (!s.put_ok) {
    fail_all(kafka::error_code::kafka_storage_error);
    return;
  }

  // One range_commit per run of plain batches of a partition, and one per idempotent batch:
  // the store judges producer sequences per range, so an idempotent batch (possibly a retried
  // duplicate) must not share a range with other batches. Ranges of one partition stay in
  // append order, so offsets follow append order.
  metadata::object_commit commit;
  commit.object_key = key;
  commit.object_size = s.object_size;
  // (partition, batch index) -> (range_commit index, offsets before the batch in that range)
  std::map<std::pair<partition_key, uint32_t>, std::pair<size_t, int64_t>> where;
  for (size_t i = 0; i < finished.ranges.size(); ++i) {
    const auto& r = finished.ranges[i];
    const partition_key pkey{r.topic, r.partition};
    const auto& batches = obj->batches[pkey];
    const auto& locations = finished.batches[i];
    bool previous_joinable = false;
    int64_t prefix = 0;  // offsets of the batches before this one in the current range
    for (uint32_t j = 0; j < batches.size() && j < locations.size(); ++j) {
      const auto& b = batches[j];
      const bool idempotent = b.producer_id >= 0;
      if (!previous_joinable || idempotent) {
        prefix = 0;
        metadata::range_commit rc;
        rc.topic = r.topic;
        rc.partition = r.partition;
        rc.byte_offset = locations[j].offset;
        rc.byte_length = 0;
        rc.min_timestamp = INT64_MAX;
        rc.max_timestamp = -1;
        commit.ranges.push_back(std::move(rc));
      }
      auto& rc = commit.ranges.back();
      where[{pkey, j}] = {commit.ranges.size() - 1, prefix};
      prefix += b.offset_count;
      rc.byte_length = locations[j].offset + locations[j].length - rc.byte_offset;
      rc.max_timestamp = std::max(rc.max_timestamp, b.max_timestamp);
      rc.min_timestamp = std::min(rc.min_timestamp, obj->first_timestamps[pkey][j]);
      rc.batches.push_back(b);
      previous_joinable = !idempotent;
    }
  }
  auto outcomes = _meta->commit_object(commit);
  if (!outcomes || outcomes->size() != commit.ranges.size()) {
    spdlog::error("commit of ingest object {} failed: {}", key,
                  outcomes ? "wrong number of outcomes" : outcomes.message());
    fail_all(kafka::error_code::kafka_storage_error);
    return;
  }
  if (_on_commit) _on_commit();
  for (auto& w : obj->waiters) {
    if (!w.done) continue;
    std::vector<append_outcome> out;
    out.reserve(w.slots.size());
    for (const auto& slot : w.slots) {
      auto it = where.find(slot);
      if (it == where.end()) {
        out.push_back({kafka::error_code::unknown_server_error, -1});
        continue;
      }
      const auto& outcome = (*outcomes)[it->second.first];
      const auto err = to_kafka_error(outcome.status);
      // A duplicate is answered with the original offsets (the range is that one batch).
      out.push_back(
          {err, err == kafka::error_code::none ? outcome.base_offset + it->second.second : -1});
    }
    w.done(std::move(out));
  }
}

}  // namespace sh::broker
