#pragma once
// Cluster membership: registers this broker in the metadata store, heartbeats, and keeps the list
// of live brokers for Metadata responses, FindCoordinator and the preferred-broker choice.
// Thread-safe; one background thread (blocking metadata calls) from start() to stop().
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sh/metadata/metadata_store.h"

namespace sh::broker {

// A broker as clients see it (Metadata, FindCoordinator).
struct broker_endpoint {
  int32_t node_id = 0;
  std::string host;
  int32_t port = 0;
  std::string incarnation;  // the process's lease-owner id
};

class cluster_membership {
 public:
  static constexpr int64_t session_timeout_ms = 10000;
  static constexpr int64_t heartbeat_interval_ms = 2000;

  cluster_membership(std::shared_ptr<metadata::metadata_store> meta, broker_endpoint self);
  ~cluster_membership();

  // Registers (refusing a node.id that another live broker uses) and starts heartbeating. Call
  // after binding the listeners: a registration of our node id at our own endpoint is then a
  // dead predecessor (crash) and is taken over.
  sh::result<void, metadata::errc> start();
  // Unregisters so other brokers stop advertising this one at once.
  void stop();

  const broker_endpoint& self() const { return _self; }
  // Live brokers ordered by node id; always includes this one.
  std::vector<broker_endpoint> live() const;
  std::optional<broker_endpoint> by_incarnation(const std::string& incarnation) const;

 private:
  void loop();
  void refresh();

  std::shared_ptr<metadata::metadata_store> _meta;
  broker_endpoint _self;
  mutable std::mutex _mu;
  std::condition_variable _cv;
  bool _stopping = false;
  std::vector<broker_endpoint> _live;
  std::thread _thread;
};

// The preferred broker of a partition: rendezvous (highest random weight) hashing over the live
// brokers, so each partition maps to one broker and moves only when that broker leaves.
int32_t preferred_broker(const std::vector<broker_endpoint>& live, const std::string& topic,
                         int32_t partition);

}  // namespace sh::broker
