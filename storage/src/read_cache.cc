#include "sh/storage/read_cache.h"

namespace sh::storage {
namespace {
// A whole-object entry: offset 0, length "to the end".
constexpr uint64_t whole_object = UINT64_MAX;
}  // namespace

read_cache::read_cache(object_store& store, uint64_t capacity_bytes)
    : _store(store), _capacity(capacity_bytes) {
  _stats.capacity = capacity_bytes;
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
  }

  const auto& [key, offset, length] = k;
  auto fetched = whole ? _store.get(key) : _store.get_range(key, offset, length);
  sresult<shared_bytes> out =
      fetched ? sresult<shared_bytes>(std::make_shared<const bytes>(std::move(*fetched)))
              : sresult<shared_bytes>(fetched.error());
  {
    std::lock_guard lock(_mu);
    _inflight.erase(k);
    if (out && !mine->invalidated) insert_locked(k, *out);
  }
  promise.set_value(out);
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

void read_cache::invalidate(const std::string& key) {
  std::lock_guard lock(_mu);
  const cache_key from{key, 0, 0};
  for (auto it = _index.lower_bound(from); it != _index.end() && std::get<0>(it->first) == key;) {
    _stats.bytes -= it->second->data->size();
    _lru.erase(it->second);
    it = _index.erase(it);
  }
  for (auto it = _inflight.lower_bound(from);
       it != _inflight.end() && std::get<0>(it->first) == key; ++it) {
    it->second->invalidated = true;
  }
}

read_cache_stats read_cache::stats() const {
  std::lock_guard lock(_mu);
  read_cache_stats s = _stats;
  s.entries = _index.size();
  return s;
}

}  // namespace sh::storage
