// object_store over a local directory: one file per key, written by atomic rename.
//
// put(): write "<dir>/.shtmp-<pid>-<n>" (O_EXCL), fsync it, rename it over the final name and
// fsync the directory; new parent directories are fsynced into their parents as well.
//
// With local_store_options::direct_io the temp file is written with O_DIRECT: whole 4 KiB blocks
// from a page-aligned source (an aligned_buffer, or a reused per-thread bounce buffer for any
// other span), the last block zero-padded, then ftruncate() to the real size before the fsync.
// The durability steps are the same; the write skips the page cache, whose fresh pages are
// expensive on VMs with free page reporting. A file system refusing O_DIRECT (EINVAL: tmpfs on
// older kernels, some FUSE) gets buffered writes from then on. A crash
// at any point leaves either the old object or the new one, plus possibly a stray temp file
// that list() and get() never show. The class holds no mutable state besides an atomic
// counter, so it is thread-safe; concurrent writers of one key end with one of the values.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include "sh/storage/aligned_buffer.h"
#include "sh/storage/object_store.h"

namespace sh::storage {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view temp_prefix = ".shtmp-";

std::string errno_text(int e) { return std::system_category().message(e); }

// Closes a descriptor on scope exit unless released.
class fd_guard {
 public:
  explicit fd_guard(int fd) : _fd(fd) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() {
    if (_fd >= 0) ::close(_fd);
  }
  int get() const { return _fd; }
  // Closes now and reports close()'s error: on some file systems it is the first report of a
  // failed write.
  int close_checked() {
    int r = ::close(_fd);
    _fd = -1;
    return r == 0 ? 0 : errno;
  }

 private:
  int _fd;
};

int fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  fd_guard guard(fd);
  if (::fsync(fd) != 0) return errno;
  return 0;
}

int write_all(int fd, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

int pwrite_all(int fd, const uint8_t* data, size_t size, uint64_t offset) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

constexpr size_t bounce_bytes = size_t{1} << 20;

// Writes `data` at offset 0 of an O_DIRECT descriptor in whole blocks and sets the file size
// to data.size(). Aligned sources go straight to the kernel; the rest, and the last partial
// block, through a per-thread bounce buffer (reused, so its pages stay warm). 0 or an errno;
// EINVAL means the file system refused the direct write.
int write_direct(int fd, std::span<const uint8_t> data, size_t block) {
  thread_local aligned_buffer bounce;
  const bool aligned = reinterpret_cast<uintptr_t>(data.data()) % aligned_buffer::alignment == 0;
  size_t done = 0;
  if (aligned) {
    const size_t whole = data.size() / block * block;
    if (whole > 0) {
      if (int e = pwrite_all(fd, data.data(), whole, 0)) return e;
    }
    done = whole;
  }
  while (done < data.size()) {
    const size_t n = std::min(bounce_bytes, data.size() - done);
    const size_t padded = (n + block - 1) / block * block;
    if (bounce.capacity() < bounce_bytes + block) bounce.resize_uninitialized(bounce_bytes + block);
    bounce.resize_uninitialized(padded);
    std::memcpy(bounce.data(), data.data() + done, n);
    std::memset(bounce.data() + n, 0, padded - n);
    if (int e = pwrite_all(fd, bounce.data(), padded, done)) return e;
    done += n;
  }
  if (data.size() % block != 0 && ::ftruncate(fd, static_cast<off_t>(data.size())) != 0) {
    return errno;
  }
  return 0;
}

// Reads up to out.size() bytes at `offset`; returns the count read (short only at EOF).
sresult<size_t> pread_all(int fd, std::span<uint8_t> out, uint64_t offset) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n =
        ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(errc::io_error, errno_text(errno));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

class local_store final : public object_store {
 public:
  local_store(fs::path root, const local_store_options& options)
      : _root(std::move(root)),
        _root_str(_root.string()),
        _direct(options.direct_io && options.direct_io_block > 0),
        _direct_block(options.direct_io_block) {}

  bool direct_io_active() const { return _direct.load(std::memory_order_relaxed); }

  sresult<void> put(const std::string& key, std::span<const uint8_t> data) override {
    return write_object(key, data, false);
  }

  sresult<void> put_if_absent(const std::string& key, std::span<const uint8_t> data) override {
    return write_object(key, data, true);
  }

  sresult<bytes> get(const std::string& key) override {
    auto file = open_object(key, "get");
    if (!file) return file.error();
    fd_guard guard(file->fd);
    bytes out(file->size);
    auto n = pread_all(file->fd, out, 0);
    if (!n) return read_error("get", key, n.message());
    out.resize(*n);
    return out;
  }

  sresult<bytes> get_range(const std::string& key, uint64_t offset, uint64_t length) override {
    auto file = open_object(key, "get_range");
    if (!file) return file.error();
    fd_guard guard(file->fd);
    if (offset > file->size) {
      return make_error(errc::invalid_argument, "get_range '" + key + "': offset " +
                                                    std::to_string(offset) + " is past the end (" +
                                                    std::to_string(file->size) + " bytes)");
    }
    bytes out(std::min(length, file->size - offset));
    auto n = pread_all(file->fd, out, offset);
    if (!n) return read_error("get_range", key, n.message());
    out.resize(*n);
    return out;
  }

  sresult<object_info> head(const std::string& key) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    struct stat st {};
    if (::stat(path_of(key).c_str(), &st) != 0) {
      const int e = errno;
      if (e == ENOENT || e == ENOTDIR) return not_found("head", key);
      return make_error(errc::io_error, "head '" + key + "': " + errno_text(e));
    }
    if (!S_ISREG(st.st_mode)) return not_found("head", key);
    return object_info{key, static_cast<uint64_t>(st.st_size)};
  }

  sresult<std::vector<object_info>> list(const std::string& prefix) override {
    // Walk only the deepest directory the prefix names completely; the rest of the prefix
    // filters names. "topics/a" walks "topics/" and keeps names starting with "a".
    const size_t slash = prefix.rfind('/');
    std::string dir_part = slash == std::string::npos ? "" : prefix.substr(0, slash);
    if (!dir_part.empty()) {
      if (auto ok = validate_key(dir_part); !ok) {
        return make_error(errc::invalid_argument, "list: invalid prefix '" + prefix + "'");
      }
    } else if (slash != std::string::npos) {
      return make_error(errc::invalid_argument, "list: invalid prefix '" + prefix + "'");
    }
    if (prefix.find('\0') != std::string::npos) {
      return make_error(errc::invalid_argument, "list: prefix contains a NUL byte");
    }
    std::vector<object_info> out;
    const std::string start = dir_part.empty() ? "" : dir_part + "/";
    if (auto ok = walk(start, prefix, out); !ok) return ok.error();
    std::sort(out.begin(), out.end(),
              [](const object_info& a, const object_info& b) { return a.key < b.key; });
    return out;
  }

  sresult<void> remove(const std::string& key) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    const std::string path = path_of(key);
    if (::unlink(path.c_str()) != 0) {
      const int e = errno;
      // Absent, or the key only names a prefix ("a" while "a/b" exists): nothing to remove.
      if (e == ENOENT || e == ENOTDIR || e == EISDIR) return {};
      return make_error(errc::io_error, "remove '" + key + "': " + errno_text(e));
    }
    std::string dir = path.substr(0, path.rfind('/'));
    // ENOENT: a concurrent remove() emptied and dropped the directory; the unlink stands.
    if (int e = fsync_dir(dir); e != 0 && e != ENOENT) {
      return make_error(errc::io_error,
                        "remove '" + key + "': fsync directory " + dir + ": " + errno_text(e));
    }
    // Drop directories the removal left empty so long-lived stores don't accumulate them;
    // rmdir fails harmlessly on a non-empty one, and put() retries if it loses that race.
    while (dir.size() > _root_str.size()) {
      if (::rmdir(dir.c_str()) != 0) break;
      dir.resize(dir.rfind('/'));
    }
    return {};
  }

  std::string describe() const override { return "file://" + _root_str; }

  sresult<void> probe() override {
    struct stat st {};
    if (::stat(_root_str.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return make_error(errc::io_error, "probe: " + describe() + " is not a directory");
    }
    if (::access(_root_str.c_str(), R_OK | W_OK | X_OK) != 0) {
      return make_error(errc::io_error, "probe: " + describe() + ": " + errno_text(errno));
    }
    return {};
  }

 private:
  // put() and put_if_absent(): the data goes to a fresh temp file, is fsynced, and then takes the
  // final name with rename(2) (replacing) or link(2) (exclusive: fails with EEXIST if the name
  // exists, atomically, so of concurrent creators exactly one wins; the temp name is unlinked
  // either way).
  sresult<void> write_object(const std::string& key, std::span<const uint8_t> data,
                             bool exclusive) {
    const char* op = exclusive ? "put_if_absent" : "put";
    if (auto ok = validate_key(key); !ok) return ok.error();
    const std::string path = path_of(key);
    const size_t slash = path.rfind('/');
    const std::string dir = path.substr(0, slash);
    auto fail = [&](const std::string& what, int e) {
      return make_error(errc::io_error,
                        std::string(op) + " '" + key + "': " + what + ": " + errno_text(e));
    };

    // A concurrent remove() may rmdir a parent we just created; retrying recreates it.
    std::string temp;
    int fd = -1;
    bool direct = _direct.load(std::memory_order_relaxed);
    for (int attempt = 0; fd < 0; ++attempt) {
      temp = dir + "/" + std::string(temp_prefix) + std::to_string(::getpid()) + "-" +
             std::to_string(_temp_counter.fetch_add(1, std::memory_order_relaxed));
      fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (direct ? O_DIRECT : 0),
                  0644);
      if (fd >= 0) break;
      const int e = errno;
      if (direct && e == EINVAL) {
        // The file system does not do O_DIRECT (the file may have been created regardless).
        ::unlink(temp.c_str());
        refuse_direct("open " + temp);
        direct = false;
        continue;
      }
      if (attempt >= 8 || (e != ENOENT && e != EEXIST)) {
        if (e == ENOTDIR) return conflict(key);
        return fail("create " + temp, e);
      }
      if (e == ENOENT) {
        if (auto made = make_parents(key); !made) return made.error();
      }
    }
    fd_guard guard(fd);
    auto abandon = [&](const std::string& what, int e) {
      ::unlink(temp.c_str());
      return fail(what, e);
    };
    int write_error = direct ? write_direct(fd, data, _direct_block) : write_all(fd, data);
    if (direct && write_error == EINVAL) {
      // Refused at write time (alignment the device will not take): start over buffered.
      refuse_direct("write " + temp);
      const int flags = ::fcntl(fd, F_GETFL);
      if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_DIRECT) != 0 || ::ftruncate(fd, 0) != 0 ||
          ::lseek(fd, 0, SEEK_SET) != 0) {
        return abandon("write " + temp, errno);
      }
      write_error = write_all(fd, data);
    }
    if (write_error != 0) return abandon("write " + temp, write_error);
    if (::fsync(fd) != 0) return abandon("fsync " + temp, errno);
    if (int e = guard.close_checked()) return abandon("close " + temp, e);
    if (exclusive) {
      const int r = ::link(temp.c_str(), path.c_str());
      const int e = r == 0 ? 0 : errno;
      ::unlink(temp.c_str());
      if (e == EEXIST) {
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return conflict(key);
        return make_error(errc::already_exists, "put_if_absent '" + key + "': object exists");
      }
      if (e == ENOTDIR) return conflict(key);
      if (e != 0) return fail("link to " + path, e);
    } else if (::rename(temp.c_str(), path.c_str()) != 0) {
      const int e = errno;
      ::unlink(temp.c_str());
      if (e == EISDIR || e == ENOTEMPTY || e == EEXIST) return conflict(key);
      return fail("rename to " + path, e);
    }
    // ENOENT: a concurrent remove() of this key already took the object and its directory.
    if (int e = fsync_dir(dir); e != 0 && e != ENOENT) return fail("fsync directory " + dir, e);
    return {};
  }

  void refuse_direct(const std::string& where) {
    if (_direct.exchange(false, std::memory_order_relaxed)) {
      std::fprintf(stderr, "local store %s: O_DIRECT refused (%s); using buffered writes\n",
                   _root_str.c_str(), where.c_str());
    }
  }

  struct open_file {
    int fd;
    uint64_t size;
  };

  std::string path_of(const std::string& key) const { return _root_str + "/" + key; }

  static error_info<errc> not_found(const char* op, const std::string& key) {
    return make_error(errc::not_found, std::string(op) + " '" + key + "': no such object");
  }
  static error_info<errc> read_error(const char* op, const std::string& key,
                                     const std::string& why) {
    return make_error(errc::io_error, std::string(op) + " '" + key + "': read: " + why);
  }
  static error_info<errc> conflict(const std::string& key) {
    return make_error(errc::invalid_argument,
                      "put '" + key + "': key conflicts with an existing object or prefix");
  }

  sresult<open_file> open_object(const std::string& key, const char* op) {
    if (auto ok = validate_key(key); !ok) return ok.error();
    const std::string path = path_of(key);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      if (e == ENOENT || e == ENOTDIR) return not_found(op, key);
      return make_error(errc::io_error, std::string(op) + " '" + key + "': open: " + errno_text(e));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      return make_error(errc::io_error,
                        std::string(op) + " '" + key + "': fstat: " + errno_text(e));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return not_found(op, key);
    }
    return open_file{fd, static_cast<uint64_t>(st.st_size)};
  }

  // Creates the key's missing parent directories one level at a time, fsyncing each new one
  // into its parent so the object's path survives a crash, not only its data.
  sresult<void> make_parents(const std::string& key) {
    std::string dir = _root_str;
    size_t pos = 0;
    while (true) {
      size_t slash = key.find('/', pos);
      if (slash == std::string::npos) return {};
      std::string parent = dir;
      dir += "/";
      dir.append(key, pos, slash - pos);
      pos = slash + 1;
      if (::mkdir(dir.c_str(), 0755) == 0) {
        if (int e = fsync_dir(parent)) {
          return make_error(errc::io_error,
                            "put '" + key + "': fsync directory " + parent + ": " + errno_text(e));
        }
        continue;
      }
      const int e = errno;
      if (e == EEXIST) {
        struct stat st {};
        if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
        return conflict(key);
      }
      if (e == ENOTDIR) return conflict(key);
      // ENOENT: a concurrent remove() dropped an ancestor; the caller retries.
      if (e == ENOENT) return {};
      return make_error(errc::io_error, "put '" + key + "': mkdir " + dir + ": " + errno_text(e));
    }
  }

  // Appends every object under directory `rel_dir` ("" or "a/b/") whose key starts with
  // `prefix`. Entries vanishing mid-walk (concurrent removes) are skipped, not errors.
  sresult<void> walk(const std::string& rel_dir, const std::string& prefix,
                     std::vector<object_info>& out) {
    const std::string abs_dir = rel_dir.empty() ? _root_str : _root_str + "/" + rel_dir;
    DIR* d = ::opendir(abs_dir.c_str());
    if (d == nullptr) {
      const int e = errno;
      if (e == ENOENT || e == ENOTDIR) return {};
      return make_error(errc::io_error,
                        "list '" + prefix + "': opendir " + abs_dir + ": " + errno_text(e));
    }
    std::vector<std::pair<std::string, bool>> entries;  // name, is directory
    while (true) {
      errno = 0;
      dirent* ent = ::readdir(d);
      if (ent == nullptr) {
        const int e = errno;
        ::closedir(d);
        if (e != 0) {
          return make_error(errc::io_error,
                            "list '" + prefix + "': readdir " + abs_dir + ": " + errno_text(e));
        }
        break;
      }
      std::string_view name = ent->d_name;
      if (name == "." || name == ".." || name.starts_with(temp_prefix)) continue;
      std::string key = rel_dir + std::string(name);
      // A child matches if it starts with the prefix, or (a directory) could contain matches.
      const bool could_match =
          key.starts_with(prefix) ||
          (prefix.starts_with(key) && prefix.size() > key.size() && prefix[key.size()] == '/');
      if (!could_match) continue;
      struct stat st {};
      if (::lstat((abs_dir + "/" + std::string(name)).c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        entries.emplace_back(std::move(key), true);
      } else if (S_ISREG(st.st_mode) && key.starts_with(prefix)) {
        out.push_back(object_info{std::move(key), static_cast<uint64_t>(st.st_size)});
      }
    }
    for (auto& [key, is_dir] : entries) {
      if (auto ok = walk(key + "/", prefix, out); !ok) return ok;
    }
    return {};
  }

  const fs::path _root;
  const std::string _root_str;
  std::atomic<uint64_t> _temp_counter{0};
  std::atomic<bool> _direct;  // cleared for good when the file system refuses O_DIRECT
  const size_t _direct_block;
};

}  // namespace

local_store_options default_local_store_options() {
  local_store_options options;
  // For benchmarks and tools without a config: SH_LOCAL_DIRECT_IO=0 turns O_DIRECT off (the
  // broker has the key local.direct.io).
  if (const char* env = std::getenv("SH_LOCAL_DIRECT_IO"); env != nullptr && env[0] != '\0') {
    options.direct_io = std::strcmp(env, "0") != 0;
  }
  return options;
}

sresult<std::unique_ptr<object_store>> open_local_store(const std::filesystem::path& root) {
  return open_local_store(root, default_local_store_options());
}

bool local_store_direct_io_active(const object_store& store) {
  const auto* local = dynamic_cast<const local_store*>(&store);
  return local != nullptr && local->direct_io_active();
}

sresult<std::unique_ptr<object_store>> open_local_store(const std::filesystem::path& root,
                                                        const local_store_options& options) {
  if (root.empty()) return make_error(errc::invalid_argument, "local store: empty root path");
  std::error_code ec;
  fs::path abs = fs::absolute(root, ec).lexically_normal();
  if (ec) {
    return make_error(errc::io_error, "local store " + root.string() + ": " + ec.message());
  }
  // lexically_normal keeps a trailing separator ("/x/"); path_of() adds its own.
  std::string s = abs.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  abs = s;
  fs::create_directories(abs, ec);
  if (ec) {
    return make_error(errc::io_error, "local store " + s + ": create directory: " + ec.message());
  }
  if (!fs::is_directory(abs, ec)) {
    return make_error(errc::invalid_argument, "local store " + s + ": not a directory");
  }
  if (::access(s.c_str(), R_OK | W_OK | X_OK) != 0) {
    return make_error(errc::io_error, "local store " + s + ": " + errno_text(errno));
  }
  return std::unique_ptr<object_store>(std::make_unique<local_store>(abs, options));
}

}  // namespace sh::storage
