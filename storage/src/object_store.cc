// Key validation, error names and URL dispatch shared by every object_store implementation.
#include "sh/storage/object_store.h"

#include <string_view>

namespace sh::storage {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::ok:
      return "ok";
    case errc::not_found:
      return "not_found";
    case errc::io_error:
      return "io_error";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::corrupt:
      return "corrupt";
    case errc::precondition_failed:
      return "precondition_failed";
    case errc::timeout:
      return "timeout";
    case errc::unavailable:
      return "unavailable";
    case errc::auth_failed:
      return "auth_failed";
    case errc::unsupported:
      return "unsupported";
    case errc::already_exists:
      return "already_exists";
  }
  return "unknown";
}

sresult<void> validate_key(const std::string& key) {
  auto bad = [&](const char* why) {
    return make_error(errc::invalid_argument, "invalid key '" + key + "': " + why);
  };
  if (key.empty()) return bad("empty");
  // S3 limits keys to 1024 bytes; holding the local store to the same keeps both alike.
  if (key.size() > 1024) return bad("longer than 1024 bytes");
  if (key.front() == '/') return bad("absolute (leading '/')");
  if (key.find('\0') != std::string::npos) return bad("contains a NUL byte");
  std::string_view rest = key;
  while (true) {
    size_t slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    if (seg.empty()) return bad("empty path segment");
    if (seg == "." || seg == "..") return bad("'.' or '..' segment");
    // The local store's temporary files use this prefix; a key may not collide with them.
    if (seg.starts_with(".shtmp-")) return bad("segment starts with the reserved '.shtmp-'");
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return {};
}

sresult<void> object_store::remove_many(std::span<const std::string> keys) {
  for (const auto& key : keys) {
    if (auto r = remove(key); !r) return r;
  }
  return {};
}

sresult<void> object_store::put_if_absent(const std::string& key, std::span<const uint8_t>) {
  return make_error(errc::unsupported,
                    "put_if_absent '" + key + "': " + describe() + " cannot create atomically");
}

sresult<void> object_store::put_multipart(const std::string& key, std::span<const uint8_t> data,
                                          uint64_t) {
  return put(key, data);
}

sresult<void> object_store::probe() {
  // A prefix nothing uses: the answer is empty when all is well.
  auto r = list("streamhouse-probe/");
  if (!r) return r.error();
  return {};
}

sresult<std::unique_ptr<object_store>> open_object_store(const std::string& url) {
  return open_object_store(url, s3_options{});
}

sresult<std::unique_ptr<object_store>> open_object_store(const std::string& url,
                                                         const s3_options& s3) {
  return open_object_store(url, s3, default_local_store_options());
}

sresult<std::unique_ptr<object_store>> open_object_store(const std::string& url,
                                                         const s3_options& s3,
                                                         const local_store_options& local) {
  if (url.empty()) return make_error(errc::invalid_argument, "storage url is empty");
  constexpr std::string_view file_scheme = "file://";
  if (url.starts_with(file_scheme)) {
    std::string path = url.substr(file_scheme.size());
    if (path.empty() || path.front() != '/') {
      return make_error(errc::invalid_argument,
                        "storage url '" + url + "' needs an absolute path, e.g. file:///var/lib/x");
    }
    return open_local_store(path, local);
  }
  constexpr std::string_view s3_scheme = "s3://";
  if (url.starts_with(s3_scheme)) {
    std::string rest = url.substr(s3_scheme.size());
    const size_t slash = rest.find('/');
    std::string bucket = rest.substr(0, slash);
    std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
    return open_s3_store(bucket, prefix, s3);
  }
  if (url.find("://") != std::string::npos) {
    return make_error(errc::invalid_argument,
                      "storage url '" + url + "': unknown scheme (use file:// or s3://)");
  }
  return open_local_store(url, local);
}

}  // namespace sh::storage
