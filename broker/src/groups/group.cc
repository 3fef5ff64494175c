#include "group.h"

#include <algorithm>
#include <climits>
#include <random>

#include "sh/kafka/messages/consumer_protocol_subscription.h"
#include "sh/kafka/wire.h"

namespace sh::broker {
namespace {

using kafka::error_code;

std::string random_uuid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng();
  uint64_t lo = rng();
  hi = (hi & ~uint64_t{0xf000}) | 0x4000;                    // version 4
  lo = (lo & ~(uint64_t{0xc} << 60)) | (uint64_t{8} << 60);  // variant 10
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

join_result join_error(error_code e, std::string member_id = {}) {
  join_result r;
  r.error = e;
  r.member_id = std::move(member_id);
  return r;
}

sync_result sync_error(error_code e) {
  sync_result r;
  r.error = e;
  return r;
}

// Runs and clears a stored callback (a member's waiting JoinGroup or SyncGroup).
template <class F, class R>
void fire(F& cb, R result) {
  if (!cb) return;
  F f = std::move(cb);
  cb = nullptr;
  f(std::move(result));
}

}  // namespace

const char* group_state_name(group_state s) noexcept {
  switch (s) {
    case group_state::empty:
      return "Empty";
    case group_state::preparing_rebalance:
      return "PreparingRebalance";
    case group_state::completing_rebalance:
      return "CompletingRebalance";
    case group_state::stable:
      return "Stable";
    case group_state::dead:
      return "Dead";
  }
  return "Unknown";
}

group::group(std::string id, group_options options)
    : _id(std::move(id)), _options(std::move(options)) {
  if (!_options.new_member_id) {
    _options.new_member_id = [](const std::string& client_id) {
      return client_id + "-" + random_uuid();
    };
  }
}

// ---- JoinGroup ----

void group::join(join_params p, int64_t now, join_callback done) {
  if (_state == group_state::dead) return done(join_error(error_code::coordinator_not_available));
  if (p.session_timeout_ms < _options.min_session_timeout_ms ||
      p.session_timeout_ms > _options.max_session_timeout_ms) {
    return done(join_error(error_code::invalid_session_timeout, p.member_id));
  }
  if (p.rebalance_timeout_ms <= 0) p.rebalance_timeout_ms = p.session_timeout_ms;
  if (!supports_protocols(p.member_id, p.protocol_type, p.protocols)) {
    return done(join_error(error_code::inconsistent_group_protocol, p.member_id));
  }

  if (p.member_id.empty()) {
    std::string new_id = _options.new_member_id(p.client_id);
    if (p.group_instance_id) {
      // Static members skip the MEMBER_ID_REQUIRED round trip: the instance id identifies them.
      auto it = _static_members.find(*p.group_instance_id);
      if (it != _static_members.end() && _members.contains(it->second)) {
        const std::string old_id = it->second;
        return update_static_member_and_rebalance(old_id, new_id, p, now, std::move(done));
      }
      return add_member_and_rebalance(new_id, p, now, std::move(done));
    }
    if (p.require_known_member_id) {
      // The client retries with this id; until then it only holds up the rebalance.
      _pending[new_id] = now + p.session_timeout_ms;
      return done(join_error(error_code::member_id_required, new_id));
    }
    return add_member_and_rebalance(new_id, p, now, std::move(done));
  }

  if (auto pending = _pending.find(p.member_id); pending != _pending.end()) {
    _pending.erase(pending);
    const std::string id = p.member_id;
    return add_member_and_rebalance(id, p, now, std::move(done));
  }
  if (static_member_fenced(p.member_id, p.group_instance_id)) {
    return done(join_error(error_code::fenced_instance_id, p.member_id));
  }
  auto it = _members.find(p.member_id);
  if (it == _members.end()) return done(join_error(error_code::unknown_member_id, p.member_id));
  member& m = it->second;
  switch (_state) {
    case group_state::preparing_rebalance:
      return update_member_and_rebalance(m, p, now, std::move(done));
    case group_state::completing_rebalance:
      // Same protocols: the member missed its JoinGroup answer; send it again.
      if (m.protocols == p.protocols) {
        heartbeat_ok(m, now);
        return done(current_join_result(m));
      }
      return update_member_and_rebalance(m, p, now, std::move(done));
    case group_state::stable:
      // A follower rejoining with unchanged metadata gets the current generation; the leader
      // or a changed subscription starts a rebalance.
      if (m.id != _leader && m.protocols == p.protocols) {
        heartbeat_ok(m, now);
        return done(current_join_result(m));
      }
      return update_member_and_rebalance(m, p, now, std::move(done));
    case group_state::empty:
    case group_state::dead:
      break;
  }
  done(join_error(error_code::unknown_member_id, p.member_id));
}

bool group::supports_protocols(const std::string& except_member, const std::string& protocol_type,
                               const std::vector<group_protocol>& protocols) const {
  if (protocol_type.empty() || protocols.empty()) return false;
  bool others = false;
  for (const auto& [id, m] : _members) {
    if (id == except_member) continue;
    others = true;
    break;
  }
  if (!others) return true;
  if (_protocol_type && *_protocol_type != protocol_type) return false;
  // At least one of the joining member's protocols must be supported by every other member.
  for (const auto& proto : protocols) {
    bool everyone = true;
    for (const auto& [id, m] : _members) {
      if (id == except_member) continue;
      if (std::none_of(m.protocols.begin(), m.protocols.end(),
                       [&](const group_protocol& q) { return q.name == proto.name; })) {
        everyone = false;
        break;
      }
    }
    if (everyone) return true;
  }
  return false;
}

bool group::static_member_fenced(const std::string& member_id,
                                 const std::optional<std::string>& instance_id) const {
  if (!instance_id) return false;
  auto it = _static_members.find(*instance_id);
  return it != _static_members.end() && it->second != member_id;
}

void group::add_member_and_rebalance(const std::string& member_id, join_params& p, int64_t now,
                                     join_callback done) {
  if (_members.empty()) _protocol_type = p.protocol_type;
  member m;
  m.id = member_id;
  m.instance_id = p.group_instance_id;
  m.client_id = std::move(p.client_id);
  m.client_host = std::move(p.client_host);
  m.session_timeout_ms = p.session_timeout_ms;
  m.rebalance_timeout_ms = p.rebalance_timeout_ms;
  m.protocol_type = std::move(p.protocol_type);
  m.protocols = std::move(p.protocols);
  m.awaiting_join = std::move(done);
  m.seq = _next_seq++;
  heartbeat_ok(m, now);
  if (m.instance_id) _static_members[*m.instance_id] = member_id;
  if (_leader.empty()) _leader = member_id;
  _members.emplace(member_id, std::move(m));
  if (_state == group_state::preparing_rebalance) {
    if (_initial_delay) _new_member_added = true;
    maybe_complete_join(now);
  } else {
    prepare_rebalance(now);
  }
}

void group::update_member_and_rebalance(member& m, join_params& p, int64_t now,
                                        join_callback done) {
  m.client_id = std::move(p.client_id);
  m.client_host = std::move(p.client_host);
  m.session_timeout_ms = p.session_timeout_ms;
  m.rebalance_timeout_ms = p.rebalance_timeout_ms;
  m.protocols = std::move(p.protocols);
  // A second JoinGroup while one waits (a client retry on a new connection): the newer one wins.
  fire(m.awaiting_join, join_error(error_code::rebalance_in_progress, m.id));
  m.awaiting_join = std::move(done);
  heartbeat_ok(m, now);
  if (_state == group_state::preparing_rebalance) {
    maybe_complete_join(now);
  } else {
    prepare_rebalance(now);
  }
}

void group::update_static_member_and_rebalance(const std::string& old_id, const std::string& new_id,
                                               join_params& p, int64_t now, join_callback done) {
  auto node = _members.extract(old_id);
  member& m = node.mapped();
  // The old incarnation of this instance is fenced: its waiting requests fail.
  fire(m.awaiting_join, join_error(error_code::fenced_instance_id, old_id));
  fire(m.awaiting_sync, sync_error(error_code::fenced_instance_id));
  node.key() = new_id;
  m.id = new_id;
  _static_members[*m.instance_id] = new_id;
  if (_leader == old_id) _leader = new_id;
  auto& replaced = _members.insert(std::move(node)).position->second;
  const auto old_protocols = replaced.protocols;
  if (_state == group_state::stable) {
    // No rebalance when the group would still choose the same protocol: the member keeps its
    // assignment under its new id (KIP-345). The leader is told to skip the assignment.
    replaced.protocols = p.protocols;
    if (select_protocol() == _protocol_name.value_or("")) {
      replaced.client_id = std::move(p.client_id);
      replaced.client_host = std::move(p.client_host);
      replaced.session_timeout_ms = p.session_timeout_ms;
      replaced.rebalance_timeout_ms = p.rebalance_timeout_ms;
      heartbeat_ok(replaced, now);
      join_result r = current_join_result(replaced);
      r.skip_assignment = new_id == _leader;
      return done(std::move(r));
    }
    replaced.protocols = old_protocols;
  }
  update_member_and_rebalance(replaced, p, now, std::move(done));
}

void group::prepare_rebalance(int64_t now) {
  if (_state == group_state::completing_rebalance) {
    // The assignment being computed is for a generation that will not be: members waiting in
    // SyncGroup rejoin.
    for (auto& [id, m] : _members) {
      m.assignment.clear();
      fire(m.awaiting_sync, sync_error(error_code::rebalance_in_progress));
    }
  }
  const int32_t timeout = max_rebalance_timeout();
  if (_state == group_state::empty && _options.initial_rebalance_delay_ms > 0) {
    _initial_delay = true;
    _new_member_added = false;
    _initial_delay_limit = now + timeout;
    _rebalance_deadline = std::min(now + _options.initial_rebalance_delay_ms, _initial_delay_limit);
    _state = group_state::preparing_rebalance;
    return;
  }
  _initial_delay = false;
  _rebalance_deadline = now + timeout;
  _state = group_state::preparing_rebalance;
  maybe_complete_join(now);
}

bool group::all_members_joined() const {
  if (!_pending.empty()) return false;
  return std::all_of(_members.begin(), _members.end(),
                     [](const auto& e) { return static_cast<bool>(e.second.awaiting_join); });
}

int32_t group::max_rebalance_timeout() const {
  int32_t t = 0;
  for (const auto& [id, m] : _members) t = std::max(t, m.rebalance_timeout_ms);
  return t;
}

void group::maybe_complete_join(int64_t now) {
  if (_state == group_state::preparing_rebalance && !_initial_delay && all_members_joined()) {
    complete_join(now);
  }
}

void group::complete_join(int64_t now) {
  // Members that did not rejoin in time are out of the group.
  std::vector<std::string> gone;
  for (const auto& [id, m] : _members) {
    if (!m.awaiting_join) gone.push_back(id);
  }
  for (const auto& id : gone) {
    auto node = _members.extract(id);
    member& m = node.mapped();
    fire(m.awaiting_sync, sync_error(error_code::unknown_member_id));
    if (m.instance_id) _static_members.erase(*m.instance_id);
  }
  _initial_delay = false;
  _new_member_added = false;
  ++_generation;
  if (_members.empty()) {
    _state = group_state::empty;
    _protocol_name.reset();
    _leader.clear();
    return;
  }
  if (!_members.contains(_leader)) _leader = members_in_join_order().front()->id;
  _protocol_name = select_protocol();
  _state = group_state::completing_rebalance;
  for (auto& [id, m] : _members) {
    m.assignment.clear();
    heartbeat_ok(m, now);
  }
  // Answer every waiting JoinGroup. Collect first: a callback must not observe a half-done loop.
  std::vector<std::pair<join_callback, join_result>> answers;
  for (auto& [id, m] : _members) {
    answers.emplace_back(std::move(m.awaiting_join), current_join_result(m));
    m.awaiting_join = nullptr;
  }
  for (auto& [cb, r] : answers) cb(std::move(r));
}

std::vector<const group::member*> group::members_in_join_order() const {
  std::vector<const member*> out;
  out.reserve(_members.size());
  for (const auto& [id, m] : _members) out.push_back(&m);
  std::sort(out.begin(), out.end(),
            [](const member* a, const member* b) { return a->seq < b->seq; });
  return out;
}

std::string group::select_protocol() const {
  auto lit = _members.find(_leader);
  if (lit == _members.end()) return {};
  // The leader's preference order, among the protocols every member supports.
  for (const auto& proto : lit->second.protocols) {
    bool everyone = std::all_of(_members.begin(), _members.end(), [&](const auto& e) {
      return std::any_of(e.second.protocols.begin(), e.second.protocols.end(),
                         [&](const group_protocol& q) { return q.name == proto.name; });
    });
    if (everyone) return proto.name;
  }
  return lit->second.protocols.empty() ? std::string() : lit->second.protocols.front().name;
}

const std::vector<uint8_t>* group::selected_metadata(const member& m) const {
  if (!_protocol_name) return nullptr;
  for (const auto& p : m.protocols) {
    if (p.name == *_protocol_name) return &p.metadata;
  }
  return nullptr;
}

join_result group::current_join_result(const member& m) const {
  join_result r;
  r.generation = _generation;
  r.protocol_type = _protocol_type;
  r.protocol_name = _protocol_name;
  r.leader = _leader;
  r.member_id = m.id;
  if (m.id == _leader) {
    for (const member* o : members_in_join_order()) {
      join_member jm;
      jm.member_id = o->id;
      jm.group_instance_id = o->instance_id;
      if (const auto* md = selected_metadata(*o)) jm.metadata = *md;
      r.members.push_back(std::move(jm));
    }
  }
  return r;
}

// ---- SyncGroup, Heartbeat, LeaveGroup, commits ----

void group::sync(sync_params p, int64_t now, sync_callback done) {
  if (_state == group_state::dead) return done(sync_error(error_code::coordinator_not_available));
  if (static_member_fenced(p.member_id, p.group_instance_id)) {
    return done(sync_error(error_code::fenced_instance_id));
  }
  auto it = _members.find(p.member_id);
  if (it == _members.end()) return done(sync_error(error_code::unknown_member_id));
  if (p.generation != _generation) return done(sync_error(error_code::illegal_generation));
  if ((p.protocol_type && *p.protocol_type != _protocol_type.value_or("")) ||
      (p.protocol_name && *p.protocol_name != _protocol_name.value_or(""))) {
    return done(sync_error(error_code::inconsistent_group_protocol));
  }
  member& m = it->second;
  switch (_state) {
    case group_state::preparing_rebalance:
      return done(sync_error(error_code::rebalance_in_progress));
    case group_state::completing_rebalance: {
      heartbeat_ok(m, now);
      fire(m.awaiting_sync, sync_error(error_code::rebalance_in_progress));
      m.awaiting_sync = std::move(done);
      if (m.id != _leader) return;
      for (auto& [id, o] : _members) o.assignment.clear();
      for (auto& [id, bytes] : p.assignments) {
        auto target = _members.find(id);
        if (target != _members.end()) target->second.assignment = std::move(bytes);
      }
      _state = group_state::stable;
      std::vector<std::pair<sync_callback, sync_result>> answers;
      for (auto& [id, o] : _members) {
        if (!o.awaiting_sync) continue;
        sync_result r;
        r.protocol_type = _protocol_type;
        r.protocol_name = _protocol_name;
        r.assignment = o.assignment;
        answers.emplace_back(std::move(o.awaiting_sync), std::move(r));
        o.awaiting_sync = nullptr;
      }
      for (auto& [cb, r] : answers) cb(std::move(r));
      return;
    }
    case group_state::stable: {
      heartbeat_ok(m, now);
      sync_result r;
      r.protocol_type = _protocol_type;
      r.protocol_name = _protocol_name;
      r.assignment = m.assignment;
      return done(std::move(r));
    }
    case group_state::empty:
    case group_state::dead:
      break;
  }
  done(sync_error(error_code::unknown_member_id));
}

kafka::error_code group::heartbeat(const std::string& member_id,
                                   const std::optional<std::string>& group_instance_id,
                                   int32_t generation, int64_t now) {
  if (_state == group_state::dead) return error_code::coordinator_not_available;
  if (static_member_fenced(member_id, group_instance_id)) return error_code::fenced_instance_id;
  auto it = _members.find(member_id);
  if (it == _members.end()) return error_code::unknown_member_id;
  if (generation != _generation) return error_code::illegal_generation;
  switch (_state) {
    case group_state::completing_rebalance:
    case group_state::stable:
      heartbeat_ok(it->second, now);
      return error_code::none;
    case group_state::preparing_rebalance:
      heartbeat_ok(it->second, now);
      return error_code::rebalance_in_progress;
    default:
      return error_code::unknown_member_id;
  }
}

kafka::error_code group::leave(const std::string& member_id,
                               const std::optional<std::string>& group_instance_id, int64_t now) {
  if (_state == group_state::dead) return error_code::coordinator_not_available;
  std::string id = member_id;
  if (group_instance_id) {
    auto it = _static_members.find(*group_instance_id);
    if (it == _static_members.end()) return error_code::unknown_member_id;
    if (!member_id.empty() && it->second != member_id) return error_code::fenced_instance_id;
    id = it->second;
  } else if (_pending.erase(member_id) > 0) {
    maybe_complete_join(now);
    return error_code::none;
  }
  if (!_members.contains(id)) return error_code::unknown_member_id;
  remove_member(id, now);
  return error_code::none;
}

kafka::error_code group::validate_commit(const std::string& member_id,
                                         const std::optional<std::string>& group_instance_id,
                                         int32_t generation, int64_t now) {
  if (_state == group_state::dead) return error_code::coordinator_not_available;
  if (static_member_fenced(member_id, group_instance_id)) return error_code::fenced_instance_id;
  if (generation < 0 && _members.empty()) return error_code::none;
  auto it = _members.find(member_id);
  if (it == _members.end()) return error_code::unknown_member_id;
  if (generation != _generation) return error_code::illegal_generation;
  switch (_state) {
    case group_state::stable:
    case group_state::preparing_rebalance:
      heartbeat_ok(it->second, now);
      return error_code::none;
    case group_state::completing_rebalance:
      return error_code::rebalance_in_progress;
    default:
      return error_code::unknown_member_id;
  }
}

void group::remove_member(const std::string& member_id, int64_t now) {
  auto node = _members.extract(member_id);
  if (node.empty()) return;
  member& m = node.mapped();
  fire(m.awaiting_join, join_error(error_code::unknown_member_id, m.id));
  fire(m.awaiting_sync, sync_error(error_code::unknown_member_id));
  if (m.instance_id) {
    auto it = _static_members.find(*m.instance_id);
    if (it != _static_members.end() && it->second == member_id) _static_members.erase(it);
  }
  if (_leader == member_id) {
    _leader.clear();
    auto order = members_in_join_order();
    if (!order.empty()) _leader = order.front()->id;
  }
  switch (_state) {
    case group_state::stable:
    case group_state::completing_rebalance:
      prepare_rebalance(now);
      break;
    case group_state::preparing_rebalance:
      maybe_complete_join(now);
      break;
    default:
      break;
  }
}

// ---- time ----

void group::tick(int64_t now) {
  if (_state == group_state::dead) return;
  bool pending_expired = false;
  for (auto it = _pending.begin(); it != _pending.end();) {
    if (it->second <= now) {
      it = _pending.erase(it);
      pending_expired = true;
    } else {
      ++it;
    }
  }
  if (pending_expired) maybe_complete_join(now);
  // Members waiting in JoinGroup or SyncGroup are alive: their request is the heartbeat.
  std::vector<std::string> expired;
  for (const auto& [id, m] : _members) {
    if (!m.awaiting_join && !m.awaiting_sync && m.heartbeat_deadline <= now) expired.push_back(id);
  }
  for (const auto& id : expired) {
    auto it = _members.find(id);
    if (it != _members.end() && !it->second.awaiting_join && !it->second.awaiting_sync &&
        it->second.heartbeat_deadline <= now) {
      remove_member(id, now);
    }
  }
  if (_state == group_state::preparing_rebalance && _rebalance_deadline <= now) {
    if (_initial_delay && _new_member_added && now < _initial_delay_limit) {
      // Members are still arriving: wait one more delay, within the rebalance timeout.
      _new_member_added = false;
      _rebalance_deadline =
          std::min(now + _options.initial_rebalance_delay_ms, _initial_delay_limit);
    } else {
      complete_join(now);
    }
  }
}

int64_t group::next_deadline() const {
  if (_state == group_state::dead) return INT64_MAX;
  int64_t next = INT64_MAX;
  if (_state == group_state::preparing_rebalance) next = _rebalance_deadline;
  for (const auto& [id, d] : _pending) next = std::min(next, d);
  for (const auto& [id, m] : _members) {
    if (!m.awaiting_join && !m.awaiting_sync) next = std::min(next, m.heartbeat_deadline);
  }
  return next;
}

void group::shutdown(kafka::error_code error) {
  for (auto& [id, m] : _members) {
    fire(m.awaiting_join, join_error(error, id));
    fire(m.awaiting_sync, sync_error(error));
  }
  _members.clear();
  _pending.clear();
  _static_members.clear();
  _leader.clear();
  _state = group_state::dead;
}

// ---- inspection ----

group_description group::describe() const {
  group_description d;
  d.state = _state;
  d.protocol_type = _protocol_type.value_or("");
  const bool stable = _state == group_state::stable;
  if (stable) d.protocol_name = _protocol_name.value_or("");
  for (const member* m : members_in_join_order()) {
    member_description md;
    md.member_id = m->id;
    md.group_instance_id = m->instance_id;
    md.client_id = m->client_id;
    md.client_host = m->client_host;
    if (stable) {
      if (const auto* meta = selected_metadata(*m)) md.metadata = *meta;
      md.assignment = m->assignment;
    }
    d.members.push_back(std::move(md));
  }
  return d;
}

bool group::subscribed_to(const std::string& topic) const {
  if (_members.empty()) return false;
  if (_protocol_type.value_or("") != "consumer") return true;
  for (const auto& [id, m] : _members) {
    const std::vector<uint8_t>* meta = selected_metadata(m);
    if (!meta && !m.protocols.empty()) meta = &m.protocols.front().metadata;
    if (!meta) return true;
    kafka::byte_reader r(*meta);
    const int16_t version = r.read_int16();
    if (!r.ok() || version < 0) return true;
    kafka::consumer_protocol_subscription sub;
    // Later versions only append fields, so the newest version we know reads their prefix.
    if (!sub.decode(r, std::min<int16_t>(version, 3))) return true;
    if (std::find(sub.topics.begin(), sub.topics.end(), topic) != sub.topics.end()) return true;
  }
  return false;
}

}  // namespace sh::broker
