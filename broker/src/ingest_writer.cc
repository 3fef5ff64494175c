#include "ingest_writer.h"

#include <spdlog/spdlog.h>

#include <random>

namespace sh::broker {
namespace {

using partition_key = std::pair<std::string, int32_t>;

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
  _flusher = std::thread([this] { flusher_loop(); });
}

void ingest_writer::stop() {
  {
    std::lock_guard lk(_mu);
    _stopping = true;
  }
  _cv.notify_all();
  if (_flusher.joinable()) _flusher.join();
}

void ingest_writer::append(const std::vector<append_batch>& batches, completion done) {
  std::unique_lock lk(_mu);
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
    _open = std::make_unique<open_object>(_writer_id);
    _open->first_append = std::chrono::steady_clock::now();
  }
  waiter w;
  w.done = std::move(done);
  for (const auto& b : batches) {
    partition_key key{b.topic, b.partition};
    _open->builder.add(
        b.topic, b.partition, b.bytes,
        storage::ingest_batch_meta{b.offset_count, b.max_timestamp, b.first_timestamp});
    int64_t& prefix = _open->offsets_in_range[key];
    w.slots.emplace_back(key, prefix);
    prefix += b.offset_count;
    _open->batches[key].push_back(metadata::batch_commit{
        b.offset_count, b.max_timestamp, b.producer_id, b.producer_epoch, b.base_sequence});
  }
  _open->waiters.push_back(std::move(w));
  const bool full = static_cast<int64_t>(_open->builder.size_bytes()) >= _flush_bytes;
  lk.unlock();
  if (was_empty || full) _cv.notify_all();
}

void ingest_writer::flusher_loop() {
  std::unique_lock lk(_mu);
  for (;;) {
    if (!_open) {
      if (_stopping) return;
      _cv.wait(lk);
      continue;
    }
    const auto deadline = _open->first_append + _flush_interval;
    const bool full = static_cast<int64_t>(_open->builder.size_bytes()) >= _flush_bytes;
    if (!full && !_stopping && std::chrono::steady_clock::now() < deadline) {
      _cv.wait_until(lk, deadline);
      continue;
    }
    auto obj = std::move(_open);
    lk.unlock();
    flush(std::move(obj));
    lk.lock();
  }
}

void ingest_writer::flush(std::unique_ptr<open_object> obj) {
  auto finished = obj->builder.finish();
  const std::string key = storage::ingest_object_key("", _writer_id, ++_sequence);

  auto fail_all = [&](kafka::error_code err) {
    for (auto& w : obj->waiters) {
      if (w.done) w.done(std::vector<append_outcome>(w.slots.size(), {err, -1}));
    }
  };

  // Retry transient store failures with exponential backoff and jitter before giving up.
  std::mt19937 rng(std::random_device{}());
  sh::result<void, storage::errc> put = _store->put(key, finished.data);
  for (int attempt = 1; !put && attempt < 5; ++attempt) {
    spdlog::warn("ingest object {} put failed (attempt {}): {}", key, attempt, put.message());
    std::uniform_int_distribution<int> jitter(0, 50 << attempt);
    std::this_thread::sleep_for(std::chrono::milliseconds((25 << attempt) + jitter(rng)));
    put = _store->put(key, finished.data);
  }
  if (!put) {
    spdlog::error("ingest object {} could not be stored: {}", key, put.message());
    fail_all(kafka::error_code::kafka_storage_error);
    return;
  }

  metadata::object_commit commit;
  commit.object_key = key;
  commit.object_size = finished.data.size();
  for (const auto& r : finished.ranges) {
    metadata::range_commit rc;
    rc.topic = r.topic;
    rc.partition = r.partition;
    rc.byte_offset = r.offset;
    rc.byte_length = r.length;
    rc.min_timestamp = r.min_timestamp;
    rc.max_timestamp = r.max_timestamp;
    rc.batches = std::move(obj->batches[{r.topic, r.partition}]);
    commit.ranges.push_back(std::move(rc));
  }
  auto outcomes = _meta->commit_object(commit);
  if (!outcomes) {
    spdlog::error("commit of ingest object {} failed: {}", key, outcomes.message());
    fail_all(kafka::error_code::kafka_storage_error);
    return;
  }
  std::map<partition_key, metadata::range_outcome> by_partition;
  for (size_t i = 0; i < commit.ranges.size() && i < outcomes->size(); ++i) {
    by_partition[{commit.ranges[i].topic, commit.ranges[i].partition}] = (*outcomes)[i];
  }
  if (_on_commit) _on_commit();
  for (auto& w : obj->waiters) {
    if (!w.done) continue;
    std::vector<append_outcome> out;
    out.reserve(w.slots.size());
    for (const auto& [pkey, prefix] : w.slots) {
      auto it = by_partition.find(pkey);
      if (it == by_partition.end()) {
        out.push_back({kafka::error_code::unknown_server_error, -1});
        continue;
      }
      const auto err = to_kafka_error(it->second.status);
      out.push_back({err, err == kafka::error_code::none ? it->second.base_offset + prefix : -1});
    }
    w.done(std::move(out));
  }
}

}  // namespace sh::broker
