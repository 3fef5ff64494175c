#include "sh/metadata/metadata_store.h"

#include <string_view>

#include "postgres_store.h"
#include "sqlite_store.h"

namespace sh::metadata {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::ok:
      return "ok";
    case errc::not_found:
      return "not_found";
    case errc::already_exists:
      return "already_exists";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::conflict:
      return "conflict";
    case errc::io_error:
      return "io_error";
    case errc::schema_too_new:
      return "schema_too_new";
    case errc::fenced:
      return "fenced";
    case errc::busy:
      return "busy";
    case errc::unsupported:
      return "unsupported";
  }
  return "unknown";
}

const char* to_string(range_status status) noexcept {
  switch (status) {
    case range_status::ok:
      return "ok";
    case range_status::unknown_topic_or_partition:
      return "unknown_topic_or_partition";
    case range_status::duplicate_sequence:
      return "duplicate_sequence";
    case range_status::out_of_order_sequence:
      return "out_of_order_sequence";
    case range_status::invalid_producer_epoch:
      return "invalid_producer_epoch";
  }
  return "unknown";
}

bool is_valid_topic_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > max_topic_name_length || name == "." || name == "..") {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

mresult<std::unique_ptr<metadata_store>> open_metadata_store(const std::string& url) {
  std::string_view u = url;
  if (u.empty()) return make_error(errc::invalid_argument, "empty metadata url");
  if (u.starts_with("postgresql:") || u.starts_with("postgres:")) {
    detail::postgres_options options;
    // A URI goes to libpq whole; "postgresql:host=... dbname=..." carries a keyword conninfo.
    std::string_view rest = u.substr(u.find(':') + 1);
    options.conninfo = std::string(rest.starts_with("//") ? u : rest);
    if (options.conninfo.empty()) {
      return make_error(errc::invalid_argument, "metadata url without a connection string");
    }
    return detail::open_postgres_store(options);
  }
  std::string_view path = u;
  if (u.starts_with("sqlite:")) {
    path = u.substr(7);
    // sqlite:///abs/path -> /abs/path; sqlite://rel/path -> rel/path (no hosts for a file).
    if (path.starts_with("//")) path = path.substr(2);
  } else if (auto colon = u.find("://"); colon != std::string_view::npos) {
    return make_error(errc::unsupported,
                      "unsupported metadata url scheme '" + std::string(u.substr(0, colon)) + "'");
  }
  if (path.empty()) return make_error(errc::invalid_argument, "metadata url without a path");
  detail::sqlite_options options;
  options.path = std::string(path);
  return detail::open_sqlite_store(options);
}

}  // namespace sh::metadata
