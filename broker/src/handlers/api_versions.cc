#include "handlers.h"
#include "sh/kafka/messages/api_versions_request.h"
#include "sh/kafka/messages/api_versions_response.h"

namespace sh::broker {
namespace {

kafka::api_versions_response supported_ranges() {
  kafka::api_versions_response resp;
  for (const auto& h : handler_table()) {
    kafka::api_versions_response::api_version v;
    v.api_key = h.api_key;
    v.min_version = h.min_version;
    v.max_version = h.max_version;
    resp.api_keys.push_back(v);
  }
  return resp;
}

}  // namespace

std::vector<uint8_t> api_versions_unsupported_body() {
  auto resp = supported_ranges();
  resp.error_code = static_cast<int16_t>(kafka::error_code::unsupported_version);
  return encode_body(resp, 0);
}

awaitable<handler_response> handle_api_versions(broker_context&, connection_state&,
                                                const request& req) {
  kafka::api_versions_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "ApiVersions body");
  auto resp = supported_ranges();
  co_return handler_response{encode_body(resp, req.api_version)};
}

}  // namespace sh::broker
