// Group membership APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
// ListGroups, DescribeGroups, DeleteGroups; and the table of every group API this directory
// serves. Offsets are in offset_handlers.cc.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <set>

#include "group_request_util.h"
#include "sh/kafka/messages/delete_groups_request.h"
#include "sh/kafka/messages/delete_groups_response.h"
#include "sh/kafka/messages/describe_groups_request.h"
#include "sh/kafka/messages/describe_groups_response.h"
#include "sh/kafka/messages/find_coordinator_request.h"
#include "sh/kafka/messages/find_coordinator_response.h"
#include "sh/kafka/messages/heartbeat_request.h"
#include "sh/kafka/messages/heartbeat_response.h"
#include "sh/kafka/messages/join_group_request.h"
#include "sh/kafka/messages/join_group_response.h"
#include "sh/kafka/messages/leave_group_request.h"
#include "sh/kafka/messages/leave_group_response.h"
#include "sh/kafka/messages/list_groups_request.h"
#include "sh/kafka/messages/list_groups_response.h"
#include "sh/kafka/messages/sync_group_request.h"
#include "sh/kafka/messages/sync_group_response.h"

namespace sh::broker {
namespace {

using kafka::error_code;

int16_t code(error_code e) { return static_cast<int16_t>(e); }

const char* error_text(error_code e) {
  switch (e) {
    case error_code::coordinator_not_available:
      return "The coordinator is not available.";
    case error_code::not_coordinator:
      return "This is not the correct coordinator.";
    case error_code::invalid_request:
      return "Invalid coordinator key or key type.";
    case error_code::invalid_group_id:
      return "The group id is invalid.";
    default:
      return "Error.";
  }
}

bool equals_ignore_case(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

awaitable<coordinator_lookup> ensure_coordinator(broker_context& ctx, const std::string& group_id) {
  coordinator_lookup out;
  if (!ctx.groups) {
    out.error = error_code::coordinator_not_available;
    co_return out;
  }
  if (auto fence = ctx.groups->held_fence(group_id)) {
    const auto self = ctx.self();
    out.node_id = self.node_id;
    out.host = self.host;
    out.port = self.port;
    out.fence = std::move(fence);
    co_return out;
  }
  co_return co_await run_blocking(
      ctx.blocking, [&ctx, &group_id] { return ctx.groups->lookup_blocking(group_id); });
}

std::string client_host_of(const connection_state& conn) {
  const std::string& peer = conn.peer;
  const auto colon = peer.rfind(':');
  return "/" + (colon == std::string::npos ? peer : peer.substr(0, colon));
}

// ---- FindCoordinator ----

awaitable<handler_response> handle_find_coordinator(broker_context& ctx, connection_state&,
                                                    const request& req) {
  kafka::find_coordinator_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "FindCoordinator body");
  std::vector<std::string> keys;
  if (req.api_version >= 4) {
    keys = in.coordinator_keys;
  } else {
    keys.push_back(in.key);
  }
  kafka::find_coordinator_response resp;
  for (const auto& key : keys) {
    kafka::find_coordinator_response::coordinator c;
    c.key = key;
    c.node_id = -1;
    c.port = -1;
    error_code err = error_code::none;
    if (in.key_type == 1) {
      // Transactions have no coordinator of their own yet: this broker answers for them.
      const auto self = ctx.self();
      c.node_id = self.node_id;
      c.host = self.host;
      c.port = self.port;
    } else if (in.key_type != 0 || key.empty()) {
      err = error_code::invalid_request;
    } else {
      auto found = co_await ensure_coordinator(ctx, key);
      err = found.error;
      if (err == error_code::none) {
        c.node_id = found.node_id;
        c.host = found.host;
        c.port = found.port;
      }
    }
    if (err == error_code::invalid_group_id) err = error_code::invalid_request;
    c.error_code = code(err);
    if (err == error_code::none) {
      c.error_message = std::nullopt;
    } else {
      c.error_message = error_text(err);
    }
    resp.coordinators.push_back(std::move(c));
  }
  if (req.api_version < 4) {
    auto& c = resp.coordinators.front();
    resp.error_code = c.error_code;
    resp.error_message = c.error_message;
    resp.node_id = c.node_id;
    resp.host = c.host;
    resp.port = c.port;
    resp.coordinators.clear();
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- JoinGroup ----

awaitable<handler_response> handle_join_group(broker_context& ctx, connection_state& conn,
                                              const request& req) {
  kafka::join_group_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "JoinGroup body");

  join_result result;
  result.member_id = in.member_id;
  if (in.group_id.empty()) {
    result.error = error_code::invalid_group_id;
  } else {
    auto lookup = co_await ensure_coordinator(ctx, in.group_id);
    result.error = coordinator_error(lookup);
  }
  if (result.error == error_code::none) {
    join_params p;
    p.member_id = in.member_id;
    p.group_instance_id = in.group_instance_id;
    p.client_id = req.client_id.value_or("");
    p.client_host = client_host_of(conn);
    p.session_timeout_ms = in.session_timeout_ms;
    // v0 has no rebalance timeout: Kafka uses the session timeout.
    p.rebalance_timeout_ms = req.api_version >= 1 ? in.rebalance_timeout_ms : in.session_timeout_ms;
    p.protocol_type = in.protocol_type;
    for (auto& proto : in.protocols) {
      p.protocols.push_back(group_protocol{std::move(proto.name), std::move(proto.metadata)});
    }
    p.require_known_member_id = req.api_version >= 4;
    result = co_await await_callback<join_result>(
        [&](auto done) { ctx.groups->join(in.group_id, std::move(p), std::move(done)); });
  }

  kafka::join_group_response resp;
  resp.error_code = code(result.error);
  resp.generation_id = result.generation;
  resp.protocol_type = result.protocol_type;
  resp.protocol_name = result.protocol_name;
  if (result.error != error_code::none) {
    resp.generation_id = -1;
    resp.protocol_type = std::nullopt;
    // Before v7 the protocol name is not nullable: the codec writes "" for nullopt.
    resp.protocol_name = std::nullopt;
  }
  resp.leader = result.leader;
  resp.skip_assignment = result.skip_assignment;
  resp.member_id = result.member_id;
  for (auto& m : result.members) {
    kafka::join_group_response::join_group_response_member jm;
    jm.member_id = std::move(m.member_id);
    jm.group_instance_id = std::move(m.group_instance_id);
    jm.metadata = std::move(m.metadata);
    resp.members.push_back(std::move(jm));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- SyncGroup ----

awaitable<handler_response> handle_sync_group(broker_context& ctx, connection_state&,
                                              const request& req) {
  kafka::sync_group_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "SyncGroup body");

  sync_result result;
  if (in.group_id.empty()) {
    result.error = error_code::invalid_group_id;
  } else {
    auto lookup = co_await ensure_coordinator(ctx, in.group_id);
    result.error = coordinator_error(lookup);
  }
  if (result.error == error_code::none) {
    sync_params p;
    p.member_id = in.member_id;
    p.group_instance_id = in.group_instance_id;
    p.generation = in.generation_id;
    if (req.api_version >= 5) {
      p.protocol_type = in.protocol_type;
      p.protocol_name = in.protocol_name;
    }
    for (auto& a : in.assignments) p.assignments.emplace_back(a.member_id, std::move(a.assignment));
    result = co_await await_callback<sync_result>(
        [&](auto done) { ctx.groups->sync(in.group_id, std::move(p), std::move(done)); });
  }
  kafka::sync_group_response resp;
  resp.error_code = code(result.error);
  if (result.error == error_code::none) {
    resp.protocol_type = result.protocol_type;
    resp.protocol_name = result.protocol_name;
    resp.assignment = std::move(result.assignment);
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- Heartbeat ----

awaitable<handler_response> handle_heartbeat(broker_context& ctx, connection_state&,
                                             const request& req) {
  kafka::heartbeat_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "Heartbeat body");
  error_code err = error_code::none;
  if (in.group_id.empty()) {
    err = error_code::invalid_group_id;
  } else {
    err = coordinator_error(co_await ensure_coordinator(ctx, in.group_id));
  }
  if (err == error_code::none) {
    err = ctx.groups->heartbeat(in.group_id, in.member_id, in.group_instance_id, in.generation_id);
  }
  kafka::heartbeat_response resp;
  resp.error_code = code(err);
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- LeaveGroup ----

awaitable<handler_response> handle_leave_group(broker_context& ctx, connection_state&,
                                               const request& req) {
  kafka::leave_group_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "LeaveGroup body");
  kafka::leave_group_response resp;
  error_code err = error_code::none;
  if (in.group_id.empty()) {
    err = error_code::invalid_group_id;
  } else {
    err = coordinator_error(co_await ensure_coordinator(ctx, in.group_id));
  }
  if (err != error_code::none) {
    resp.error_code = code(err);
    co_return handler_response{encode_body(resp, req.api_version)};
  }
  if (req.api_version < 3) {
    resp.error_code = code(ctx.groups->leave(in.group_id, in.member_id, std::nullopt));
  } else {
    for (const auto& m : in.members) {
      kafka::leave_group_response::member_response mr;
      mr.member_id = m.member_id;
      mr.group_instance_id = m.group_instance_id;
      mr.error_code = code(ctx.groups->leave(in.group_id, m.member_id, m.group_instance_id));
      resp.members.push_back(std::move(mr));
    }
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- ListGroups ----

awaitable<handler_response> handle_list_groups(broker_context& ctx, connection_state&,
                                               const request& req) {
  kafka::list_groups_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "ListGroups body");
  kafka::list_groups_response resp;
  std::vector<listed_group> groups =
      ctx.groups ? ctx.groups->list_held() : std::vector<listed_group>{};
  std::set<std::string> held;
  for (const auto& g : groups) held.insert(g.group_id);

  // Groups with stored offsets that no other live broker coordinates: Empty groups here.
  struct stored_t {
    bool ok = true;
    std::vector<std::string> ids;
  };
  auto stored = co_await run_blocking(ctx.blocking, [&ctx, &held]() -> stored_t {
    stored_t out;
    auto ids = ctx.meta->list_groups();
    if (!ids) {
      spdlog::warn("ListGroups: {}", ids.message());
      out.ok = false;
      return out;
    }
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    for (auto& id : *ids) {
      if (held.contains(id)) continue;
      auto l = ctx.meta->get_lease(group_coordinator::lease_name(id));
      if (l && *l && (*l)->owner != ctx.instance_id && (*l)->expires_at_ms > now &&
          ctx.broker_for_owner((*l)->owner)) {
        continue;
      }
      out.ids.push_back(std::move(id));
    }
    return out;
  });
  if (!stored.ok) resp.error_code = code(error_code::coordinator_not_available);
  for (auto& id : stored.ids) groups.push_back(listed_group{std::move(id), "", group_state::empty});
  std::sort(groups.begin(), groups.end(),
            [](const auto& a, const auto& b) { return a.group_id < b.group_id; });

  for (const auto& g : groups) {
    const std::string state = group_state_name(g.state);
    if (req.api_version >= 4 && !in.states_filter.empty() &&
        std::none_of(in.states_filter.begin(), in.states_filter.end(),
                     [&](const std::string& s) { return equals_ignore_case(s, state); })) {
      continue;
    }
    if (req.api_version >= 5 && !in.types_filter.empty() &&
        std::none_of(in.types_filter.begin(), in.types_filter.end(),
                     [](const std::string& t) { return equals_ignore_case(t, "classic"); })) {
      continue;
    }
    kafka::list_groups_response::listed_group lg;
    lg.group_id = g.group_id;
    lg.protocol_type = g.protocol_type;
    lg.group_state = state;
    lg.group_type = "classic";
    resp.groups.push_back(std::move(lg));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- DescribeGroups ----

awaitable<handler_response> handle_describe_groups(broker_context& ctx, connection_state&,
                                                   const request& req) {
  kafka::describe_groups_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "DescribeGroups body");
  kafka::describe_groups_response resp;
  for (const auto& id : in.groups) {
    kafka::describe_groups_response::described_group dg;
    dg.group_id = id;
    error_code err = id.empty() ? error_code::invalid_group_id
                                : coordinator_error(co_await ensure_coordinator(ctx, id));
    std::optional<group_coordinator::group_snapshot> snap;
    if (err == error_code::none) {
      snap = ctx.groups->describe(id);
      if (!snap) err = error_code::not_coordinator;
    }
    if (err != error_code::none) {
      dg.error_code = code(err);
      resp.groups.push_back(std::move(dg));
      continue;
    }
    if (!snap->known) {
      // Only stored offsets (or nothing): Empty, or Dead for a group Kafka wouldn't know.
      auto offsets = co_await run_blocking(
          ctx.blocking, [&ctx, &id] { return ctx.meta->fetch_group_offsets(id); });
      if (!offsets) {
        dg.error_code = code(error_code::coordinator_not_available);
      } else {
        const bool any = std::any_of(offsets->begin(), offsets->end(),
                                     [](const auto& o) { return o.offset >= 0; });
        dg.group_state = group_state_name(any ? group_state::empty : group_state::dead);
      }
      resp.groups.push_back(std::move(dg));
      continue;
    }
    auto& d = snap->description;
    dg.group_state = group_state_name(d.state);
    dg.protocol_type = d.protocol_type;
    dg.protocol_data = d.protocol_name;
    for (auto& m : d.members) {
      kafka::describe_groups_response::described_group_member dm;
      dm.member_id = std::move(m.member_id);
      dm.group_instance_id = std::move(m.group_instance_id);
      dm.client_id = std::move(m.client_id);
      dm.client_host = std::move(m.client_host);
      dm.member_metadata = std::move(m.metadata);
      dm.member_assignment = std::move(m.assignment);
      dg.members.push_back(std::move(dm));
    }
    resp.groups.push_back(std::move(dg));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- DeleteGroups ----

awaitable<handler_response> handle_delete_groups(broker_context& ctx, connection_state&,
                                                 const request& req) {
  kafka::delete_groups_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "DeleteGroups body");
  kafka::delete_groups_response resp;
  for (const auto& id : in.groups_names) {
    kafka::delete_groups_response::deletable_group_result res;
    res.group_id = id;
    error_code err = error_code::none;
    coordinator_lookup lookup;
    if (id.empty()) {
      err = error_code::invalid_group_id;
    } else {
      lookup = co_await ensure_coordinator(ctx, id);
      err = coordinator_error(lookup);
    }
    bool known = false;
    if (err == error_code::none) err = ctx.groups->begin_delete(id, known);
    if (err == error_code::none) {
      const auto fence = *lookup.fence;
      auto deleted = co_await run_blocking(
          ctx.blocking, [&ctx, &id, &fence] { return ctx.meta->delete_group(id, fence); });
      ctx.groups->finish_delete(id);
      if (!deleted) {
        switch (deleted.code()) {
          case metadata::errc::not_found:
            if (!known) err = error_code::group_id_not_found;
            break;
          case metadata::errc::fenced:
            ctx.groups->lost(id, fence.epoch);
            err = error_code::not_coordinator;
            break;
          case metadata::errc::invalid_argument:
            err = error_code::invalid_group_id;
            break;
          default:
            spdlog::warn("DeleteGroups {}: {}", id, deleted.message());
            err = error_code::coordinator_not_available;
            break;
        }
      } else {
        spdlog::info("group {}: deleted", id);
      }
    }
    res.error_code = code(err);
    resp.results.push_back(std::move(res));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// The versions are what is implemented end to end (see the README).
std::vector<api_handler> group_handlers() {
  return {
      {8, 0, 8, &handle_offset_commit},      // v9+: KIP-848 member epochs
      {9, 0, 8, &handle_offset_fetch},       // v8: several groups per request
      {10, 0, 4, &handle_find_coordinator},  // v4: batched keys; v5+: later
      {11, 0, 9, &handle_join_group},        //
      {12, 0, 4, &handle_heartbeat},         //
      {13, 0, 5, &handle_leave_group},       //
      {14, 0, 5, &handle_sync_group},        //
      {15, 0, 5, &handle_describe_groups},   // v6: GROUP_ID_NOT_FOUND for unknown groups, later
      {16, 0, 5, &handle_list_groups},       //
      {42, 0, 2, &handle_delete_groups},     //
      {47, 0, 0, &handle_offset_delete},     //
  };
}

}  // namespace sh::broker
