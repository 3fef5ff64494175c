#pragma once
// LRU cache of object byte ranges in front of an object_store: a memory tier bounded in bytes and
// an optional local-disk tier under it (bounded in bytes on disk), with single-flight loading:
// concurrent misses for the same range share one read (of the disk file or the backend).
//
// StreamHouse objects are immutable once written (ingest objects and segments get new keys), so a
// cached range never goes stale; invalidate() exists for deletions. Ranges are cached by exact
// (key, offset, length); the fetch path reads the same batch ranges it got from the index, so
// exact matches are what repeats. Values are shared, immutable buffers, so a memory hit copies
// nothing and a response can be written straight from them.
//
// Disk tier: every range loaded from the backend is also written to a file of its own in
// `disk_dir` (write-through, see read_cache.cc for why), with a header naming its key and range
// and CRC32Cs of header and data. A file that fails any check on read-back (torn, truncated,
// damaged, or not the range asked for) is a miss: it is deleted and the range re-read from the
// backend, never served. Files left by an earlier run are deleted when the cache opens.
//
// Thread-safe. Callers block (on the backend, the disk, or another caller's load of the same
// range), so run it on the storage worker pool like the store itself.
#include <cstdint>
#include <filesystem>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "sh/storage/object_store.h"

namespace sh::storage {

using shared_bytes = std::shared_ptr<const bytes>;

struct read_cache_options {
  uint64_t memory_bytes = 0;  // memory tier capacity (payload bytes)
  // Disk tier, off when disk_bytes is 0. disk_bytes bounds the files' total size (headers
  // included). The directory is created if missing; only files named like the cache's own
  // ("<n>.rc") are ever deleted from it.
  std::filesystem::path disk_dir;
  uint64_t disk_bytes = 0;
};

struct read_cache_stats {
  uint64_t hits = 0;    // memory tier hits
  uint64_t misses = 0;  // memory misses that started a load (from disk or the backend)
  uint64_t joined = 0;  // misses that waited for another caller's load instead
  uint64_t evictions = 0;
  uint64_t bytes = 0;  // cached payload bytes in memory
  uint64_t entries = 0;
  uint64_t capacity = 0;
  uint64_t backend_reads = 0;  // loads that went to the object store
  // Disk tier (all 0 when it is off).
  uint64_t disk_hits = 0;     // loads served from a disk file
  uint64_t disk_misses = 0;   // loads the disk tier could not serve (went to the backend)
  uint64_t disk_corrupt = 0;  // files that failed their checks (deleted, counted as misses)
  uint64_t disk_evictions = 0;
  uint64_t disk_write_errors = 0;  // ranges that could not be written (not cached on disk)
  uint64_t disk_bytes = 0;         // total size of the cache's files
  uint64_t disk_entries = 0;
  uint64_t disk_capacity = 0;
};

class read_cache {
 public:
  // Memory tier only. `store` must outlive the cache.
  read_cache(object_store& store, uint64_t capacity_bytes);
  // Memory tier plus, when options.disk_bytes > 0, the disk tier: creates options.disk_dir and
  // deletes the cache files an earlier run left there (their index lived in that run's memory).
  // Errors: io_error when the directory cannot be made or cleared.
  static sresult<std::unique_ptr<read_cache>> open(object_store& store,
                                                   const read_cache_options& options);
  read_cache(const read_cache&) = delete;
  read_cache& operator=(const read_cache&) = delete;
  ~read_cache();

  // Like object_store::get_range, through the cache. Errors are passed on, never cached.
  // A range larger than a tier's whole capacity is read but not kept in that tier.
  sresult<shared_bytes> get_range(const std::string& key, uint64_t offset, uint64_t length);
  // A whole object (cached under its own entry).
  sresult<shared_bytes> get(const std::string& key);
  // Drops every cached range of `key` from both tiers; reads of it in flight are not cached when
  // they finish.
  void invalidate(const std::string& key);

  read_cache_stats stats() const;
  object_store& store() { return _store; }
  // The disk tier's file for a cached range, or "" (for tests that damage files).
  std::filesystem::path disk_file_for_test(const std::string& key, uint64_t offset,
                                           uint64_t length) const;

 private:
  using cache_key = std::tuple<std::string, uint64_t, uint64_t>;  // key, offset, length
  struct entry {
    cache_key key;
    shared_bytes data;
  };
  struct disk_entry {
    cache_key key;
    uint64_t id;         // file "<id>.rc"
    uint64_t file_size;  // header + key + data
  };
  struct inflight {
    std::shared_future<sresult<shared_bytes>> result;
    bool invalidated = false;
  };

  read_cache(object_store& store, const read_cache_options& options, bool disk);
  sresult<shared_bytes> load(const cache_key& k, bool whole);
  void insert_locked(const cache_key& k, shared_bytes data);
  // Registers a written file; ids of files to delete (evicted, or the new one if it can't stay)
  // are appended to `doomed`.
  void disk_insert_locked(const cache_key& k, uint64_t id, uint64_t file_size,
                          std::vector<uint64_t>& doomed);
  void disk_erase_locked(const cache_key& k, uint64_t id);
  std::filesystem::path disk_path(uint64_t id) const;
  bool write_disk_file(uint64_t id, const cache_key& k, const bytes& data, uint64_t& file_size);
  // The file's payload if every check passes; errc::not_found if the file is gone, corrupt
  // otherwise.
  sresult<bytes> read_disk_file(const disk_entry& e) const;
  void unlink_files(const std::vector<uint64_t>& ids) const;

  object_store& _store;
  const uint64_t _capacity;
  const bool _disk_on;
  const std::filesystem::path _disk_dir;
  const uint64_t _disk_capacity;
  mutable std::mutex _mu;
  std::list<entry> _lru;  // front = most recently used
  std::map<cache_key, std::list<entry>::iterator> _index;
  std::list<disk_entry> _disk_lru;  // front = most recently used
  std::map<cache_key, std::list<disk_entry>::iterator> _disk_index;
  uint64_t _next_file_id = 0;
  std::map<cache_key, std::shared_ptr<inflight>> _inflight;
  read_cache_stats _stats;
};

}  // namespace sh::storage
