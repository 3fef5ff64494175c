#pragma once
// The broker's open ingest object (design.md "Write path"): produce appends validated batches,
// a flusher thread PUTs the object when it reaches ingest.flush.bytes or ingest.flush.ms, then
// commits it in ONE metadata transaction, then completes the waiting producers in append order.
//
// Thread-safe. Up to `max_inflight_puts` sealed objects are PUT concurrently (object stores
// reward parallel PUTs), but objects commit strictly in the order they were sealed, so batches
// appended in order to one partition get increasing offsets.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "sh/kafka/errors.h"
#include "sh/metadata/metadata_store.h"
#include "sh/storage/ingest_object.h"
#include "sh/storage/object_store.h"

namespace sh::broker {

struct append_batch {
  std::string topic;
  int32_t partition = 0;
  std::span<const uint8_t> bytes;  // one magic-2 batch, copied by append
  int32_t offset_count = 0;        // lastOffsetDelta + 1
  int64_t first_timestamp = -1;
  int64_t max_timestamp = -1;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
};

struct append_outcome {
  kafka::error_code error = kafka::error_code::none;
  int64_t base_offset = -1;
};

class ingest_writer {
 public:
  // Called on the flusher thread once the object holding the batches committed (or failed);
  // outcomes are in the order of the appended batches.
  using completion = std::function<void(std::vector<append_outcome>)>;
  // Called after every successful commit (for fetch long-poll wake-ups).
  using commit_listener = std::function<void()>;

  ingest_writer(std::shared_ptr<storage::object_store> store,
                std::shared_ptr<metadata::metadata_store> meta, std::string writer_id,
                int64_t flush_bytes, std::chrono::milliseconds flush_interval,
                commit_listener on_commit);
  ~ingest_writer();
  ingest_writer(const ingest_writer&) = delete;
  ingest_writer& operator=(const ingest_writer&) = delete;

  void start();
  // Flushes and commits what is buffered, completes every waiter, stops the flusher.
  void stop();

  // Appends all batches to the open object atomically (a request never spans two objects).
  // `done` may be empty (acks=0).
  void append(const std::vector<append_batch>& batches, completion done);

 private:
  using partition_key = std::pair<std::string, int32_t>;
  struct waiter {
    // Per batch: its partition and its index among that partition's batches in the object.
    std::vector<std::pair<partition_key, uint32_t>> slots;
    completion done;
  };
  struct open_object {
    storage::ingest_object_builder builder;
    // Per partition, in append order (the builder keeps the same order).
    std::map<partition_key, std::vector<metadata::batch_commit>> batches;
    std::map<partition_key, std::vector<int64_t>> first_timestamps;  // parallel to batches
    std::vector<waiter> waiters;
    std::chrono::steady_clock::time_point first_append;
    explicit open_object(const std::string& writer_id) : builder(writer_id) {}
  };

  // A sealed object: its bytes, key and the result of its PUT (set by the PUT thread).
  struct sealed_object {
    std::unique_ptr<open_object> obj;
    storage::ingest_object_builder::finished finished;
    std::string key;
    bool put_done = false;
    bool put_ok = false;
  };

  void flusher_loop();
  void put_object(sealed_object& s);
  void commit(sealed_object& s);

  std::shared_ptr<storage::object_store> _store;
  std::shared_ptr<metadata::metadata_store> _meta;
  std::string _writer_id;
  int64_t _flush_bytes;
  std::chrono::milliseconds _flush_interval;
  commit_listener _on_commit;

  std::mutex _mu;
  std::condition_variable _cv;
  std::unique_ptr<open_object> _open;
  bool _stopping = false;
  uint64_t _sequence = 0;
  static constexpr size_t max_inflight_puts = 4;
  std::deque<std::shared_ptr<sealed_object>> _inflight;  // sealed, not yet committed; in order
  // PUT threads with their objects; the flusher joins those whose PUT is done.
  std::vector<std::pair<std::shared_ptr<sealed_object>, std::thread>> _put_threads;
  std::thread _flusher;
};

}  // namespace sh::broker
