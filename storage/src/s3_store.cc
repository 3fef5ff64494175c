// object_store over the S3 REST API with libcurl easy handles and our own SigV4 signing.
//
// Threading: any number of threads may call one s3_store. Each call borrows an easy handle from
// a small pool (one per concurrently calling worker, created on demand, reused, so connections
// stay open between calls) and returns it afterwards. Nothing else is mutable.
//
// Retries: 5xx answers (503 SlowDown included), S3's RequestTimeout, curl timeouts and
// connection failures are retried up to max_attempts with exponential backoff and full jitter;
// every other answer is final. PUT and DELETE are idempotent, so retrying them is safe.
#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "s3_sigv4.h"
#include "sh/storage/object_store.h"

namespace sh::storage {
namespace {

using s3::pairs;

constexpr std::string_view empty_sha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr size_t delete_batch = 1000;  // S3's limit per DeleteObjects request

void curl_global_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// --- minimal XML for S3's flat answers (no attributes on the elements we read) ---------------

// Text of the next <tag>...</tag> at or after `pos`; advances pos past it. nullopt if absent.
std::optional<std::string_view> xml_next(std::string_view doc, std::string_view tag, size_t& pos) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  size_t a = doc.find(open, pos);
  if (a == std::string_view::npos) return std::nullopt;
  a += open.size();
  size_t b = doc.find(close, a);
  if (b == std::string_view::npos) return std::nullopt;
  pos = b + close.size();
  return doc.substr(a, b - a);
}

std::string xml_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out += s.substr(i);
      break;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out += '&';
    } else if (ent == "lt") {
      out += '<';
    } else if (ent == "gt") {
      out += '>';
    } else if (ent == "quot") {
      out += '"';
    } else if (ent == "apos") {
      out += '\'';
    } else if (ent.size() > 1 && ent[0] == '#') {
      uint32_t cp = 0;
      const bool is_hex = ent[1] == 'x' || ent[1] == 'X';
      std::string_view digits = ent.substr(is_hex ? 2 : 1);
      auto [p, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), cp, is_hex ? 16 : 10);
      if (ec != std::errc() || p != digits.data() + digits.size() || cp > 0x10FFFF) {
        out += s.substr(i, semi - i + 1);
      } else if (cp < 0x80) {  // UTF-8 encode
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
    } else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// --- HTTP ------------------------------------------------------------------------------------

struct http_request {
  const char* method = "GET";  // GET, HEAD, PUT, POST, DELETE
  bool object = true;          // an object (key below) or the bucket itself
  std::string key;             // full key inside the bucket (store prefix included)
  pairs query;
  pairs signed_headers;  // besides host, x-amz-date, x-amz-content-sha256 (+ security token)
  std::span<const uint8_t> body;
  std::string content_type;
};

struct http_response {
  long status = 0;
  bytes body;
  pairs headers;  // lower-case names, as received
  CURLcode curl = CURLE_OK;
  std::string curl_error;
  int attempts = 0;

  std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
  std::string body_text() const { return std::string(body.begin(), body.end()); }
  // S3's <Code> from an error body ("" for none, e.g. HEAD).
  std::string s3_code() const {
    size_t pos = 0;
    auto code = xml_next(std::string_view(reinterpret_cast<const char*>(body.data()), body.size()),
                         "Code", pos);
    return code ? xml_unescape(*code) : "";
  }
  std::string s3_message() const {
    size_t pos = 0;
    auto msg = xml_next(std::string_view(reinterpret_cast<const char*>(body.data()), body.size()),
                        "Message", pos);
    return msg ? xml_unescape(*msg) : "";
  }
};

struct upload_cursor {
  std::span<const uint8_t> data;
  size_t pos = 0;
};

size_t on_read(char* buf, size_t size, size_t n, void* user) {
  auto* up = static_cast<upload_cursor*>(user);
  const size_t count = std::min(size * n, up->data.size() - up->pos);
  std::memcpy(buf, up->data.data() + up->pos, count);
  up->pos += count;
  return count;
}

int on_seek(void* user, curl_off_t offset, int origin) {
  auto* up = static_cast<upload_cursor*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > up->data.size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  up->pos = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* resp = static_cast<http_response*>(user);
  resp->body.insert(resp->body.end(), data, data + size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* resp = static_cast<http_response*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    resp->headers.clear();  // a new response (after 100 Continue or a redirect)
  } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    std::string name = lower(trim(line.substr(0, colon)));
    std::string value(trim(line.substr(colon + 1)));
    if (name == "content-length") {
      uint64_t len = 0;
      std::from_chars(value.data(), value.data() + value.size(), len);
      // Reserve, but never trust a header for more than a reasonable up-front allocation.
      resp->body.reserve(std::min<uint64_t>(len, uint64_t{256} << 20));
    }
    resp->headers.emplace_back(std::move(name), std::move(value));
  }
  return size * n;
}

class curl_pool {
 public:
  curl_pool() = default;
  curl_pool(const curl_pool&) = delete;
  curl_pool& operator=(const curl_pool&) = delete;
  ~curl_pool() {
    for (CURL* h : _free) curl_easy_cleanup(h);
  }
  CURL* acquire() {
    {
      std::lock_guard lock(_mu);
      if (!_free.empty()) {
        CURL* h = _free.back();
        _free.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }
  void release(CURL* h) {
    std::lock_guard lock(_mu);
    _free.push_back(h);
  }

 private:
  std::mutex _mu;
  std::vector<CURL*> _free;
};

struct endpoint_parts {
  std::string scheme;     // "http" or "https"
  std::string authority;  // "host[:port]"
  std::string base_path;  // "" or "/some/path" (no trailing '/')
};

sresult<endpoint_parts> parse_endpoint(const std::string& endpoint) {
  endpoint_parts out;
  const size_t sep = endpoint.find("://");
  if (sep == std::string::npos) {
    return make_error(errc::invalid_argument,
                      "s3 endpoint '" + endpoint + "' needs a scheme (http:// or https://)");
  }
  out.scheme = lower(endpoint.substr(0, sep));
  if (out.scheme != "http" && out.scheme != "https") {
    return make_error(errc::invalid_argument,
                      "s3 endpoint '" + endpoint + "': scheme must be http or https");
  }
  std::string rest = endpoint.substr(sep + 3);
  const size_t slash = rest.find('/');
  out.authority = rest.substr(0, slash);
  if (slash != std::string::npos) out.base_path = rest.substr(slash);
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  if (out.authority.empty() || out.authority.find_first_of("?#@ ") != std::string::npos) {
    return make_error(errc::invalid_argument, "s3 endpoint '" + endpoint + "': bad host");
  }
  return out;
}

// --- the store -------------------------------------------------------------------------------

class s3_store final : public object_store {
 public:
  s3_store(std::string bucket, std::string prefix, s3_options opts, endpoint_parts ep)
      : _bucket(std::move(bucket)),
        _prefix(std::move(prefix)),
        _key_prefix(_prefix.empty() ? "" : _prefix + "/"),
        _opts(std::move(opts)),
        _ep(std::move(ep)),
        _endpoint_text(_ep.scheme + "://" + _ep.authority + _ep.base_path) {}

  sresult<void> put(const std::string& key, std::span<const uint8_t> data) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    if (_opts.multipart_threshold > 0 && data.size() > _opts.multipart_threshold) {
      return multipart_upload(key, data, _opts.multipart_part_size);
    }
    http_request req;
    req.method = "PUT";
    req.key = _key_prefix + key;
    req.body = data;
    auto resp = perform(req);
    if (resp.curl == CURLE_OK && resp.status == 200) return {};
    return to_error("put", key, resp);
  }

  sresult<void> put_multipart(const std::string& key, std::span<const uint8_t> data,
                              uint64_t part_size) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    return multipart_upload(key, data, part_size == 0 ? _opts.multipart_part_size : part_size);
  }

  sresult<void> put_if_absent(const std::string& key, std::span<const uint8_t> data) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    if (auto ok = conditional_put_supported(); !ok) {
      return make_error(ok.code(), "put_if_absent '" + key + "': " + ok.message());
    }
    auto resp = conditional_put(_key_prefix + key, data);
    if (resp.curl == CURLE_OK && resp.status == 200) return {};
    if (resp.curl == CURLE_OK && resp.status == 412) {
      // After a retry, the 412 may answer our own earlier attempt whose response was lost. The
      // object then holds exactly our bytes; any other content is someone else's win. (Racers
      // writing identical bytes can thus both see ok: the object is what each of them wanted.)
      if (resp.attempts > 1) {
        auto current = get(key);
        if (current && current->size() == data.size() &&
            std::equal(data.begin(), data.end(), current->begin())) {
          return {};
        }
      }
      return make_error(errc::already_exists,
                        "put_if_absent '" + key + "': object exists (HTTP 412)" + where(resp));
    }
    if (resp.curl == CURLE_OK && (resp.status == 501 || resp.status == 400) &&
        resp.s3_code() == "NotImplemented") {
      _conditional.store(cond_no);
    }
    return to_error("put_if_absent", key, resp);
  }

  sresult<bytes> get(const std::string& key) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    http_request req;
    req.key = _key_prefix + key;
    auto resp = perform(req);
    if (resp.curl == CURLE_OK && resp.status == 200) return std::move(resp.body);
    return to_error("get", key, resp);
  }

  sresult<bytes> get_range(const std::string& key, uint64_t offset, uint64_t length) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    // S3 has no empty range: answer from the size.
    if (length == 0) return empty_range(key, offset, false);
    http_request req;
    req.key = _key_prefix + key;
    std::string range = "bytes=" + std::to_string(offset) + "-";
    if (length - 1 <= UINT64_MAX - offset) range += std::to_string(offset + (length - 1));
    req.signed_headers.emplace_back("range", range);
    auto resp = perform(req);
    if (resp.curl == CURLE_OK && resp.status == 206) {
      // Content-Range: bytes <first>-<last>/<size>; the server must start where we asked.
      const std::string cr = resp.header("content-range");
      uint64_t first = 0;
      const size_t sp = cr.find(' ');
      if (sp == std::string::npos ||
          std::from_chars(cr.data() + sp + 1, cr.data() + cr.size(), first).ec != std::errc() ||
          first != offset || resp.body.size() > length) {
        return make_error(errc::io_error, "get_range '" + key + "': server answered range '" + cr +
                                              "' with " + std::to_string(resp.body.size()) +
                                              " bytes for " + range + where(resp));
      }
      return std::move(resp.body);
    }
    if (resp.curl == CURLE_OK && resp.status == 200) {  // range ignored: the whole object came
      if (offset > resp.body.size()) return past_end(key, offset, resp.body.size());
      const uint64_t n = std::min<uint64_t>(length, resp.body.size() - offset);
      return bytes(resp.body.begin() + static_cast<ptrdiff_t>(offset),
                   resp.body.begin() + static_cast<ptrdiff_t>(offset + n));
    }
    if (resp.curl == CURLE_OK && resp.status == 416) return empty_range(key, offset, true);
    return to_error("get_range", key, resp);
  }

  sresult<object_info> head(const std::string& key) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    http_request req;
    req.method = "HEAD";
    req.key = _key_prefix + key;
    auto resp = perform(req);
    if (resp.curl == CURLE_OK && resp.status == 200) {
      const std::string len = resp.header("content-length");
      uint64_t size = 0;
      auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), size);
      if (ec != std::errc() || p != len.data() + len.size()) {
        return make_error(errc::io_error,
                          "head '" + key + "': bad Content-Length '" + len + "'" + where(resp));
      }
      return object_info{key, size};
    }
    return to_error("head", key, resp);
  }

  sresult<std::vector<object_info>> list(const std::string& prefix) override {
    if (prefix.find('\0') != std::string::npos || prefix.starts_with('/') ||
        prefix.find("//") != std::string::npos) {
      return make_error(errc::invalid_argument, "list: invalid prefix '" + prefix + "'");
    }
    std::vector<object_info> out;
    std::string token;
    const std::string full_prefix = _key_prefix + prefix;
    while (true) {
      http_request req;
      req.object = false;
      req.query = {{"list-type", "2"},
                   {"max-keys", std::to_string(_opts.list_page_size)},
                   {"prefix", full_prefix}};
      if (!token.empty()) req.query.emplace_back("continuation-token", token);
      auto resp = perform(req);
      if (resp.curl != CURLE_OK || resp.status != 200) return to_error("list", prefix, resp);
      std::string_view doc(reinterpret_cast<const char*>(resp.body.data()), resp.body.size());
      size_t pos = 0;
      while (auto entry = xml_next(doc, "Contents", pos)) {
        size_t p = 0;
        auto k = xml_next(*entry, "Key", p);
        p = 0;
        auto sz = xml_next(*entry, "Size", p);
        uint64_t size = 0;
        if (!k || !sz ||
            std::from_chars(sz->data(), sz->data() + sz->size(), size).ec != std::errc()) {
          return make_error(errc::io_error,
                            "list '" + prefix + "': malformed <Contents> entry" + where(resp));
        }
        std::string key = xml_unescape(*k);
        // Keys outside our prefix cannot come back from a prefixed LIST; skip them regardless.
        if (!key.starts_with(full_prefix)) continue;
        out.push_back(object_info{key.substr(_key_prefix.size()), size});
      }
      pos = 0;
      auto truncated = xml_next(doc, "IsTruncated", pos);
      if (!truncated || *truncated != "true") break;
      pos = 0;
      auto next = xml_next(doc, "NextContinuationToken", pos);
      if (!next || next->empty()) {
        return make_error(
            errc::io_error,
            "list '" + prefix + "': truncated answer without a continuation token" + where(resp));
      }
      token = xml_unescape(*next);
    }
    std::sort(out.begin(), out.end(),
              [](const object_info& a, const object_info& b) { return a.key < b.key; });
    return out;
  }

  sresult<void> remove(const std::string& key) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    http_request req;
    req.method = "DELETE";
    req.key = _key_prefix + key;
    auto resp = perform(req);
    if (resp.curl == CURLE_OK && (resp.status == 204 || resp.status == 200 ||
                                  (resp.status == 404 && resp.s3_code() != "NoSuchBucket"))) {
      return {};
    }
    return to_error("remove", key, resp);
  }

  sresult<void> remove_many(std::span<const std::string> keys) override {
    for (const auto& key : keys) {
      if (auto ok = validate_key(key); !ok) return ok.error();
    }
    for (size_t start = 0; start < keys.size(); start += delete_batch) {
      const auto batch = keys.subspan(start, std::min(delete_batch, keys.size() - start));
      std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>";
      for (const auto& key : batch) {
        xml += "<Object><Key>" + xml_escape(_key_prefix + key) + "</Key></Object>";
      }
      xml += "</Delete>";
      std::span<const uint8_t> body(reinterpret_cast<const uint8_t*>(xml.data()), xml.size());
      http_request req;
      req.method = "POST";
      req.object = false;
      req.query = {{"delete", ""}};
      // DeleteObjects requires Content-MD5 (Swift and AWS both reject it without).
      req.signed_headers.emplace_back("content-md5", s3::md5_base64(body));
      req.content_type = "application/xml";
      req.body = body;
      auto resp = perform(req);
      const std::string what = std::to_string(batch.size()) + " keys from '" + batch.front() + "'";
      if (resp.curl != CURLE_OK || resp.status != 200) return to_error("remove_many", what, resp);
      // Quiet mode lists only failures; an absent key is not one.
      std::string_view doc(reinterpret_cast<const char*>(resp.body.data()), resp.body.size());
      size_t pos = 0;
      while (auto err = xml_next(doc, "Error", pos)) {
        size_t p = 0;
        auto code = xml_next(*err, "Code", p);
        if (code && *code == "NoSuchKey") continue;
        p = 0;
        auto key = xml_next(*err, "Key", p);
        p = 0;
        auto msg = xml_next(*err, "Message", p);
        return make_error(errc::io_error,
                          "remove_many: '" + (key ? xml_unescape(*key) : std::string("?")) +
                              "': " + (code ? xml_unescape(*code) : std::string("?")) + ": " +
                              (msg ? xml_unescape(*msg) : std::string()) + where(resp));
      }
    }
    return {};
  }

  std::string describe() const override {
    return "s3://" + _bucket + (_prefix.empty() ? "" : "/" + _prefix) + " at " + _endpoint_text;
  }

  sresult<void> create_bucket() {
    http_request req;
    req.method = "PUT";
    req.object = false;
    std::string xml;
    if (_opts.region != "us-east-1") {
      xml =
          "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
          "<LocationConstraint>" +
          xml_escape(_opts.region) + "</LocationConstraint></CreateBucketConfiguration>";
      req.body = {reinterpret_cast<const uint8_t*>(xml.data()), xml.size()};
    }
    auto resp = perform(req);
    if (resp.curl == CURLE_OK &&
        (resp.status == 200 ||
         (resp.status == 409 && resp.s3_code() == "BucketAlreadyOwnedByYou"))) {
      return {};
    }
    return to_error("create_bucket", _bucket, resp);
  }

 private:
  std::string where(const http_response& resp) const {
    return " (" + describe() + ", " + std::to_string(resp.attempts) +
           (resp.attempts == 1 ? " attempt)" : " attempts)");
  }

  error_info<errc> past_end(const std::string& key, uint64_t offset, uint64_t size) const {
    return make_error(errc::invalid_argument, "get_range '" + key + "': offset " +
                                                  std::to_string(offset) + " is past the end (" +
                                                  std::to_string(size) + " bytes)");
  }

  // An answer with no bytes: for length 0, or after 416 (S3 refuses a range starting at the
  // end, and any range of an empty object). The size tells "at the end" from "past it".
  sresult<bytes> empty_range(const std::string& key, uint64_t offset, bool refused) {
    auto info = head(key);
    if (!info) return info.error();
    if (offset > info->size) return past_end(key, offset, info->size);
    if (!refused || offset == info->size) return bytes{};
    return make_error(errc::io_error, "get_range '" + key + "': server refused range at " +
                                          std::to_string(offset) + " of " +
                                          std::to_string(info->size) + " bytes");
  }

  static bool retriable(const http_response& r) {
    switch (r.curl) {
      case CURLE_OK:
        break;
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_CONNECT:
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
        return true;
      default:
        return false;
    }
    // 501 Not Implemented is an answer, not a hiccup.
    if (r.status >= 500) return r.status != 501;
    // AWS answers a conditional PUT racing another write to the same key with 409
    // ConditionalRequestConflict and asks for a retry.
    if (r.status == 409) return r.s3_code() == "ConditionalRequestConflict";
    return r.status == 400 && r.s3_code() == "RequestTimeout";
  }

  std::chrono::milliseconds backoff(int attempt) const {
    // Full jitter: uniform in [0, min(max, base * 2^attempt)], so clients retrying together
    // spread out instead of hammering the server in lock-step.
    thread_local std::mt19937_64 rng{std::random_device{}()};
    const int64_t base = std::max<int64_t>(1, _opts.backoff_base.count());
    const int64_t cap = std::max<int64_t>(base, _opts.backoff_max.count());
    const int64_t ceiling = std::min<int64_t>(cap, base << std::min(attempt, 20));
    return std::chrono::milliseconds(
        std::uniform_int_distribution<int64_t>(ceiling / 2, ceiling)(rng));
  }

  http_response perform(const http_request& req) {
    // Hashing the body once serves every attempt; the server rejects a body that doesn't match.
    const std::string payload_hash =
        req.body.empty() ? std::string(empty_sha256) : s3::sha256_hex(req.body);
    http_response resp;
    for (int attempt = 1;; ++attempt) {
      CURL* h = _handles.acquire();
      if (h == nullptr) {
        resp = http_response{};
        resp.curl = CURLE_FAILED_INIT;
        resp.curl_error = "curl_easy_init failed";
      } else {
        resp = perform_once(h, req, payload_hash);
        _handles.release(h);
      }
      resp.attempts = attempt;
      if (attempt >= _opts.max_attempts || !retriable(resp)) return resp;
      std::this_thread::sleep_for(backoff(attempt - 1));
    }
  }

  http_response perform_once(CURL* h, const http_request& req, const std::string& payload_hash) {
    curl_easy_reset(h);  // keeps the handle's open connections
    const bool virtual_host = !_opts.path_style;
    const std::string host = virtual_host ? _bucket + "." + _ep.authority : _ep.authority;
    std::string path = _ep.base_path;
    if (!virtual_host) path += "/" + s3::uri_encode(_bucket, true);
    if (req.object) {
      path += "/" + s3::uri_encode(req.key, false);
    } else if (virtual_host) {
      path += "/";
    }
    const std::string query = s3::canonical_query(req.query);
    const std::string date = s3::amz_date(std::chrono::system_clock::now());

    s3::sign_input in;
    in.method = req.method;
    in.canonical_uri = path;
    in.canonical_query = query;
    in.headers = {{"host", host}, {"x-amz-date", date}, {"x-amz-content-sha256", payload_hash}};
    if (!_opts.session_token.empty()) {
      in.headers.emplace_back("x-amz-security-token", _opts.session_token);
    }
    for (const auto& hv : req.signed_headers) in.headers.push_back(hv);
    in.payload_hash = payload_hash;
    in.amz_date = date;
    in.region = _opts.region;
    in.access_key = _opts.access_key;
    in.secret_key = _opts.secret_key;
    const s3::signature sig = s3::sign(in);

    curl_slist* headers = nullptr;
    auto add = [&](const std::string& line) { headers = curl_slist_append(headers, line.c_str()); };
    for (const auto& [k, v] : in.headers) add(k + ": " + v);
    add("Authorization: " + sig.authorization);
    add("Expect:");  // no 100-continue round trip before uploads
    if (!req.content_type.empty()) add("Content-Type: " + req.content_type);

    http_response resp;
    upload_cursor up{req.body, 0};
    const std::string url = _ep.scheme + "://" + host + path + (query.empty() ? "" : "?" + query);
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(_opts.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(_opts.request_timeout.count()));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(_opts.stall_timeout.count()));
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp);
    if (!_opts.verify_tls) {
      curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!_opts.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, _opts.ca_file.c_str());

    const std::string_view method = req.method;
    if (method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (method == "PUT") {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt(h, CURLOPT_READDATA, &up);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, &up);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    } else if (method == "POST") {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      // Never a null pointer: curl would then read the body from the read callback.
      static const char empty_body[1] = {0};
      curl_easy_setopt(h, CURLOPT_POSTFIELDS,
                       req.body.empty() ? static_cast<const void*>(empty_body)
                                        : static_cast<const void*>(req.body.data()));
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    } else if (method == "DELETE") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }

    resp.curl = curl_easy_perform(h);
    if (resp.curl == CURLE_OK) {
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
    } else {
      resp.curl_error = errbuf[0] != 0 ? errbuf : curl_easy_strerror(resp.curl);
    }
    curl_slist_free_all(headers);
    return resp;
  }

  error_info<errc> to_error(const char* op, const std::string& key,
                            const http_response& resp) const {
    const std::string head = std::string(op) + " '" + key + "': ";
    if (resp.curl != CURLE_OK) {
      const errc code = resp.curl == CURLE_OPERATION_TIMEDOUT ? errc::timeout
                        : retriable(resp)                     ? errc::unavailable
                                                              : errc::io_error;
      return make_error(code, head + resp.curl_error + where(resp));
    }
    const std::string s3_code = resp.s3_code();
    std::string detail = "HTTP " + std::to_string(resp.status);
    if (!s3_code.empty()) detail += " " + s3_code;
    if (std::string msg = resp.s3_message(); !msg.empty()) detail += ": " + msg;
    errc code = errc::io_error;
    std::string why;
    switch (resp.status) {
      case 400:
        code = s3_code == "RequestTimeout" ? errc::timeout : errc::io_error;
        break;
      case 403:
        code = errc::auth_failed;
        if (s3_code == "SignatureDoesNotMatch" || s3_code == "InvalidAccessKeyId") {
          why = "wrong credentials: ";
        } else if (s3_code == "RequestTimeTooSkewed") {
          why = "this machine's clock is off: ";
        } else {
          why = "access denied: ";
        }
        break;
      case 404:
        if (s3_code == "NoSuchBucket") {
          code = errc::invalid_argument;
          why = "bucket '" + _bucket + "' does not exist: ";
        } else {
          code = errc::not_found;
          why = "no such object: ";
        }
        break;
      case 412:
        code = errc::precondition_failed;
        break;
      case 416:
        code = errc::invalid_argument;
        break;
      case 501:
        code = errc::unsupported;
        break;
      default:
        if (resp.status >= 500) code = errc::unavailable;
    }
    return make_error(code, head + why + detail + where(resp));
  }

  // --- conditional put ---------------------------------------------------------------------

  http_response conditional_put(const std::string& full_key, std::span<const uint8_t> data) {
    http_request req;
    req.method = "PUT";
    req.key = full_key;
    req.body = data;
    req.signed_headers.emplace_back("if-none-match", "*");
    return perform(req);
  }

  // ok when the server honours If-None-Match: * on PUT, unsupported when it refuses or ignores
  // it. In `detect` mode the first call finds out (the answer is kept; a transient failure of
  // the probe is returned and the next call probes again).
  sresult<void> conditional_put_supported() {
    if (_opts.conditional_put == s3_options::conditional_put_mode::enabled) return {};
    if (_opts.conditional_put == s3_options::conditional_put_mode::disabled) {
      return make_error(errc::unsupported, "conditional put is disabled for " + describe() +
                                               " (s3_options::conditional_put)");
    }
    std::lock_guard lock(_probe_mu);
    if (_conditional.load() == cond_unknown) {
      auto found = probe_conditional_put();
      if (!found) return found.error();
      _conditional.store(*found ? cond_yes : cond_no);
    }
    if (_conditional.load() == cond_yes) return {};
    return make_error(errc::unsupported, "the S3 server at " + _endpoint_text +
                                             " does not honour If-None-Match: * on PUT, so an "
                                             "atomic create-if-absent is not possible there");
  }

  // Two conditional PUTs of a fresh scratch key: the first must succeed and the second must be
  // refused with 412. 501 / NotImplemented (Swift s3api) or a second 200 (the header ignored)
  // mean unsupported.
  sresult<bool> probe_conditional_put() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    const std::string key = "streamhouse-probe/conditional-put-" + std::to_string(rng());
    const std::string full = _key_prefix + key;
    const uint8_t one[1] = {'1'};
    auto refused = [](const http_response& r) {
      return r.curl == CURLE_OK && (r.status == 501 || r.s3_code() == "NotImplemented");
    };
    auto first = conditional_put(full, one);
    if (refused(first)) return false;
    if (first.curl != CURLE_OK || first.status != 200) {
      return to_error("put_if_absent probe", key, first);
    }
    auto second = conditional_put(full, one);
    (void)remove(key);
    if (second.curl == CURLE_OK && second.status == 412) return true;
    if (second.curl == CURLE_OK && second.status == 200) return false;
    if (refused(second)) return false;
    return to_error("put_if_absent probe", key, second);
  }

  // --- multipart upload --------------------------------------------------------------------

  sresult<void> multipart_upload(const std::string& key, std::span<const uint8_t> data,
                                 uint64_t part_size) {
    const std::string full = _key_prefix + key;
    if (part_size == 0) return make_error(errc::invalid_argument, "put_multipart: part size 0");
    const uint64_t parts = std::max<uint64_t>(1, (data.size() + part_size - 1) / part_size);
    if (parts > 10000) {  // S3's limit
      return make_error(errc::invalid_argument,
                        "put_multipart '" + key + "': " + std::to_string(parts) + " parts of " +
                            std::to_string(part_size) + " bytes (S3 allows 10000)");
    }

    // CreateMultipartUpload. A retry after a lost answer only leaves an unused upload behind,
    // which the bucket's lifecycle rule for incomplete uploads removes.
    http_request create;
    create.method = "POST";
    create.key = full;
    create.query = {{"uploads", ""}};
    auto created = perform(create);
    if (created.curl != CURLE_OK || created.status != 200) {
      return to_error("put_multipart (create)", key, created);
    }
    std::string upload_id;
    {
      size_t pos = 0;
      auto id = xml_next(as_text(created.body), "UploadId", pos);
      if (!id || id->empty()) {
        return make_error(errc::io_error, "put_multipart '" + key + "': no UploadId in the answer" +
                                              where(created));
      }
      upload_id = xml_unescape(*id);
    }

    // UploadPart, at most multipart_concurrency at once (this thread is one of them). Each part
    // is one request through perform(), so it is retried like any other.
    std::vector<std::string> etags(parts);
    std::atomic<uint64_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex error_mu;
    std::optional<error_info<errc>> first_error;
    auto worker = [&] {
      while (!failed.load()) {
        const uint64_t i = next.fetch_add(1);
        if (i >= parts) return;
        const uint64_t start = i * part_size;
        const uint64_t len = std::min<uint64_t>(part_size, data.size() - start);
        http_request req;
        req.method = "PUT";
        req.key = full;
        req.query = {{"partNumber", std::to_string(i + 1)}, {"uploadId", upload_id}};
        req.body = data.subspan(start, len);
        auto resp = perform(req);
        std::string etag = resp.header("etag");
        if (resp.curl == CURLE_OK && resp.status == 200 && !etag.empty()) {
          etags[i] = std::move(etag);
          continue;
        }
        auto err =
            resp.curl == CURLE_OK && resp.status == 200
                ? make_error(errc::io_error, "put_multipart '" + key + "': part " +
                                                 std::to_string(i + 1) + ": no ETag" + where(resp))
                : to_error(("put_multipart (part " + std::to_string(i + 1) + ")").c_str(), key,
                           resp);
        std::lock_guard lock(error_mu);
        if (!first_error) first_error = std::move(err);
        failed.store(true);
        return;
      }
    };
    const uint64_t helpers =
        std::min<uint64_t>(parts, static_cast<uint64_t>(std::max(1, _opts.multipart_concurrency))) -
        1;
    std::vector<std::thread> threads;
    threads.reserve(helpers);
    for (uint64_t t = 0; t < helpers; ++t) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
    if (first_error) return abort_upload(key, upload_id, std::move(*first_error));

    // CompleteMultipartUpload.
    std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUpload>";
    for (uint64_t i = 0; i < parts; ++i) {
      xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
             xml_escape(etags[i]) + "</ETag></Part>";
    }
    xml += "</CompleteMultipartUpload>";
    http_request complete;
    complete.method = "POST";
    complete.key = full;
    complete.query = {{"uploadId", upload_id}};
    complete.content_type = "application/xml";
    complete.body = {reinterpret_cast<const uint8_t*>(xml.data()), xml.size()};
    auto done = perform(complete);
    // S3 may answer 200 and still fail: the error is then the body (after whitespace it
    // sends to keep the connection alive while it assembles the object).
    const bool body_error = done.curl == CURLE_OK && done.status == 200 &&
                            as_text(done.body).find("<Error>") != std::string_view::npos;
    if (done.curl == CURLE_OK && done.status == 200 && !body_error) return {};
    if (done.curl == CURLE_OK && done.status == 404 && done.attempts > 1 &&
        done.s3_code() == "NoSuchUpload") {
      // Our earlier attempt completed it and its answer was lost: the object must be there now.
      auto info = head(key);
      if (info && info->size == data.size()) return {};
    }
    auto err = body_error ? make_error(errc::io_error, "put_multipart (complete) '" + key +
                                                           "': HTTP 200 " + done.s3_code() + ": " +
                                                           done.s3_message() + where(done))
                          : to_error("put_multipart (complete)", key, done);
    return abort_upload(key, upload_id, std::move(err));
  }

  // AbortMultipartUpload after a failure, so no parts are left (billed) behind; returns `why`,
  // noting a failed abort.
  error_info<errc> abort_upload(const std::string& key, const std::string& upload_id,
                                error_info<errc> why) {
    http_request req;
    req.method = "DELETE";
    req.key = _key_prefix + key;
    req.query = {{"uploadId", upload_id}};
    auto resp = perform(req);
    if (resp.curl == CURLE_OK && (resp.status == 204 || resp.status == 200 || resp.status == 404)) {
      return why;
    }
    return make_error(why.code, why.message + "; abort of upload " + upload_id +
                                    " failed too: " + to_error("abort", key, resp).message);
  }

  static std::string_view as_text(const bytes& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }

  enum cond_state : int { cond_unknown, cond_yes, cond_no };

  const std::string _bucket;
  const std::string _prefix;      // without leading or trailing '/'
  const std::string _key_prefix;  // "" or _prefix + "/"
  const s3_options _opts;
  const endpoint_parts _ep;
  const std::string _endpoint_text;
  curl_pool _handles;
  std::mutex _probe_mu;  // one conditional-put probe at a time
  std::atomic<int> _conditional{cond_unknown};
};

sresult<std::unique_ptr<s3_store>> make_s3_store(const std::string& bucket,
                                                 const std::string& prefix,
                                                 const s3_options& options) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::invalid_argument, "s3://" + bucket + "/" + prefix + ": " + why);
  };
  if (bucket.empty()) return bad("no bucket name");
  if (bucket.find_first_of("/?#% ") != std::string::npos) return bad("bad bucket name");
  std::string p = prefix;
  while (!p.empty() && p.front() == '/') p.erase(p.begin());
  while (!p.empty() && p.back() == '/') p.pop_back();
  if (!p.empty()) {
    if (auto ok = validate_key(p); !ok) return bad("bad prefix: " + ok.message());
  }
  if (options.access_key.empty() || options.secret_key.empty()) {
    return bad("access key and secret key are required");
  }
  if (options.region.empty()) return bad("region is required");
  if (options.max_attempts < 1) return bad("max_attempts must be at least 1");
  if (options.list_page_size < 1 || options.list_page_size > 1000) {
    return bad("list_page_size must be 1..1000");
  }
  if (options.multipart_part_size < 1 || options.multipart_part_size > (uint64_t{5} << 30)) {
    return bad("multipart_part_size must be 1 byte .. 5 GiB (S3 needs 5 MiB for all but the last)");
  }
  if (options.multipart_concurrency < 1) return bad("multipart_concurrency must be at least 1");
  const std::string endpoint = options.endpoint.empty()
                                   ? "https://s3." + options.region + ".amazonaws.com"
                                   : options.endpoint;
  auto ep = parse_endpoint(endpoint);
  if (!ep) return ep.error();
  curl_global_once();
  return std::make_unique<s3_store>(bucket, p, options, std::move(*ep));
}

}  // namespace

sresult<std::unique_ptr<object_store>> open_s3_store(const std::string& bucket,
                                                     const std::string& prefix,
                                                     const s3_options& options) {
  auto store = make_s3_store(bucket, prefix, options);
  if (!store) return store.error();
  return std::unique_ptr<object_store>(std::move(*store));
}

sresult<void> s3_create_bucket(const std::string& bucket, const s3_options& options) {
  auto store = make_s3_store(bucket, "", options);
  if (!store) return store.error();
  return (*store)->create_bucket();
}

}  // namespace sh::storage
