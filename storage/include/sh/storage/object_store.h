#pragma once
// object_store: the blob storage StreamHouse keeps topic data in (a local directory or S3).
//
// Calls are synchronous and blocking; the broker runs them on a bounded thread pool, so this
// header pulls in no Asio. Every implementation is thread-safe: one instance is shared by all
// worker threads.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sh/common/result.h"

namespace sh::storage {

enum class errc {
  ok = 0,
  not_found,
  io_error,
  invalid_argument,
  corrupt,
  precondition_failed,
  timeout,
  unavailable,
  auth_failed,
  unsupported,
};

// Stable lower-case name of a code, for logs and test messages ("not_found").
const char* to_string(errc code) noexcept;

template <class T>
using sresult = sh::result<T, errc>;
using bytes = std::vector<uint8_t>;

struct object_info {
  std::string key;
  uint64_t size = 0;
};

// Keys are '/'-separated relative names ("topics/t/0/00000000000000000000.seg"). Valid keys
// are non-empty, have no leading '/', no empty, "." or ".." segments and no NUL byte; anything
// else is errc::invalid_argument. A key and a longer key using it as a directory ("a" and
// "a/b") cannot both exist in the local store; StreamHouse's key layout never needs that.
class object_store {
 public:
  virtual ~object_store() = default;

  // Durable when it returns ok: the object is complete or absent, never partial. Overwrites.
  virtual sresult<void> put(const std::string& key, std::span<const uint8_t> data) = 0;
  virtual sresult<bytes> get(const std::string& key) = 0;
  // Bytes [offset, offset + length). A range running past the end gives fewer bytes;
  // offset == size gives no bytes; offset > size is errc::invalid_argument.
  virtual sresult<bytes> get_range(const std::string& key, uint64_t offset, uint64_t length) = 0;
  virtual sresult<object_info> head(const std::string& key) = 0;
  // Every object whose key starts with `prefix` (a plain string prefix, not only whole
  // segments; "" lists everything), in byte-wise key order.
  virtual sresult<std::vector<object_info>> list(const std::string& prefix) = 0;
  // Removing an absent key is ok.
  virtual sresult<void> remove(const std::string& key) = 0;
  // For logs, e.g. "file:///var/lib/streamhouse".
  virtual std::string describe() const = 0;
};

// Key syntax check shared by every implementation (see object_store). ok or invalid_argument.
sresult<void> validate_key(const std::string& key);

// "file:///abs/path" or a plain path (relative paths are made absolute) -> local directory
// store, created if missing. "s3://bucket/prefix" -> errc::unsupported for now.
sresult<std::unique_ptr<object_store>> open_object_store(const std::string& url);
sresult<std::unique_ptr<object_store>> open_local_store(const std::filesystem::path& root);

}  // namespace sh::storage
