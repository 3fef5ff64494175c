#pragma once
// In-memory LRU cache of object byte ranges in front of an object_store, bounded in bytes, with
// single-flight loading: concurrent misses for the same range share one backend read.
//
// StreamHouse objects are immutable once written (ingest objects and segments get new keys), so a
// cached range never goes stale; invalidate() exists for deletions. Ranges are cached by exact
// (key, offset, length); the fetch path reads the same batch ranges it got from the index, so
// exact matches are what repeats. Values are shared, immutable buffers, so a hit copies nothing
// and a response can be written straight from them.
//
// Thread-safe. Callers block (on the backend, or on another caller's load of the same range), so
// run it on the storage worker pool like the store itself.
#include <cstdint>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "sh/storage/object_store.h"

namespace sh::storage {

using shared_bytes = std::shared_ptr<const bytes>;

struct read_cache_stats {
  uint64_t hits = 0;
  uint64_t misses = 0;  // backend reads started
  uint64_t joined = 0;  // misses that waited for another caller's read instead
  uint64_t evictions = 0;
  uint64_t bytes = 0;  // cached payload bytes
  uint64_t entries = 0;
  uint64_t capacity = 0;
};

class read_cache {
 public:
  // `store` must outlive the cache.
  read_cache(object_store& store, uint64_t capacity_bytes);
  read_cache(const read_cache&) = delete;
  read_cache& operator=(const read_cache&) = delete;

  // Like object_store::get_range, through the cache. Errors are passed on, never cached.
  // A range larger than the whole capacity is read but not kept.
  sresult<shared_bytes> get_range(const std::string& key, uint64_t offset, uint64_t length);
  // A whole object (cached under its own entry).
  sresult<shared_bytes> get(const std::string& key);
  // Drops every cached range of `key`; reads of it in flight are not cached when they finish.
  void invalidate(const std::string& key);

  read_cache_stats stats() const;
  object_store& store() { return _store; }

 private:
  using cache_key = std::tuple<std::string, uint64_t, uint64_t>;  // key, offset, length
  struct entry {
    cache_key key;
    shared_bytes data;
  };
  struct inflight {
    std::shared_future<sresult<shared_bytes>> result;
    bool invalidated = false;
  };

  sresult<shared_bytes> load(const cache_key& k, bool whole);
  void insert_locked(const cache_key& k, shared_bytes data);

  object_store& _store;
  const uint64_t _capacity;
  mutable std::mutex _mu;
  std::list<entry> _lru;  // front = most recently used
  std::map<cache_key, std::list<entry>::iterator> _index;
  std::map<cache_key, std::shared_ptr<inflight>> _inflight;
  read_cache_stats _stats;
};

}  // namespace sh::storage
