#pragma once
// index_cache: an in-memory cache of hot partitions' state (high watermark, log start) and index
// entries in front of a metadata_store, for the broker's read path (Fetch, ListOffsets), so a
// fetch of cached data does not touch the database.
//
// Not a metadata_store: a separate object the read path asks; it reads through to the store on a
// miss. Invalidation:
// - Commit notifications (metadata_store::set_commit_listener; start() takes the store's one
//   listener slot and forwards to its own callback): in-process for SQLite, LISTEN/NOTIFY for
//   PostgreSQL. A notified high watermark is applied in place (max), so a hot partition's state
//   stays cached while it is written to.
// - Polling when notifications are unavailable (set_commit_listener failed, or
//   options.notifications = false): a thread re-reads every cached partition's state every
//   poll_interval and reports the changes it finds like notifications; a cached state is then
//   served for at most poll_interval. With notifications, a slower safety poll
//   (safety_poll_interval) of the recently used partitions catches notifications that were lost
//   while the listener connection was down or hung.
// - A resync notification (the PostgreSQL listener reconnected: notifications may have been
//   lost) invalidates every cached state.
// - invalidate_states(): a commit this process made whose notification may still be in flight
//   (PostgreSQL delivers its own commits asynchronously); every state is re-read on next use.
// - Before start() nothing reports commits: the cache passes every call through to the store.
// - Time: a state is re-read after state_ttl even when notifications work (DeleteRecords and
//   topic deletion by another broker are not notified, and a lost listener connection is only
//   reported once it is back), index entries after entry_ttl (compaction swaps rows for segment
//   rows; the old objects stay readable for the GC grace period, much longer than entry_ttl).
//
// Fill/invalidation race: every partition has a generation, bumped by every notification and
// invalidation. A miss remembers the generation before reading the store and installs its result
// only if the generation did not move meanwhile, so a read that started before a commit can
// never be cached over that commit's notification.
//
// Committed index entries never change (offsets are assigned once; new commits only append above
// the high watermark), so cached entries are not invalidated by commits. The cache remembers
// which offset intervals it knows completely, so mirror gaps are answered from memory too.
//
// Memory is bounded: at most max_partitions partitions (least recently used dropped first) and
// max_entries index entries in all (the least recently used partitions' entries dropped first).
//
// Thread-safe; calls block on the store on a miss (run them where store calls may block). The
// poller thread is the only thread it starts.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sh/metadata/metadata_store.h"

namespace sh::metadata {

struct index_cache_options {
  size_t max_partitions = 4096;  // hot partitions whose state and entries are kept
  // Index entries kept over all partitions (~200 bytes each with the object key: ~13 MB).
  size_t max_entries = 65536;
  // With notifications: the longest a cached state is served without a re-read.
  std::chrono::milliseconds state_ttl{500};
  // Without notifications: the polling period, and the longest a cached state is served.
  std::chrono::milliseconds poll_interval{100};
  // With notifications: how often recently used partitions' states are still re-read, to catch
  // notifications that never came (a LISTEN connection that hangs instead of failing, or one
  // that dropped and has not reconnected yet); a moved high watermark is then reported like a
  // notification. 0: never.
  std::chrono::milliseconds safety_poll_interval{1000};
  // Partitions used within this window count as recently used for the safety poll.
  std::chrono::milliseconds hot_window{10000};
  // The longest cached index entries of a partition are kept before a re-read.
  std::chrono::milliseconds entry_ttl{30000};
  // Index entries read from the store on a miss (at least the caller's max_entries).
  size_t fill_entries = 64;
  bool notifications = true;  // false: poll even if the store could notify
};

struct index_cache_stats {
  uint64_t state_hits = 0;
  uint64_t state_misses = 0;  // store reads of a partition state
  uint64_t index_hits = 0;
  uint64_t index_misses = 0;  // store reads of index entries
  uint64_t notifications = 0;
  uint64_t resyncs = 0;
  uint64_t polls = 0;            // polling rounds (fallback and safety)
  uint64_t missed = 0;           // watermarks the safety poll found moved without a notification
  uint64_t evictions = 0;        // partitions dropped for the bounds
  uint64_t lost_fill_races = 0;  // misses not cached because a change arrived meanwhile
  size_t partitions = 0;
  size_t entries = 0;
  bool notifications_active = false;
};

class index_cache {
 public:
  explicit index_cache(std::shared_ptr<metadata_store> store, index_cache_options options = {});
  ~index_cache();
  index_cache(const index_cache&) = delete;
  index_cache& operator=(const index_cache&) = delete;

  // Takes the store's commit listener and forwards every change, after the cache applied it, to
  // `on_change` (may be empty), e.g. to wake long-polling fetches; changes found by polling are
  // forwarded too. Falls back to polling when notifications cannot be set up (the reason is in
  // stats()/notifications_active()). Call once.
  void start(commit_listener on_change);
  // Releases the store's listener and stops the poller. Idempotent; the destructor calls it.
  void stop();
  bool notifications_active() const;

  // The partition's state, from the cache when fresh. Errors as metadata_store::get_partition.
  mresult<partition_state> get_partition(const std::string& topic, int32_t partition);
  // Reads the state from the store now (and caches it): for callers that must see operations
  // that are not notified (ListOffsets right after DeleteRecords).
  mresult<partition_state> refresh_partition(const std::string& topic, int32_t partition);
  // Like metadata_store::read_index: entries whose last_offset >= from_offset, in offset order,
  // at most max_entries (>= 1). May return fewer than the store would when the cached part ends;
  // the caller continues from the last entry's last_offset + 1 as with the store.
  mresult<std::vector<index_entry>> read_index(const std::string& topic, int32_t partition,
                                               int64_t from_offset, size_t max_entries);

  // Applies commit notifications (what the store's listener calls; public for callers that learn
  // of commits another way).
  void apply(const std::vector<partition_change>& changes, bool resync);
  // Every cached state is re-read on next use (a local commit whose notification is in flight).
  void invalidate_states();
  // Forgets a partition (state and entries), e.g. after reading one of its objects failed.
  void invalidate(const std::string& topic, int32_t partition);
  // Forgets every partition of a topic (deleted, or partitions added).
  void invalidate_topic(const std::string& topic);

  index_cache_stats stats() const;

 private:
  using clock = std::chrono::steady_clock;
  using key_type = std::pair<std::string, int32_t>;
  struct part;
  using part_ptr = std::shared_ptr<part>;

  part_ptr touch_locked(const key_type& key, bool create);
  bool state_fresh_locked(const part& p, clock::time_point now) const;
  void bump_locked(part& p);
  void merge_locked(part& p, const partition_state& s);
  void drop_entries_locked(part& p);
  void enforce_bounds_locked(const part* keep);
  void install_entries_locked(part& p, int64_t from, const std::vector<index_entry>& entries);
  mresult<partition_state> fill_state(const key_type& key);
  void poll_loop();

  const std::shared_ptr<metadata_store> _store;
  const index_cache_options _options;

  mutable std::mutex _mu;
  std::list<part_ptr> _lru;  // front: most recently used
  std::map<key_type, part_ptr> _parts;
  uint64_t _global_gen = 0;  // bumped by invalidate_states() and resyncs
  size_t _entries = 0;
  index_cache_stats _stats;
  commit_listener _on_change;
  bool _notifications = false;
  bool _started = false;
  bool _stopping = false;
  std::condition_variable _poll_cv;
  std::thread _poller;
};

}  // namespace sh::metadata
