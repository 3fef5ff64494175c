#include <spdlog/spdlog.h>

#include <algorithm>

#include "handlers.h"
#include "sh/kafka/messages/api_keys.h"

namespace sh::broker {

// The one place each API's served version range is declared. Ranges are what the handler
// implements end to end, not what the codec can parse.
const std::vector<api_handler>& handler_table() {
  static const std::vector<api_handler> table = [] {
    std::vector<api_handler> t = {
        {0, 0, 9, &handle_produce},  // v0-v2: legacy sets converted to magic 2
        {1, 0, 12, &handle_fetch},   // v0-v3: down-converted to magic 0/1; v13+ (topic ids) not yet
        {2, 0, 7, &handle_list_offsets},    // v7: MAX_TIMESTAMP
        {3, 0, 12, &handle_metadata},       //
        {18, 0, 3, &handle_api_versions},   //
        {19, 0, 7, &handle_create_topics},  //
        {22, 0, 4, &handle_init_producer_id},
    };
    for (auto extra : {group_handlers(), admin_handlers()})
      t.insert(t.end(), extra.begin(), extra.end());
    std::sort(t.begin(), t.end(),
              [](const auto& a, const auto& b) { return a.api_key < b.api_key; });
    return t;
  }();
  return table;
}

const api_handler* find_handler(int16_t api_key) {
  for (const auto& h : handler_table()) {
    if (h.api_key == api_key) return &h;
  }
  return nullptr;
}

handler_response malformed_request(const request& req, const char* what) {
  spdlog::warn("malformed {} v{} request (correlation id {}, client {}): {}; closing connection",
               kafka::api_name(req.api_key), req.api_version, req.correlation_id,
               req.client_id.value_or("-"), what);
  handler_response r;
  r.send = false;
  r.close = true;
  return r;
}

}  // namespace sh::broker
