#include "s3_sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace sh::storage::s3 {
namespace {

using digest = std::vector<uint8_t>;

digest hmac(std::span<const uint8_t> key, std::string_view msg) {
  digest out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out.data(), &len);
  out.resize(len);
  return out;
}

std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// SigV4 canonical header value: trimmed, inner runs of spaces collapsed to one.
std::string trim_collapse(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace

std::string uri_encode(std::string_view s, bool encode_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || (c == '/' && !encode_slash)) {
      out += ch;
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

std::string hex(std::span<const uint8_t> data) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (uint8_t b : data) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::string sha256_hex(std::span<const uint8_t> data) {
  uint8_t md[SHA256_DIGEST_LENGTH];
  SHA256(data.data(), data.size(), md);
  return hex(md);
}

std::string md5_base64(std::span<const uint8_t> data) {
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr);
  unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(b64, md, static_cast<int>(len));
  return std::string(reinterpret_cast<char*>(b64), static_cast<size_t>(n));
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[17];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string canonical_query(const pairs& query) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(query.size());
  for (const auto& [k, v] : query) enc.emplace_back(uri_encode(k, true), uri_encode(v, true));
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

signature sign(const sign_input& in) {
  std::vector<std::pair<std::string, std::string>> hdrs;
  hdrs.reserve(in.headers.size());
  for (const auto& [k, v] : in.headers) hdrs.emplace_back(lower(k), trim_collapse(v));
  std::sort(hdrs.begin(), hdrs.end());
  std::string canonical_headers;
  std::string signed_headers;
  for (const auto& [k, v] : hdrs) {
    canonical_headers += k + ":" + v + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += k;
  }

  signature out;
  out.canonical_request = std::string(in.method) + "\n" + std::string(in.canonical_uri) + "\n" +
                          std::string(in.canonical_query) + "\n" + canonical_headers + "\n" +
                          signed_headers + "\n" + std::string(in.payload_hash);
  const std::string date(in.amz_date.substr(0, 8));
  const std::string scope = date + "/" + std::string(in.region) + "/s3/aws4_request";
  out.string_to_sign = "AWS4-HMAC-SHA256\n" + std::string(in.amz_date) + "\n" + scope + "\n" +
                       sha256_hex(as_bytes(out.canonical_request));

  const std::string k_secret = "AWS4" + std::string(in.secret_key);
  const digest k_date = hmac(as_bytes(k_secret), date);
  const digest k_region = hmac(k_date, in.region);
  const digest k_service = hmac(k_region, "s3");
  const digest k_signing = hmac(k_service, "aws4_request");
  out.signature = hex(hmac(k_signing, out.string_to_sign));
  out.authorization = "AWS4-HMAC-SHA256 Credential=" + std::string(in.access_key) + "/" + scope +
                      ", SignedHeaders=" + signed_headers + ", Signature=" + out.signature;
  return out;
}

}  // namespace sh::storage::s3
