#pragma once
// Classic consumer-group coordinator: which groups this broker coordinates (by lease), their
// in-memory membership state (group.h), and the timers that expire members and end join phases.
//
// Lifecycle: owned by broker_context; start() after the context is built (it starts the
// coordinator's two threads), stop() before the context is destroyed (it fails waiting requests,
// stops the threads and releases the leases it holds).
//
// Threading: every method is thread-safe; one mutex guards all groups (request handlers on any
// I/O thread, the ticker thread, the lease thread). The *_blocking methods call the metadata
// store and must run on the blocking pool. Join/sync callbacks run with the mutex held, on the
// calling thread or the ticker thread; they must only hand the result over (post), never call
// back into the coordinator.
//
// Which broker coordinates a group: the holder of metadata lease "group/<group id>". A broker
// takes a free or expired lease when a client asks it (FindCoordinator or any group request),
// keeps renewing it while the group has members or recent activity, lets it lapse when the group
// has been idle, and releases it at shutdown. Offsets are written under the lease as a fence, so
// a broker that lost the group can't overwrite its successor's commits.
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "group.h"
#include "sh/kafka/errors.h"
#include "sh/metadata/metadata_store.h"

namespace sh::broker {

struct broker_context;

struct coordinator_options {
  int64_t lease_ttl_ms = 30000;
  // A lease is used only until this long before it would expire by the local clock, so that a
  // slow renewal never lets two brokers act as coordinator at once.
  int64_t lease_margin_ms = 5000;
  // Groups without members and without requests for this long are forgotten (lease not renewed).
  int64_t idle_ms = 60000;
  group_options group;
};

// Options from the broker's properties (group.initial.rebalance.delay.ms,
// group.min.session.timeout.ms, group.max.session.timeout.ms, group.coordinator.lease.ms), with
// Kafka's defaults for keys that are absent.
coordinator_options coordinator_options_from(const broker_context& ctx);

// Who coordinates a group, as FindCoordinator answers it.
struct coordinator_lookup {
  kafka::error_code error = kafka::error_code::none;
  int32_t node_id = -1;
  std::string host;
  int32_t port = -1;
  // Set when this broker is the coordinator: the lease to fence writes with.
  std::optional<metadata::lease_fence> fence;
};

struct listed_group {
  std::string group_id;
  std::string protocol_type;
  group_state state = group_state::empty;
};

class group_coordinator {
 public:
  explicit group_coordinator(broker_context& ctx);
  group_coordinator(broker_context& ctx, coordinator_options options);
  ~group_coordinator();
  group_coordinator(const group_coordinator&) = delete;
  group_coordinator& operator=(const group_coordinator&) = delete;

  void start();
  void stop();

  static std::string lease_name(const std::string& group_id) { return "group/" + group_id; }

  // ---- ownership ----
  // No I/O: the fence when this broker holds the group's lease and it is fresh.
  std::optional<metadata::lease_fence> held_fence(const std::string& group_id);
  // Blocking: takes the lease if it is free, expired or ours, and answers who coordinates.
  coordinator_lookup lookup_blocking(const std::string& group_id);
  // A write under `epoch` was refused as fenced: the group has a new coordinator.
  void lost(const std::string& group_id, int64_t epoch);

  // ---- membership (NOT_COORDINATOR when this broker does not hold the group) ----
  void join(const std::string& group_id, join_params p, join_callback done);
  void sync(const std::string& group_id, sync_params p, sync_callback done);
  kafka::error_code heartbeat(const std::string& group_id, const std::string& member_id,
                              const std::optional<std::string>& group_instance_id,
                              int32_t generation);
  kafka::error_code leave(const std::string& group_id, const std::string& member_id,
                          const std::optional<std::string>& group_instance_id);
  kafka::error_code validate_commit(const std::string& group_id, const std::string& member_id,
                                    const std::optional<std::string>& group_instance_id,
                                    int32_t generation);

  // ---- inspection and administration ----
  struct group_snapshot {
    bool known = false;  // has had members (see group::is_known)
    group_description description;
  };
  // nullopt when this broker does not hold the group.
  std::optional<group_snapshot> describe(const std::string& group_id);
  // The groups this broker holds that have had members.
  std::vector<listed_group> list_held();
  // For OffsetDelete: NON_EMPTY_GROUP when members use another protocol than "consumer";
  // otherwise one flag per topic: subscribed by a live member.
  kafka::error_code subscriptions(const std::string& group_id,
                                  const std::vector<std::string>& topics,
                                  std::vector<bool>& subscribed, bool& known);
  // DeleteGroups, two steps around the store's delete: begin_delete refuses a group with
  // members (NON_EMPTY_GROUP) and otherwise marks it Dead so no one joins meanwhile; `known`
  // says whether the group had members. finish_delete forgets it.
  kafka::error_code begin_delete(const std::string& group_id, bool& known);
  void finish_delete(const std::string& group_id);

  const coordinator_options& options() const { return _options; }
  // Runs the timers now (tests drive time through group objects directly; this is for the
  // coordinator-level tests).
  void tick_for_test();

 private:
  struct slot {
    std::unique_ptr<group> g;
    int64_t epoch = 0;
    int64_t valid_until = 0;  // local steady ms
    int64_t last_activity = 0;
    int32_t logged_generation = 0;
    group_state logged_state = group_state::empty;
  };

  static int64_t now_ms();
  slot* held_locked(const std::string& group_id, int64_t now);
  // Logs generation changes (operators see each rebalance's outcome).
  void log_changes(const std::string& group_id, slot& s);
  void ticker_loop();
  void lease_loop();
  void renew_all();

  broker_context& _ctx;
  coordinator_options _options;
  std::mutex _mu;
  std::condition_variable _wake_ticker;
  std::condition_variable _wake_leaser;
  std::map<std::string, slot> _slots;
  bool _running = false;
  bool _stopping = false;
  std::thread _ticker;
  std::thread _leaser;
};

}  // namespace sh::broker
