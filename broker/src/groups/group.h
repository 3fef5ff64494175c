#pragma once
// One consumer group's membership state machine (Kafka's classic group protocol): members and
// their protocols, generations, the join and sync phases of a rebalance, session expiry and
// static membership. No I/O, no clock and no locking of its own: every method takes the current
// time in milliseconds (any monotonic clock) and the owner serialises the calls (the
// group_coordinator holds its mutex). Callbacks for JoinGroup and SyncGroup may run before the
// method returns or during a later call (tick, another member's join...); they must not call
// back into the group.
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "sh/kafka/errors.h"

namespace sh::broker {

enum class group_state { empty, preparing_rebalance, completing_rebalance, stable, dead };

// Kafka's names ("Empty", "PreparingRebalance", ...), as ListGroups/DescribeGroups report them.
const char* group_state_name(group_state s) noexcept;

struct group_protocol {
  std::string name;
  std::vector<uint8_t> metadata;
  bool operator==(const group_protocol&) const = default;
};

struct group_options {
  // Kafka's group.initial.rebalance.delay.ms: the first rebalance of an empty group waits this
  // long (again, while new members keep arriving, up to the rebalance timeout) so that members
  // starting together land in one generation.
  int64_t initial_rebalance_delay_ms = 3000;
  // Kafka's group.min.session.timeout.ms / group.max.session.timeout.ms.
  int32_t min_session_timeout_ms = 6000;
  int32_t max_session_timeout_ms = 1800000;
  // Makes a new member id from the client id; default: "<client id>-<random UUID>" as Kafka.
  std::function<std::string(const std::string& client_id)> new_member_id;
};

struct join_params {
  std::string member_id;  // empty: a new member
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  int32_t session_timeout_ms = 0;
  int32_t rebalance_timeout_ms = 0;
  std::string protocol_type;
  std::vector<group_protocol> protocols;
  bool require_known_member_id = false;  // JoinGroup v4+: MEMBER_ID_REQUIRED for a new member
};

struct join_member {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::vector<uint8_t> metadata;
};

struct join_result {
  kafka::error_code error = kafka::error_code::none;
  int32_t generation = -1;
  std::optional<std::string> protocol_type;
  std::optional<std::string> protocol_name;
  std::string leader;
  std::string member_id;
  bool skip_assignment = false;
  std::vector<join_member> members;  // the leader's answer only
};
using join_callback = std::function<void(join_result)>;

struct sync_params {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  int32_t generation = -1;
  std::optional<std::string> protocol_type;  // SyncGroup v5+: checked against the group's
  std::optional<std::string> protocol_name;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> assignments;  // leader only
};

struct sync_result {
  kafka::error_code error = kafka::error_code::none;
  std::optional<std::string> protocol_type;
  std::optional<std::string> protocol_name;
  std::vector<uint8_t> assignment;
};
using sync_callback = std::function<void(sync_result)>;

struct member_description {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  std::vector<uint8_t> metadata;    // Stable groups only (as Kafka)
  std::vector<uint8_t> assignment;  // Stable groups only
};

struct group_description {
  group_state state = group_state::empty;
  std::string protocol_type;
  std::string protocol_name;  // Stable groups only
  std::vector<member_description> members;
};

class group {
 public:
  group(std::string id, group_options options);
  group(const group&) = delete;
  group& operator=(const group&) = delete;

  const std::string& id() const { return _id; }
  group_state state() const { return _state; }
  int32_t generation() const { return _generation; }
  const std::optional<std::string>& protocol_type() const { return _protocol_type; }
  const std::optional<std::string>& protocol_name() const { return _protocol_name; }
  const std::string& leader() const { return _leader; }
  size_t member_count() const { return _members.size(); }
  bool has_member(const std::string& member_id) const { return _members.contains(member_id); }
  // No members and no member ids handed out that may still join.
  bool is_empty() const { return _members.empty() && _pending.empty(); }
  // Has had members (Kafka keeps such a group until it is deleted or its offsets expire).
  bool is_known() const { return _generation > 0 || !is_empty() || _protocol_type.has_value(); }

  // JoinGroup. `done` runs once: at once for errors, MEMBER_ID_REQUIRED and rejoins that change
  // nothing; otherwise when the join phase of the rebalance completes.
  void join(join_params p, int64_t now, join_callback done);
  // SyncGroup. Followers wait for the leader's assignment.
  void sync(sync_params p, int64_t now, sync_callback done);
  kafka::error_code heartbeat(const std::string& member_id,
                              const std::optional<std::string>& group_instance_id,
                              int32_t generation, int64_t now);
  // One member of a LeaveGroup request (by member id, or by instance id for static members).
  kafka::error_code leave(const std::string& member_id,
                          const std::optional<std::string>& group_instance_id, int64_t now);
  // Whether an OffsetCommit from this member and generation may be stored. A commit with a
  // negative generation is accepted only while the group has no members (Kafka's "simple"
  // consumers that only store offsets).
  kafka::error_code validate_commit(const std::string& member_id,
                                    const std::optional<std::string>& group_instance_id,
                                    int32_t generation, int64_t now);

  // Expires members and pending member ids, completes the join phase at its deadline.
  void tick(int64_t now);
  // When tick() has something to do next; INT64_MAX when nothing is scheduled.
  int64_t next_deadline() const;
  // Ends the group (its coordinator is going away or the group is being deleted): every waiting
  // join and sync gets `error`; the group is Dead and answers COORDINATOR_NOT_AVAILABLE.
  void shutdown(kafka::error_code error);

  group_description describe() const;
  // Whether a member subscribes to `topic` per its consumer protocol metadata. Metadata that is
  // not the consumer protocol, or can't be parsed, counts as subscribing to everything.
  bool subscribed_to(const std::string& topic) const;

 private:
  struct member {
    std::string id;
    std::optional<std::string> instance_id;
    std::string client_id;
    std::string client_host;
    int32_t session_timeout_ms = 0;
    int32_t rebalance_timeout_ms = 0;
    std::string protocol_type;
    std::vector<group_protocol> protocols;
    std::vector<uint8_t> assignment;
    join_callback awaiting_join;
    sync_callback awaiting_sync;
    int64_t heartbeat_deadline = 0;
    uint64_t seq = 0;  // join order: picks the next leader, orders the leader's member list
  };

  bool supports_protocols(const std::string& except_member, const std::string& protocol_type,
                          const std::vector<group_protocol>& protocols) const;
  bool static_member_fenced(const std::string& member_id,
                            const std::optional<std::string>& instance_id) const;
  void add_member_and_rebalance(const std::string& member_id, join_params& p, int64_t now,
                                join_callback done);
  void update_member_and_rebalance(member& m, join_params& p, int64_t now, join_callback done);
  void update_static_member_and_rebalance(const std::string& old_id, const std::string& new_id,
                                          join_params& p, int64_t now, join_callback done);
  void prepare_rebalance(int64_t now);
  void maybe_complete_join(int64_t now);
  void complete_join(int64_t now);
  void remove_member(const std::string& member_id, int64_t now);
  bool all_members_joined() const;
  int32_t max_rebalance_timeout() const;
  std::string select_protocol() const;
  join_result current_join_result(const member& m) const;
  const std::vector<uint8_t>* selected_metadata(const member& m) const;
  std::vector<const member*> members_in_join_order() const;
  void heartbeat_ok(member& m, int64_t now) { m.heartbeat_deadline = now + m.session_timeout_ms; }

  std::string _id;
  group_options _options;
  group_state _state = group_state::empty;
  int32_t _generation = 0;
  std::optional<std::string> _protocol_type;
  std::optional<std::string> _protocol_name;
  std::string _leader;
  std::unordered_map<std::string, member> _members;
  std::unordered_map<std::string, int64_t> _pending;             // member id -> deadline to join
  std::unordered_map<std::string, std::string> _static_members;  // instance id -> member id
  uint64_t _next_seq = 0;
  // Join phase (PreparingRebalance).
  int64_t _rebalance_deadline = 0;
  bool _initial_delay = false;  // the delayed first rebalance of an empty group
  int64_t _initial_delay_limit = 0;
  bool _new_member_added = false;
};

}  // namespace sh::broker
