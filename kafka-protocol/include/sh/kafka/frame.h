#pragma once
// Framing helpers: a request's header (whose version depends on the api key and version it
// carries) and size-prefixed request/response frames.
#include <cstdint>
#include <span>
#include <vector>

#include "sh/common/result.h"
#include "sh/kafka/messages/api_keys.h"
#include "sh/kafka/messages/request_header.h"
#include "sh/kafka/messages/response_header.h"
#include "sh/kafka/wire.h"

namespace sh::kafka {

struct request_frame {
  request_header header;
  int16_t header_version = 1;
  std::span<const uint8_t> body;  // view into the parsed bytes
};

// Parses a request WITHOUT its 4-byte size prefix. The header version follows
// request_header_version(key, version) (unknown keys: v1, so an error can still be answered
// with the correlation id).
result<request_frame, decode_errc> parse_request(std::span<const uint8_t> request);

// size | response header (version from response_header_version) | body at api_version.
template <class M>
std::vector<uint8_t> encode_response_frame(int32_t correlation_id, int16_t api_key,
                                           int16_t api_version, const M& body) {
  byte_writer w;
  w.write_int32(0);
  response_header h;
  h.correlation_id = correlation_id;
  h.encode(w, response_header_version(api_key, api_version));
  body.encode(w, api_version);
  w.patch_int32(0, static_cast<int32_t>(w.size() - 4));
  return w.take();
}

// size | request header (version from the header's own key and version) | body.
template <class M>
std::vector<uint8_t> encode_request_frame(const request_header& header, const M& body) {
  byte_writer w;
  w.write_int32(0);
  header.encode(w, request_header_version(header.request_api_key, header.request_api_version));
  body.encode(w, header.request_api_version);
  w.patch_int32(0, static_cast<int32_t>(w.size() - 4));
  return w.take();
}

}  // namespace sh::kafka
