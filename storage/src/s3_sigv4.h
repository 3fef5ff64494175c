#pragma once
// AWS Signature Version 4 for S3 requests, computed here with OpenSSL (not curl's
// CURLOPT_AWS_SIGV4) so the canonical request is exactly what we send. Internal to storage.
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sh::storage::s3 {

// RFC 3986 percent-encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ is %XX
// (upper-case hex); '/' is kept when encode_slash is false (object key paths).
std::string uri_encode(std::string_view s, bool encode_slash);
std::string hex(std::span<const uint8_t> data);
std::string sha256_hex(std::span<const uint8_t> data);
std::string md5_base64(std::span<const uint8_t> data);
// "20130524T000000Z"
std::string amz_date(std::chrono::system_clock::time_point t);

using pairs = std::vector<std::pair<std::string, std::string>>;

// Query parameters, raw (unencoded), as the canonical query string: encoded, sorted by name then
// value, "k=v" joined by '&' ("uploads" becomes "uploads="). Send exactly this string.
std::string canonical_query(const pairs& query);

struct sign_input {
  std::string_view method;
  std::string_view canonical_uri;  // already encoded path, e.g. "/bucket/a%20b/c"
  std::string_view canonical_query;
  // Headers to sign (any case; values trimmed here). Must hold host, x-amz-date and
  // x-amz-content-sha256.
  pairs headers;
  std::string_view payload_hash;  // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
  std::string_view amz_date;      // "20130524T000000Z"
  std::string_view region;
  std::string_view access_key;
  std::string_view secret_key;
};

struct signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;      // hex
  std::string authorization;  // the Authorization header's value
};

signature sign(const sign_input& in);

}  // namespace sh::storage::s3
