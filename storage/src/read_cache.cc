// read_cache: memory LRU over an optional disk LRU over an object_store.
//
// Why write-through to disk (a range is written to disk when it is loaded from the backend, not
// when the memory tier evicts it): the write then runs on the loading thread, which is a storage
// worker already blocked on the backend, outside the cache's lock. Eviction happens inside
// insert_locked() under the lock that every reader takes; writing there (or handing buffers to
// a writer thread) would stall readers or need another queue and its own memory bound. Write-
// through also keeps ranges larger than the memory tier on disk, and a range evicted from memory
// is already on disk with no extra I/O at that moment. The cost is one disk write per backend
// read, which is small next to the GET that preceded it.
//
// Why clear the directory at start instead of re-indexing it: the index lives in memory, and an
// object deleted while the broker was down (compaction, retention) would leave stale ranges
// that invalidate() never saw. Objects are immutable, so stale data could not be wrong, but it
// could be served for an object that no longer exists; clearing is simple and costs one warm-up.
#include "sh/storage/read_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

#include "sh/common/crc32c.h"

namespace sh::storage {
namespace {

// A whole-object entry: offset 0, length "to the end".
constexpr uint64_t whole_object = UINT64_MAX;

// Disk file layout (host byte order: the files never leave this machine and are deleted at
// start): magic, version, key length, offset, length, data length, data CRC32C, header CRC32C
// (of the preceding 40 bytes and the key), then the key and the data.
constexpr uint32_t file_magic = 0x31435253;  // "SRC1"
constexpr uint32_t file_version = 1;
constexpr size_t header_size = 44;

struct file_header {
  uint32_t magic = file_magic;
  uint32_t version = file_version;
  uint32_t key_len = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t data_len = 0;
  uint32_t data_crc = 0;
  uint32_t header_crc = 0;
};

void encode_header(const file_header& h, uint8_t* out) {
  size_t p = 0;
  auto put = [&](const auto& v) {
    std::memcpy(out + p, &v, sizeof v);
    p += sizeof v;
  };
  put(h.magic);
  put(h.version);
  put(h.key_len);
  put(h.offset);
  put(h.length);
  put(h.data_len);
  put(h.data_crc);
  put(h.header_crc);
}

file_header decode_header(const uint8_t* in) {
  file_header h;
  size_t p = 0;
  auto get = [&](auto& v) {
    std::memcpy(&v, in + p, sizeof v);
    p += sizeof v;
  };
  get(h.magic);
  get(h.version);
  get(h.key_len);
  get(h.offset);
  get(h.length);
  get(h.data_len);
  get(h.data_crc);
  get(h.header_crc);
  return h;
}

uint32_t header_crc(const uint8_t* header, const std::string& key) {
  uint32_t c = sh::crc32c_extend(0, std::span<const uint8_t>(header, header_size - 4));
  return sh::crc32c_extend(
      c, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(key.data()), key.size()));
}

bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool read_all(int fd, uint8_t* p, size_t n, uint64_t offset) {
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (r == 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return true;
}

bool is_cache_file_name(std::string_view name) {
  if (!name.ends_with(".rc")) return false;
  name.remove_suffix(3);
  if (name.empty()) return false;
  for (char c : name) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

read_cache::read_cache(object_store& store, uint64_t capacity_bytes)
    : read_cache(store, read_cache_options{capacity_bytes, {}, 0}, false) {}

read_cache::read_cache(object_store& store, const read_cache_options& options, bool disk)
    : _store(store),
      _capacity(options.memory_bytes),
      _disk_on(disk),
      _disk_dir(options.disk_dir),
      _disk_capacity(disk ? options.disk_bytes : 0) {
  _stats.capacity = _capacity;
  _stats.disk_capacity = _disk_capacity;
}

read_cache::~read_cache() = default;

sresult<std::unique_ptr<read_cache>> read_cache::open(object_store& store,
                                                      const read_cache_options& options) {
  const bool disk = options.disk_bytes > 0;
  if (disk) {
    if (options.disk_dir.empty()) {
      return make_error(errc::invalid_argument, "read cache: disk tier needs a directory");
    }
    std::error_code ec;
    std::filesystem::create_directories(options.disk_dir, ec);
    if (ec) {
      return make_error(errc::io_error,
                        "read cache: create " + options.disk_dir.string() + ": " + ec.message());
    }
    // Only our own file names: a misconfigured directory (say, the data directory itself)
    // loses nothing else.
    const std::string dir = options.disk_dir.string();
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      return make_error(errc::io_error,
                        "read cache: open " + dir + ": " + std::system_category().message(errno));
    }
    while (dirent* ent = ::readdir(d)) {
      if (!is_cache_file_name(ent->d_name)) continue;
      if (::unlinkat(::dirfd(d), ent->d_name, 0) != 0 && errno != ENOENT) {
        const int e = errno;
        ::closedir(d);
        return make_error(errc::io_error, "read cache: delete " + dir + "/" + ent->d_name + ": " +
                                              std::system_category().message(e));
      }
    }
    ::closedir(d);
  }
  return std::unique_ptr<read_cache>(new read_cache(store, options, disk));
}

sresult<shared_bytes> read_cache::get_range(const std::string& key, uint64_t offset,
                                            uint64_t length) {
  return load(cache_key{key, offset, length}, false);
}

sresult<shared_bytes> read_cache::get(const std::string& key) {
  return load(cache_key{key, 0, whole_object}, true);
}

sresult<shared_bytes> read_cache::load(const cache_key& k, bool whole) {
  std::shared_ptr<inflight> mine;
  std::promise<sresult<shared_bytes>> promise;
  std::optional<disk_entry> on_disk;
  {
    std::unique_lock lock(_mu);
    if (auto it = _index.find(k); it != _index.end()) {
      _lru.splice(_lru.begin(), _lru, it->second);
      ++_stats.hits;
      return it->second->data;
    }
    if (auto it = _inflight.find(k); it != _inflight.end()) {
      auto fut = it->second->result;
      ++_stats.joined;
      lock.unlock();
      return fut.get();
    }
    mine = std::make_shared<inflight>();
    mine->result = promise.get_future().share();
    _inflight.emplace(k, mine);
    ++_stats.misses;
    if (auto it = _disk_index.find(k); it != _disk_index.end()) {
      _disk_lru.splice(_disk_lru.begin(), _disk_lru, it->second);
      on_disk = *it->second;
    }
  }

  // The disk tier first (this caller is the range's only loader, so still single-flight).
  sresult<shared_bytes> out = make_error(errc::io_error, "read cache: not loaded");
  bool from_disk = false;
  bool corrupt = false;
  if (on_disk) {
    auto d = read_disk_file(*on_disk);
    if (d) {
      out = std::make_shared<const bytes>(std::move(*d));
      from_disk = true;
    } else {
      // Gone (evicted meanwhile) or damaged: either way a miss; a damaged file is deleted.
      corrupt = d.code() == errc::corrupt;
      if (corrupt) unlink_files({on_disk->id});
      std::lock_guard lock(_mu);
      disk_erase_locked(k, on_disk->id);
    }
  }
  if (!from_disk) {
    const auto& [key, offset, length] = k;
    auto fetched = whole ? _store.get(key) : _store.get_range(key, offset, length);
    out = fetched ? sresult<shared_bytes>(std::make_shared<const bytes>(std::move(*fetched)))
                  : sresult<shared_bytes>(fetched.error());
  }
  // Joiners get the result now; the disk write below does not delay them (callers arriving
  // meanwhile still find the in-flight entry and its ready result).
  promise.set_value(out);

  uint64_t written_id = 0;
  uint64_t file_size = 0;
  bool written = false;
  bool write_failed = false;
  if (_disk_on && out && !from_disk &&
      header_size + std::get<0>(k).size() + (*out)->size() <= _disk_capacity) {
    {
      std::lock_guard lock(_mu);
      written_id = _next_file_id++;
    }
    written = write_disk_file(written_id, k, **out, file_size);
    write_failed = !written;
  }

  std::vector<uint64_t> doomed;
  {
    std::lock_guard lock(_mu);
    _inflight.erase(k);
    if (from_disk) {
      ++_stats.disk_hits;
    } else {
      ++_stats.backend_reads;
      if (_disk_on) ++_stats.disk_misses;
    }
    if (corrupt) ++_stats.disk_corrupt;
    if (write_failed) ++_stats.disk_write_errors;
    if (out && !mine->invalidated) {
      insert_locked(k, *out);
      if (written) disk_insert_locked(k, written_id, file_size, doomed);
    } else if (written) {
      doomed.push_back(written_id);
    }
  }
  unlink_files(doomed);
  return out;
}

void read_cache::insert_locked(const cache_key& k, shared_bytes data) {
  const uint64_t size = data->size();
  if (size > _capacity) return;
  if (_index.count(k) != 0) return;
  while (_stats.bytes + size > _capacity && !_lru.empty()) {
    entry& victim = _lru.back();
    _stats.bytes -= victim.data->size();
    _index.erase(victim.key);
    _lru.pop_back();
    ++_stats.evictions;
  }
  _lru.push_front(entry{k, std::move(data)});
  _index.emplace(k, _lru.begin());
  _stats.bytes += size;
}

void read_cache::disk_insert_locked(const cache_key& k, uint64_t id, uint64_t file_size,
                                    std::vector<uint64_t>& doomed) {
  if (file_size > _disk_capacity || _disk_index.count(k) != 0) {
    doomed.push_back(id);
    return;
  }
  while (_stats.disk_bytes + file_size > _disk_capacity && !_disk_lru.empty()) {
    disk_entry& victim = _disk_lru.back();
    _stats.disk_bytes -= victim.file_size;
    doomed.push_back(victim.id);
    _disk_index.erase(victim.key);
    _disk_lru.pop_back();
    ++_stats.disk_evictions;
  }
  _disk_lru.push_front(disk_entry{k, id, file_size});
  _disk_index.emplace(k, _disk_lru.begin());
  _stats.disk_bytes += file_size;
}

void read_cache::disk_erase_locked(const cache_key& k, uint64_t id) {
  auto it = _disk_index.find(k);
  if (it == _disk_index.end() || it->second->id != id) return;
  _stats.disk_bytes -= it->second->file_size;
  _disk_lru.erase(it->second);
  _disk_index.erase(it);
}

std::filesystem::path read_cache::disk_path(uint64_t id) const {
  return _disk_dir / (std::to_string(id) + ".rc");
}

bool read_cache::write_disk_file(uint64_t id, const cache_key& k, const bytes& data,
                                 uint64_t& file_size) {
  const auto& [key, offset, length] = k;
  file_header h;
  h.key_len = static_cast<uint32_t>(key.size());
  h.offset = offset;
  h.length = length;
  h.data_len = data.size();
  h.data_crc = sh::crc32c(data);
  uint8_t head[header_size];
  encode_header(h, head);
  h.header_crc = header_crc(head, key);
  encode_header(h, head);
  // No fsync: a cache file lost or torn in a crash is harmless (deleted at start, and checked on
  // every read anyway).
  const std::string path = disk_path(id).string();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = write_all(fd, head, header_size) &&
                  write_all(fd, reinterpret_cast<const uint8_t*>(key.data()), key.size()) &&
                  write_all(fd, data.data(), data.size());
  if (::close(fd) != 0 || !ok) {
    ::unlink(path.c_str());
    return false;
  }
  file_size = header_size + key.size() + data.size();
  return true;
}

sresult<bytes> read_cache::read_disk_file(const disk_entry& e) const {
  const std::string path = disk_path(e.id).string();
  auto bad = [&](const char* why) {
    return make_error(errc::corrupt, "read cache file " + path + ": " + why);
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return make_error(errc::not_found, "read cache file " + path + ": gone");
    return bad("cannot open");
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_on_exit{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return bad("fstat failed");
  // The size is known from the index: this bounds every allocation below.
  if (static_cast<uint64_t>(st.st_size) != e.file_size) return bad("wrong size");
  const auto& [key, offset, length] = e.key;
  if (e.file_size < header_size + key.size()) return bad("too short");
  uint8_t head[header_size];
  if (!read_all(fd, head, header_size, 0)) return bad("short header");
  const file_header h = decode_header(head);
  if (h.magic != file_magic || h.version != file_version) return bad("bad magic");
  if (h.key_len != key.size() || h.offset != offset || h.length != length ||
      h.data_len != e.file_size - header_size - key.size()) {
    return bad("not the range asked for");
  }
  std::string stored_key(key.size(), '\0');
  if (!read_all(fd, reinterpret_cast<uint8_t*>(stored_key.data()), key.size(), header_size)) {
    return bad("short key");
  }
  if (stored_key != key || header_crc(head, key) != h.header_crc) return bad("header checksum");
  bytes data(h.data_len);
  if (!read_all(fd, data.data(), data.size(), header_size + key.size())) return bad("short data");
  if (sh::crc32c(data) != h.data_crc) return bad("data checksum");
  return data;
}

void read_cache::unlink_files(const std::vector<uint64_t>& ids) const {
  for (uint64_t id : ids) ::unlink(disk_path(id).c_str());
}

void read_cache::invalidate(const std::string& key) {
  std::vector<uint64_t> doomed;
  {
    std::lock_guard lock(_mu);
    const cache_key from{key, 0, 0};
    for (auto it = _index.lower_bound(from); it != _index.end() && std::get<0>(it->first) == key;) {
      _stats.bytes -= it->second->data->size();
      _lru.erase(it->second);
      it = _index.erase(it);
    }
    for (auto it = _disk_index.lower_bound(from);
         it != _disk_index.end() && std::get<0>(it->first) == key;) {
      _stats.disk_bytes -= it->second->file_size;
      doomed.push_back(it->second->id);
      _disk_lru.erase(it->second);
      it = _disk_index.erase(it);
    }
    for (auto it = _inflight.lower_bound(from);
         it != _inflight.end() && std::get<0>(it->first) == key; ++it) {
      it->second->invalidated = true;
    }
  }
  unlink_files(doomed);
}

read_cache_stats read_cache::stats() const {
  std::lock_guard lock(_mu);
  read_cache_stats s = _stats;
  s.entries = _index.size();
  s.disk_entries = _disk_index.size();
  return s;
}

std::filesystem::path read_cache::disk_file_for_test(const std::string& key, uint64_t offset,
                                                     uint64_t length) const {
  std::lock_guard lock(_mu);
  auto it = _disk_index.find(cache_key{key, offset, length});
  return it == _disk_index.end() ? std::filesystem::path() : disk_path(it->second->id);
}

}  // namespace sh::storage
