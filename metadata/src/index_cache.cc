#include "sh/metadata/index_cache.h"

#include <algorithm>
#include <iterator>

namespace sh::metadata {

struct index_cache::part {
  key_type key;
  std::list<part_ptr>::iterator lru;
  bool dropped = false;  // evicted or forgotten: fills that were in flight are not installed
  uint64_t gen = 0;      // bumped by every change or invalidation of the partition
  bool state_valid = false;
  partition_state state;
  uint64_t state_global_gen = 0;
  clock::time_point state_at;              // when the read that produced `state` started
  uint64_t index_gen = 0;                  // bumped whenever the cached entries are dropped
  std::map<int64_t, index_entry> entries;  // by base_offset
  // [first, last] offset intervals for which every index entry intersecting them is cached.
  std::map<int64_t, int64_t> known;
  clock::time_point entries_since;  // when the oldest cached entry was read
  clock::time_point last_used;
};

index_cache::index_cache(std::shared_ptr<metadata_store> store, index_cache_options options)
    : _store(std::move(store)), _options(options) {}

index_cache::~index_cache() { stop(); }

void index_cache::start(commit_listener on_change) {
  {
    std::lock_guard lock(_mu);
    if (_started) return;
    _started = true;
    _on_change = std::move(on_change);
  }
  bool ok = false;
  if (_options.notifications) {
    auto set = _store->set_commit_listener([this](const std::vector<partition_change>& changes,
                                                  bool resync) { apply(changes, resync); });
    ok = set.has_value();
  }
  {
    std::lock_guard lock(_mu);
    _notifications = ok;
    _stats.notifications_active = ok;
  }
  _poller = std::thread([this] { poll_loop(); });
}

void index_cache::stop() {
  bool listening = false;
  {
    std::lock_guard lock(_mu);
    if (!_started || _stopping) return;
    _stopping = true;
    listening = _notifications;
  }
  _poll_cv.notify_all();
  // Outside _mu: clearing the listener joins the store's listener thread, which may be in apply().
  if (listening) (void)_store->set_commit_listener({});
  if (_poller.joinable()) _poller.join();
}

bool index_cache::notifications_active() const {
  std::lock_guard lock(_mu);
  return _notifications;
}

index_cache::part_ptr index_cache::touch_locked(const key_type& key, bool create) {
  auto it = _parts.find(key);
  if (it != _parts.end()) {
    _lru.splice(_lru.begin(), _lru, it->second->lru);
    it->second->last_used = clock::now();
    return it->second;
  }
  if (!create) return nullptr;
  auto p = std::make_shared<part>();
  p->key = key;
  p->last_used = clock::now();
  _lru.push_front(p);
  p->lru = _lru.begin();
  _parts.emplace(key, p);
  return p;
}

bool index_cache::state_fresh_locked(const part& p, clock::time_point now) const {
  // Not started: nothing tells the cache about commits, so states are always read.
  if (!_started || !p.state_valid || p.state_global_gen != _global_gen) return false;
  const auto ttl = _notifications ? _options.state_ttl : _options.poll_interval;
  return now - p.state_at < ttl;
}

void index_cache::bump_locked(part& p) { ++p.gen; }

// Committed state only grows (high watermark, log start, max timestamp), so any value read from
// the store may be merged into a valid cached state by taking maxima: readers never see a value
// go down after someone saw a newer one. Topic re-creation (the one exception) is an
// invalidation.
void index_cache::merge_locked(part& p, const partition_state& s) {
  if (p.dropped || !p.state_valid || p.state_global_gen != _global_gen) return;
  p.state.high_watermark = std::max(p.state.high_watermark, s.high_watermark);
  p.state.log_start_offset = std::max(p.state.log_start_offset, s.log_start_offset);
  p.state.max_timestamp = std::max(p.state.max_timestamp, s.max_timestamp);
  bump_locked(p);
}

void index_cache::drop_entries_locked(part& p) {
  _entries -= p.entries.size();
  p.entries.clear();
  p.known.clear();
  ++p.index_gen;
}

void index_cache::enforce_bounds_locked(const part* keep) {
  while (_parts.size() > _options.max_partitions && !_lru.empty()) {
    part_ptr victim = _lru.back();
    if (victim.get() == keep && _parts.size() == 1) break;
    drop_entries_locked(*victim);
    victim->dropped = true;
    _lru.pop_back();
    _parts.erase(victim->key);
    ++_stats.evictions;
  }
  // Entries: the least recently used partitions' first; `keep` (just used) last.
  for (auto it = _lru.rbegin(); it != _lru.rend() && _entries > _options.max_entries; ++it) {
    if (!(*it)->entries.empty()) {
      drop_entries_locked(**it);
      ++_stats.evictions;
    }
  }
}

mresult<partition_state> index_cache::get_partition(const std::string& topic, int32_t partition) {
  const key_type key(topic, partition);
  {
    std::lock_guard lock(_mu);
    if (!_started) {
      ++_stats.state_misses;
      return _store->get_partition(topic, partition);
    }
    auto it = _parts.find(key);
    const auto now = clock::now();
    if (it != _parts.end() && state_fresh_locked(*it->second, now)) {
      _lru.splice(_lru.begin(), _lru, it->second->lru);
      it->second->last_used = now;
      ++_stats.state_hits;
      return it->second->state;
    }
  }
  return fill_state(key);
}

mresult<partition_state> index_cache::refresh_partition(const std::string& topic,
                                                        int32_t partition) {
  return fill_state(key_type(topic, partition));
}

mresult<partition_state> index_cache::fill_state(const key_type& key) {
  part_ptr p;
  uint64_t gen = 0;
  uint64_t global = 0;
  {
    std::lock_guard lock(_mu);
    p = touch_locked(key, true);
    gen = p->gen;
    global = _global_gen;
    ++_stats.state_misses;
    enforce_bounds_locked(p.get());
  }
  const auto started = clock::now();
  auto state = _store->get_partition(key.first, key.second);
  std::lock_guard lock(_mu);
  if (!state) {
    // Unknown partitions are not kept (a typo'd topic must not push hot partitions out).
    if (state.code() == errc::not_found && !p->dropped && p->gen == gen) {
      drop_entries_locked(*p);
      p->dropped = true;
      _lru.erase(p->lru);
      _parts.erase(p->key);
    }
    return state;
  }
  if (!p->dropped && p->gen == gen && _global_gen == global) {
    p->state = *state;
    p->state_valid = true;
    p->state_global_gen = global;
    p->state_at = started;
    // Another fill that started from the same generation may hold an older read: it must not
    // overwrite this one.
    bump_locked(*p);
  } else {
    // A change arrived while we read: our value may predate it, so it does not replace the
    // cached state. It is still a correct answer for this call (the call overlapped the change).
    ++_stats.lost_fill_races;
    merge_locked(*p, *state);
  }
  return state;
}

void index_cache::install_entries_locked(part& p, int64_t from,
                                         const std::vector<index_entry>& entries) {
  if (entries.empty()) return;
  const auto same = [](const index_entry& a, const index_entry& b) {
    return a.base_offset == b.base_offset && a.last_offset == b.last_offset &&
           a.object_key == b.object_key && a.byte_offset == b.byte_offset &&
           a.byte_length == b.byte_length;
  };
  // Rows only change under compaction (rewritten into a segment, maybe with other boundaries).
  // If anything cached disagrees with what the store now says, start over with the new rows.
  bool conflict = false;
  for (const auto& e : entries) {
    auto it = p.entries.upper_bound(e.last_offset);
    while (it != p.entries.begin()) {
      --it;
      if (it->second.last_offset < e.base_offset) break;
      if (!same(it->second, e)) {
        conflict = true;
        break;
      }
    }
    if (conflict) break;
  }
  if (conflict) drop_entries_locked(p);
  if (p.entries.empty()) p.entries_since = clock::now();
  for (const auto& e : entries) {
    if (p.entries.emplace(e.base_offset, e).second) ++_entries;
  }
  // The store returned every entry with last_offset >= from up to the last one it returned.
  int64_t a = from;
  int64_t b = entries.back().last_offset;
  auto it = p.known.upper_bound(a);
  if (it != p.known.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= a - 1) {
      a = prev->first;
      b = std::max(b, prev->second);
      it = p.known.erase(prev);
    }
  }
  while (it != p.known.end() && it->first <= b + 1) {
    b = std::max(b, it->second);
    it = p.known.erase(it);
  }
  p.known.emplace(a, b);
}

mresult<std::vector<index_entry>> index_cache::read_index(const std::string& topic,
                                                          int32_t partition, int64_t from_offset,
                                                          size_t max_entries) {
  max_entries = std::max<size_t>(max_entries, 1);
  const key_type key(topic, partition);
  part_ptr p;
  uint64_t index_gen = 0;
  {
    std::lock_guard lock(_mu);
    if (!_started) {
      ++_stats.index_misses;
      return _store->read_index(topic, partition, from_offset, max_entries);
    }
    p = touch_locked(key, true);
    if (!p->entries.empty() && clock::now() - p->entries_since >= _options.entry_ttl) {
      drop_entries_locked(*p);
    }
    auto k = p->known.upper_bound(from_offset);
    if (k != p->known.begin()) {
      --k;
      if (k->first <= from_offset && from_offset <= k->second) {
        std::vector<index_entry> out;
        auto it = p->entries.upper_bound(from_offset);
        if (it != p->entries.begin() && std::prev(it)->second.last_offset >= from_offset) --it;
        for (; it != p->entries.end() && out.size() < max_entries && it->first <= k->second; ++it) {
          out.push_back(it->second);
        }
        if (!out.empty()) {
          ++_stats.index_hits;
          return out;
        }
      }
    }
    index_gen = p->index_gen;
    ++_stats.index_misses;
    enforce_bounds_locked(p.get());
  }
  auto entries = _store->read_index(topic, partition, from_offset,
                                    std::max(max_entries, _options.fill_entries));
  if (!entries) {
    std::lock_guard lock(_mu);
    if (entries.code() == errc::not_found && !p->dropped && !p->state_valid && p->entries.empty()) {
      p->dropped = true;
      _lru.erase(p->lru);
      _parts.erase(p->key);
    }
    return entries;
  }
  {
    std::lock_guard lock(_mu);
    if (!p->dropped && p->index_gen == index_gen) {
      install_entries_locked(*p, from_offset, *entries);
      enforce_bounds_locked(p.get());
    } else {
      ++_stats.lost_fill_races;
    }
  }
  if (entries->size() > max_entries) entries->resize(max_entries);
  return entries;
}

void index_cache::apply(const std::vector<partition_change>& changes, bool resync) {
  commit_listener forward;
  {
    std::lock_guard lock(_mu);
    if (resync) {
      ++_stats.resyncs;
      ++_global_gen;
      for (auto& [key, p] : _parts) bump_locked(*p);
    } else {
      ++_stats.notifications;
    }
    for (const auto& ch : changes) {
      auto it = _parts.find(key_type(ch.topic, ch.partition));
      if (it == _parts.end()) continue;
      part& p = *it->second;
      bump_locked(p);
      // A commit only moves the high watermark up; the rest of the state is unchanged.
      if (p.state_valid && p.state_global_gen == _global_gen) {
        p.state.high_watermark = std::max(p.state.high_watermark, ch.high_watermark);
      }
    }
    forward = _on_change;
  }
  if (forward) forward(changes, resync);
}

void index_cache::invalidate_states() {
  std::lock_guard lock(_mu);
  ++_global_gen;
  for (auto& [key, p] : _parts) bump_locked(*p);
}

void index_cache::invalidate(const std::string& topic, int32_t partition) {
  std::lock_guard lock(_mu);
  auto it = _parts.find(key_type(topic, partition));
  if (it == _parts.end()) return;
  bump_locked(*it->second);
  it->second->state_valid = false;
  drop_entries_locked(*it->second);
}

void index_cache::invalidate_topic(const std::string& topic) {
  std::lock_guard lock(_mu);
  for (auto it = _parts.lower_bound(key_type(topic, INT32_MIN));
       it != _parts.end() && it->first.first == topic; ++it) {
    bump_locked(*it->second);
    it->second->state_valid = false;
    drop_entries_locked(*it->second);
  }
}

index_cache_stats index_cache::stats() const {
  std::lock_guard lock(_mu);
  index_cache_stats s = _stats;
  s.partitions = _parts.size();
  s.entries = _entries;
  s.notifications_active = _notifications;
  return s;
}

// Without notifications: re-read every cached partition's state each poll_interval and report
// the high watermarks that moved, as the listener would have. With notifications: the same for
// recently used partitions each safety_poll_interval, reporting only what moved unnoticed.
void index_cache::poll_loop() {
  std::unique_lock lock(_mu);
  while (!_stopping) {
    const bool safety = _notifications;
    if (safety && _options.safety_poll_interval.count() <= 0) {
      _poll_cv.wait(lock, [&] { return _stopping; });
      break;
    }
    _poll_cv.wait_for(lock, safety ? _options.safety_poll_interval : _options.poll_interval);
    if (_stopping) break;
    ++_stats.polls;
    const auto now = clock::now();
    std::vector<std::pair<part_ptr, uint64_t>> todo;
    todo.reserve(_parts.size());
    for (auto& [key, p] : _parts) {
      if (safety && (!p->state_valid || now - p->last_used > _options.hot_window)) continue;
      todo.emplace_back(p, p->gen);
    }
    const uint64_t global = _global_gen;
    lock.unlock();
    std::vector<partition_change> changes;
    for (auto& [p, gen] : todo) {
      const auto started = clock::now();
      auto state = _store->get_partition(p->key.first, p->key.second);
      if (!state) continue;
      std::lock_guard relock(_mu);
      const bool was_valid = p->state_valid && p->state_global_gen == _global_gen;
      const int64_t old = p->state.high_watermark;
      if (!p->dropped && p->gen == gen && _global_gen == global) {
        p->state = *state;
        p->state_valid = true;
        p->state_global_gen = global;
        p->state_at = started;
        bump_locked(*p);
      } else {
        merge_locked(*p, *state);
      }
      if (safety) {
        // Only a watermark above what the cache knew is news (a notification may be in flight
        // for it, which then repeats harmlessly).
        if (was_valid && state->high_watermark > old) {
          ++_stats.missed;
          changes.push_back({p->key.first, p->key.second, state->high_watermark});
        }
      } else if (!was_valid || state->high_watermark != old) {
        changes.push_back({p->key.first, p->key.second, state->high_watermark});
      }
    }
    lock.lock();
    commit_listener forward = _on_change;
    if (!changes.empty() && forward) {
      lock.unlock();
      forward(changes, false);
      lock.lock();
    }
  }
}

}  // namespace sh::metadata
