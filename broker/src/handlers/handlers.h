#pragma once
// Request handlers, one file per API. Each declares the versions it serves in the table in
// handler_table.cc; ApiVersions is derived from that table.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../asio_util.h"
#include "../broker_context.h"
#include "../response_gather.h"
#include "sh/kafka/wire.h"

namespace sh::broker {

// Per-connection state that handlers share (lives on the connection's strand).
struct connection_state {
  // Produce requests append to the ingest object in request order: each takes a ticket when
  // read and waits for its turn before appending.
  uint64_t next_produce_ticket = 0;
  uint64_t produce_turn = 0;
  std::shared_ptr<asio::steady_timer> produce_turn_changed;
  std::string peer;
};

// std::allocator, except that resize() leaves new elements uninitialized: request frames
// (up to socket.request.max.bytes) are read over at once, so zero-filling them first is waste.
template <class T>
struct default_init_allocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = default_init_allocator<U>;
  };
  default_init_allocator() = default;
  template <class U>
  default_init_allocator(const default_init_allocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
struct frame_bytes : std::vector<uint8_t, default_init_allocator<uint8_t>> {
  using std::vector<uint8_t, default_init_allocator<uint8_t>>::vector;
  // Tests build frames as plain byte vectors.
  frame_bytes& operator=(const std::vector<uint8_t>& v) {
    assign(v.begin(), v.end());
    return *this;
  }
};

struct request {
  int16_t api_key = 0;
  int16_t api_version = 0;
  int32_t correlation_id = 0;
  std::optional<std::string> client_id;
  frame_bytes frame;       // the whole request frame (without the size prefix)
  size_t body_offset = 0;  // where the body starts after the header
  uint64_t produce_ticket = 0;
  std::span<const uint8_t> body() const {
    return std::span<const uint8_t>(frame).subspan(body_offset);
  }
};

struct handler_response {
  std::vector<uint8_t> body;  // encoded response body (without header)
  bool send = true;           // false: acks=0 produce
  bool close = false;         // malformed request: close the connection after earlier responses
  // When set, the body continues with these pieces (zero-copy Fetch records).
  std::shared_ptr<const response_gather> gather = nullptr;
};

using handler_fn = awaitable<handler_response> (*)(broker_context&, connection_state&,
                                                   const request&);

struct api_handler {
  int16_t api_key;
  int16_t min_version;
  int16_t max_version;
  handler_fn fn;
};

const std::vector<api_handler>& handler_table();
// Handlers registered by the consumer-group coordinator (src/groups/) and the admin APIs
// (src/admin/); merged into handler_table().
std::vector<api_handler> group_handlers();
std::vector<api_handler> admin_handlers();
const api_handler* find_handler(int16_t api_key);

awaitable<handler_response> handle_api_versions(broker_context&, connection_state&, const request&);
awaitable<handler_response> handle_metadata(broker_context&, connection_state&, const request&);
awaitable<handler_response> handle_produce(broker_context&, connection_state&, const request&);
awaitable<handler_response> handle_fetch(broker_context&, connection_state&, const request&);
awaitable<handler_response> handle_list_offsets(broker_context&, connection_state&, const request&);
awaitable<handler_response> handle_init_producer_id(broker_context&, connection_state&,
                                                    const request&);
awaitable<handler_response> handle_create_topics(broker_context&, connection_state&,
                                                 const request&);

// An encoded ApiVersions v0 body answering an unsupported version (UNSUPPORTED_VERSION plus
// the supported ranges), as Kafka does.
std::vector<uint8_t> api_versions_unsupported_body();

// Helpers for handlers.
template <class M>
std::vector<uint8_t> encode_body(const M& msg, int16_t version) {
  kafka::byte_writer w;
  msg.encode(w, version);
  return w.take();
}
handler_response malformed_request(const request& req, const char* what);

}  // namespace sh::broker
