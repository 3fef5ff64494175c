#include "sh/kafka/frame.h"

#include <string>

namespace sh::kafka {

result<request_frame, decode_errc> parse_request(std::span<const uint8_t> request) {
  // Every header version starts with the api key and version.
  byte_reader peek(request);
  const int16_t key = peek.read_int16();
  const int16_t version = peek.read_int16();
  if (!peek.ok()) return make_error(decode_errc::truncated, "request shorter than 4 bytes");
  request_frame f;
  f.header_version = request_header_version(key, version);
  byte_reader r(request);
  if (!f.header.decode(r, f.header_version)) {
    return make_error(r.error(), std::string("request header: ") + decode_errc_name(r.error()));
  }
  f.body = r.rest();
  return f;
}

}  // namespace sh::kafka
