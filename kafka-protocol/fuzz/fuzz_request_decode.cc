// libFuzzer target: any bytes as any request (api key and version from the first 4 bytes).
// Oracle: decoding must never crash or over-allocate, and a decoded message must survive
// encode -> decode unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "sh/kafka/messages/all.h"
#include "sh/kafka/wire.h"

namespace {

template <class M>
void check(std::span<const uint8_t> body, int16_t version) {
  sh::kafka::byte_reader r(body);
  M m;
  if (!m.decode(r, version)) return;
  auto bytes = sh::kafka::encode_message(m, version);
  sh::kafka::byte_reader r2(bytes);
  M again;
  if (!again.decode(r2, version) || !(again == m) || r2.remaining() != 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const auto key = static_cast<int16_t>(data[0] % 70);
  const auto version = static_cast<int16_t>(data[1] % 20);
  const bool response = data[2] & 1;
  std::span<const uint8_t> body(data + 4, size - 4);
  auto visit = [&](auto tag) { check<typename decltype(tag)::type>(body, version); };
  if (response) {
    sh::kafka::visit_response_type(key, visit);
  } else {
    sh::kafka::visit_request_type(key, visit);
  }
  // Headers and the consumer protocol types too.
  switch (data[3] % 4) {
    case 0:
      check<sh::kafka::request_header>(body, static_cast<int16_t>(version % 3));
      break;
    case 1:
      check<sh::kafka::response_header>(body, static_cast<int16_t>(version % 2));
      break;
    case 2:
      check<sh::kafka::consumer_protocol_subscription>(body, static_cast<int16_t>(version % 4));
      break;
    default:
      check<sh::kafka::consumer_protocol_assignment>(body, static_cast<int16_t>(version % 4));
      break;
  }
  return 0;
}
