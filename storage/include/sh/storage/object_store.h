#pragma once
// object_store: the blob storage StreamHouse keeps topic data in (a local directory or S3).
//
// Calls are synchronous and blocking; the broker runs them on a bounded thread pool, so this
// header pulls in no Asio. Every implementation is thread-safe: one instance is shared by all
// worker threads.
#include <chrono>
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
  // put_if_absent: the key already holds an object (S3 412 Precondition Failed); it is unchanged.
  already_exists,
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
  // S3 switches to a multipart upload above s3_options::multipart_threshold.
  virtual sresult<void> put(const std::string& key, std::span<const uint8_t> data) = 0;
  // Creates the object only if the key is free (S3: If-None-Match: *). errc::already_exists when
  // it is taken (the existing object stays as it was); of concurrent callers exactly one wins.
  // errc::unsupported where the store cannot do it atomically (S3 servers that answer 501 or
  // ignore the header; see s3_options::conditional_put): never a silent overwrite.
  virtual sresult<void> put_if_absent(const std::string& key, std::span<const uint8_t> data);
  // Uploads in parts of `part_size` bytes (0: the store's default; S3 needs at least 5 MiB except
  // for the last part), whatever the size. Same result as put(): S3 runs CreateMultipartUpload,
  // parallel UploadParts (each retried like any request), CompleteMultipartUpload, and
  // AbortMultipartUpload after a failure so no parts or object are left. Other stores: put().
  virtual sresult<void> put_multipart(const std::string& key, std::span<const uint8_t> data,
                                      uint64_t part_size = 0);
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
  // Removes several keys (absent ones are ok); S3 does it in batches of 1000 per request. On an
  // error some keys may be gone and others not; repeating the call is safe.
  virtual sresult<void> remove_many(std::span<const std::string> keys);
  // For logs, e.g. "file:///var/lib/streamhouse".
  virtual std::string describe() const = 0;
  // One cheap request proving the store is usable, for start-up checks: reachable, credentials
  // accepted, bucket (or directory) present and listable. S3: a LIST of an empty prefix, whose
  // error answers (unlike a HEAD's) say which: auth_failed "wrong credentials", invalid_argument
  // "bucket ... does not exist", unavailable / timeout.
  virtual sresult<void> probe();
};

// Key syntax check shared by every implementation (see object_store). ok or invalid_argument.
sresult<void> validate_key(const std::string& key);

// How to reach an S3-compatible service (AWS, MinIO, Swift s3api, ...).
struct s3_options {
  // "http(s)://host[:port]". Empty: AWS, "https://s3.<region>.amazonaws.com".
  std::string endpoint;
  std::string region = "us-east-1";
  std::string access_key;  // may contain ':' (Swift's "account:user")
  std::string secret_key;
  std::string session_token;  // optional (temporary AWS credentials)
  // true: "<endpoint>/<bucket>/<key>" (MinIO, Swift, most self-hosted servers).
  // false: "<scheme>://<bucket>.<host>/<key>" (AWS virtual-hosted style).
  bool path_style = true;
  // Tries per call, the first included. Only 5xx answers, timeouts and connection failures are
  // retried, with exponential backoff and full jitter between backoff_base and backoff_max.
  int max_attempts = 5;
  std::chrono::milliseconds backoff_base{50};
  std::chrono::milliseconds backoff_max{5000};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{120000};  // one attempt, start to finish
  // An attempt moving less than 1 KiB/s for this long is abandoned (and retried).
  std::chrono::seconds stall_timeout{30};
  uint32_t list_page_size = 1000;  // max-keys per LIST request
  // put() of more than this many bytes becomes a multipart upload (0: never).
  uint64_t multipart_threshold = uint64_t{64} << 20;
  uint64_t multipart_part_size = uint64_t{16} << 20;  // 5 MiB .. 5 GiB (S3's limits)
  int multipart_concurrency = 4;  // parts in flight per upload, each on its own connection
  // put_if_absent: `detect` probes the server once (two conditional PUTs of a scratch key under
  // the store's prefix: the second must answer 412) and answers unsupported where it does not
  // (Swift s3api answers 501; a server ignoring the header would overwrite). `enabled` trusts the
  // server (AWS since 2024, MinIO, moto); `disabled` always answers unsupported.
  enum class conditional_put_mode { detect, enabled, disabled };
  conditional_put_mode conditional_put = conditional_put_mode::detect;
  bool verify_tls = true;
  std::string ca_file;  // empty: the system's CA bundle
};

// "file:///abs/path" or a plain path (relative paths are made absolute) -> local directory
// store, created if missing; `s3` is ignored. "s3://bucket[/prefix]" -> S3 store with `s3`
// (credentials are required); every key is stored under "<prefix>/". Opening checks syntax
// only, it sends no request.
sresult<std::unique_ptr<object_store>> open_object_store(const std::string& url,
                                                         const s3_options& s3);
sresult<std::unique_ptr<object_store>> open_object_store(const std::string& url);
// Default options, except that the environment variable SH_LOCAL_DIRECT_IO=0 (or 1) sets
// direct_io.
sresult<std::unique_ptr<object_store>> open_local_store(const std::filesystem::path& root);
struct local_store_options {
  // put() writes with O_DIRECT (page-aligned sources such as aligned_buffer need no bounce
  // copy); falls back to buffered writes for good if the file system refuses it. Same
  // durability either way (fsync of the file, rename, fsync of the directory).
  bool direct_io = true;
  // Unit of O_DIRECT writes (offsets and lengths): a multiple of the device's logical block
  // size, at most 4096. Tests set a bad one to make the kernel refuse and exercise the fallback.
  uint32_t direct_io_block = 4096;
};
sresult<std::unique_ptr<object_store>> open_local_store(const std::filesystem::path& root,
                                                        const local_store_options& options);
// The defaults, with SH_LOCAL_DIRECT_IO=0 (or 1) from the environment applied to direct_io.
local_store_options default_local_store_options();
// Like open_object_store(url, s3), with `local` for a local directory store.
sresult<std::unique_ptr<object_store>> open_object_store(const std::string& url,
                                                         const s3_options& s3,
                                                         const local_store_options& local);
// Whether `store` is a local store that (still) writes with O_DIRECT. For tests and logs.
bool local_store_direct_io_active(const object_store& store);
sresult<std::unique_ptr<object_store>> open_s3_store(const std::string& bucket,
                                                     const std::string& prefix,
                                                     const s3_options& options);
// A store in memory, not durable: for fast unit tests of the modules above storage. Passes the
// same conformance suite as the real stores (where durability is not the point).
std::unique_ptr<object_store> open_memory_store();
// Creates a bucket (ok if it exists and is ours). For tests and first-time setup tooling.
sresult<void> s3_create_bucket(const std::string& bucket, const s3_options& options);

}  // namespace sh::storage
