#pragma once
// The broker's open ingest object (design.md "Write path"): produce appends validated batches,
// a flusher thread seals the object when it reaches ingest.flush.bytes or ingest.flush.ms, a
// put worker builds and PUTs it, commits it in ONE metadata transaction, then completes the
// waiting producers in append order.
//
// Thread-safe. Up to `max_inflight_puts` sealed objects are built and PUT concurrently by as
// many persistent worker threads (object stores reward parallel PUTs, and building an object is
// a copy best done off the I/O threads), but objects commit strictly in the order they were
// sealed, so batches appended in order to one partition get increasing offsets.
//
// Appending does not copy on the caller's thread when the caller can keep the bytes alive
// (append_borrowed: produce requests with acks != 0 hold their frame until they are answered);
// the object's bytes are gathered from those views once, when the sealed object is built.
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
  std::span<const uint8_t> bytes;  // one magic-2 batch (see append / append_borrowed)
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
  // The bytes are copied, so they may go away when this returns. `done` may be empty (acks=0).
  void append(const std::vector<append_batch>& batches, completion done);
  // The same without the copy: every batch's bytes must stay valid and unchanged until `done`
  // (required, non-empty) has been called. The writer reads them on a put worker when the
  // object is built, always before it calls `done`.
  void append_borrowed(const std::vector<append_batch>& batches, completion done);

 private:
  using partition_key = std::pair<std::string, int32_t>;
  struct waiter {
    // Per batch: its partition and its index among that partition's batches in the object.
    std::vector<std::pair<partition_key, uint32_t>> slots;
    completion done;
  };
  struct entry {
    const partition_key* key;  // points into open_object::batches (std::map: stable)
    std::span<const uint8_t> bytes;
    storage::ingest_batch_meta meta;
  };
  struct open_object {
    std::vector<entry> entries;               // every batch, in append order
    std::deque<std::vector<uint8_t>> copies;  // bytes append() copied; entries point into them
    size_t size_bytes = 0;                    // sum of the batches' sizes
    // Per partition, in append order (the builder keeps the same order).
    std::map<partition_key, std::vector<metadata::batch_commit>> batches;
    std::map<partition_key, std::vector<int64_t>> first_timestamps;  // parallel to batches
    std::vector<waiter> waiters;
    std::chrono::steady_clock::time_point first_append;
  };

  // A sealed object: its batches, then (set by its put worker) its bytes, key and PUT result.
  struct sealed_object {
    std::unique_ptr<open_object> obj;
    storage::ingest_object_builder::finished finished;
    std::string key;
    uint64_t object_size = 0;  // finished.data is freed right after the PUT
    std::chrono::steady_clock::time_point sealed, built;  // for the debug timing line
    bool put_ok = false;
  };

  void add_locked(const std::vector<append_batch>& batches, completion done, bool copy,
                  std::unique_lock<std::mutex>& lk);
  void flusher_loop();
  void put_worker_loop();
  void build_and_put(sealed_object& s);
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
  bool _workers_exit = false;  // set by the flusher once everything sealed has committed
  uint64_t _sequence = 0;
  static constexpr size_t max_inflight_puts = 4;
  std::deque<std::shared_ptr<sealed_object>> _inflight;  // sealed, not yet committed; in order
  std::deque<std::shared_ptr<sealed_object>> _to_put;    // sealed, no worker has taken it yet
  std::vector<std::thread> _put_workers;
  std::thread _flusher;
};

}  // namespace sh::broker
