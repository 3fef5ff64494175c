#pragma once
// Shared by the group API handlers (src/groups/*.cc only: pulls in Asio).
#include <string>

#include "../handlers/handlers.h"
#include "group_coordinator.h"

namespace sh::broker {

// Makes this broker the group's coordinator when its lease is free, expired or already ours
// (fast path without I/O when the lease is held and fresh). `fence` is set when this broker is
// the coordinator; otherwise `error` (or the endpoint of the broker that is).
awaitable<coordinator_lookup> ensure_coordinator(broker_context& ctx, const std::string& group_id);

// The error a group request gets when this broker is not (or can't tell if it is) the
// coordinator; none when it is.
inline kafka::error_code coordinator_error(const coordinator_lookup& l) {
  if (l.fence) return kafka::error_code::none;
  return l.error != kafka::error_code::none ? l.error : kafka::error_code::not_coordinator;
}

// Kafka's client host format: "/<address>".
std::string client_host_of(const connection_state& conn);

// Kafka's limit on offset metadata strings (offset.metadata.max.bytes).
inline constexpr size_t max_offset_metadata_bytes = 4096;

awaitable<handler_response> handle_find_coordinator(broker_context&, connection_state&,
                                                    const request&);
awaitable<handler_response> handle_join_group(broker_context&, connection_state&, const request&);
awaitable<handler_response> handle_sync_group(broker_context&, connection_state&, const request&);
awaitable<handler_response> handle_heartbeat(broker_context&, connection_state&, const request&);
awaitable<handler_response> handle_leave_group(broker_context&, connection_state&, const request&);
awaitable<handler_response> handle_list_groups(broker_context&, connection_state&, const request&);
awaitable<handler_response> handle_describe_groups(broker_context&, connection_state&,
                                                   const request&);
awaitable<handler_response> handle_delete_groups(broker_context&, connection_state&,
                                                 const request&);
awaitable<handler_response> handle_offset_commit(broker_context&, connection_state&,
                                                 const request&);
awaitable<handler_response> handle_offset_fetch(broker_context&, connection_state&, const request&);
awaitable<handler_response> handle_offset_delete(broker_context&, connection_state&,
                                                 const request&);

}  // namespace sh::broker
