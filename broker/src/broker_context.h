#pragma once
// State shared by every connection of one broker process. Lives for the process; every member
// is thread-safe (handlers run on any I/O thread).
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "asio_util.h"
#include "cluster.h"
#include "ingest_writer.h"
#include "sh/broker/config.h"
#include "sh/kafka/errors.h"
#include "sh/metadata/index_cache.h"
#include "sh/metadata/metadata_store.h"
#include "sh/storage/object_store.h"
#include "sh/storage/read_cache.h"

namespace sh::broker {

// Wakes fetch long-polls when any commit lands. Waiters register a timer; notify() cancels
// every registered timer on the timer's own executor.
class commit_signal {
 public:
  void add(const std::shared_ptr<asio::steady_timer>& timer);
  void notify();
  // Bumped by every notify(): a waiter that saw no change since it last looked can sleep.
  uint64_t generation() const { return _generation.load(std::memory_order_acquire); }

 private:
  std::atomic<uint64_t> _generation{0};
  std::mutex _mu;
  std::vector<std::weak_ptr<asio::steady_timer>> _timers;
};

// Topic metadata read through to the metadata store; entries are cached once seen.
class topic_registry {
 public:
  explicit topic_registry(std::shared_ptr<metadata::metadata_store> meta)
      : _meta(std::move(meta)) {}
  // Blocking: call on the blocking pool.
  sh::result<std::optional<metadata::topic_info>, metadata::errc> find(const std::string& name);
  sh::result<metadata::topic_info, metadata::errc> create(
      const std::string& name, int32_t partitions,
      const std::map<std::string, std::string>& configs);
  std::optional<metadata::topic_info> cached(const std::string& name);
  // Forgets the cached entry after the topic was deleted or altered (partitions, configs).
  void invalidate(const std::string& name);
  // Called by invalidate() too (the broker forgets the topic's cached partitions).
  std::function<void(const std::string&)> on_invalidate;

 private:
  std::shared_ptr<metadata::metadata_store> _meta;
  std::mutex _mu;
  std::unordered_map<std::string, metadata::topic_info> _cache;
};

class group_coordinator;

struct broker_context {
  broker_config cfg;
  std::shared_ptr<storage::object_store> store;
  std::shared_ptr<metadata::metadata_store> meta;
  // Partition states and index entries for Fetch / ListOffsets; started (notifications) by the
  // server, a read-through cache of index entries only until then.
  std::unique_ptr<metadata::index_cache> index;
  std::unique_ptr<storage::read_cache> cache;  // fetch reads go through it
  asio::thread_pool blocking;
  std::unique_ptr<ingest_writer> writer;
  topic_registry topics;
  commit_signal commits;
  std::atomic<int64_t> inflight_request_bytes{0};  // all connections, see queued.max.request.bytes
  // This process's identity as a lease owner and ingest writer (unique per start).
  std::string instance_id;
  std::unique_ptr<group_coordinator> groups;
  std::unique_ptr<cluster_membership> cluster;  // set before serving

  // Brokers clients may connect to. Today: this one; with shared PostgreSQL: every live broker.
  std::vector<broker_endpoint> live_brokers() const;
  // The broker that runs as lease owner `owner`, if it is live.
  std::optional<broker_endpoint> broker_for_owner(const std::string& owner) const;
  broker_endpoint self() const;

  broker_context(broker_config c, std::shared_ptr<storage::object_store> s,
                 std::shared_ptr<metadata::metadata_store> m);
  ~broker_context();
};

// Looks a topic up (cache first, then the store on the blocking pool), creating it when
// `auto_create` is set and the broker allows it. Returns the error code to report.
awaitable<std::pair<kafka::error_code, std::optional<metadata::topic_info>>> resolve_topic(
    broker_context& ctx, const std::string& name, bool auto_create);

}  // namespace sh::broker
