#pragma once
// Helpers shared by the storage tests: a scratch directory removed on destruction.
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "sh/storage/object_store.h"

namespace sh::storage::testing {

class temp_dir {
 public:
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/sh-storage-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    _path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(_path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return _path; }

 private:
  std::filesystem::path _path;
};

// S3 settings from the environment that tests/services/test-services.sh exports (S3_ENDPOINT,
// S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY); nullopt when S3_ENDPOINT is unset, so tests skip.
inline std::optional<s3_options> s3_options_from_env() {
  const char* endpoint = std::getenv("S3_ENDPOINT");
  if (endpoint == nullptr || *endpoint == 0) return std::nullopt;
  auto env = [](const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return std::string(v && *v ? v : fallback);
  };
  s3_options o;
  o.endpoint = endpoint;
  o.region = env("S3_REGION", "us-east-1");
  o.access_key = env("S3_ACCESS_KEY", "");
  o.secret_key = env("S3_SECRET_KEY", "");
  o.backoff_base = std::chrono::milliseconds(10);
  o.backoff_max = std::chrono::milliseconds(200);
  return o;
}

inline std::string s3_test_bucket() {
  const char* b = std::getenv("S3_TEST_BUCKET");
  return b && *b ? b : "sh-storage-test";
}

// A prefix no other test run uses, so runs can share a bucket.
inline std::string unique_prefix(const std::string& name) {
  const auto ns = std::chrono::steady_clock::now().time_since_epoch().count();
  return "t-" + std::to_string(::getpid()) + "-" + std::to_string(ns) + "/" + name;
}

}  // namespace sh::storage::testing
