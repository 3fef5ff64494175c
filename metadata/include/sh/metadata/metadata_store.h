#pragma once
// metadata_store: the broker's view of the metadata database (topics, partitions, the batch
// index, objects, and later groups, producers, leases, mirror checkpoints).
//
// The interface is synchronous and blocking on purpose: implementations wrap blocking client
// libraries (SQLite, libpq), and the broker calls them from a bounded thread pool and posts the
// results back to its I/O threads. Every method is thread-safe. A store object lives from
// open_metadata_store() until it is destroyed; destroying it closes its connections, so no call
// may be in flight at that point.
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sh/common/result.h"

namespace sh::metadata {

enum class errc {
  ok = 0,
  not_found,
  already_exists,
  invalid_argument,
  conflict,
  io_error,
  schema_too_new,
  fenced,
  busy,
  unsupported,
};

const char* to_string(errc code) noexcept;

template <class T>
using mresult = sh::result<T, errc>;

// Kafka topic ids are 16-byte UUIDs; ours are random (version 4).
using topic_id = std::array<uint8_t, 16>;

struct topic_info {
  std::string name;
  topic_id id{};
  int32_t partition_count = 0;
  std::map<std::string, std::string> configs;
  int64_t created_at_ms = 0;
};

struct partition_state {
  int64_t log_start_offset = 0;
  int64_t high_watermark = 0;
  int64_t max_timestamp = -1;  // largest batch max timestamp ever committed (-1: none)
};

// One record batch inside a committed range. The producer fields are -1 for non-idempotent
// batches; they feed the idempotent-producer checks.
struct batch_commit {
  int32_t offset_count = 0;  // lastOffsetDelta + 1 of the batch; must be >= 1
  int64_t max_timestamp = -1;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
};

// One partition's contiguous byte range in an ingest object, made of one or more record batches.
struct range_commit {
  std::string topic;
  int32_t partition = 0;
  uint64_t byte_offset = 0;
  uint64_t byte_length = 0;
  int64_t min_timestamp = -1;
  int64_t max_timestamp = -1;
  std::vector<batch_commit> batches;
};

struct object_commit {
  std::string object_key;
  uint64_t object_size = 0;
  std::vector<range_commit> ranges;
};

enum class range_status {
  ok = 0,
  unknown_topic_or_partition,
  duplicate_sequence,
  out_of_order_sequence,
  invalid_producer_epoch,
};

const char* to_string(range_status status) noexcept;

struct range_outcome {
  range_status status = range_status::ok;
  int64_t base_offset = -1;
  int64_t last_offset = -1;
};

struct index_entry {
  int64_t base_offset = 0;
  int64_t last_offset = 0;
  int64_t max_timestamp = -1;
  int64_t record_count = 0;  // offset count (sum of the batches' offset counts)
  std::string object_key;
  uint64_t byte_offset = 0;
  uint64_t byte_length = 0;
};

// A lease gives one owner the right to do work that must have a single doer (a consumer group's
// coordination, a partition's compaction, a mirrored partition's copy). Every change of owner
// increments the epoch; writes made under a lease carry (name, epoch) as a lease_fence and are
// refused with errc::fenced once the epoch has moved on.
struct lease {
  std::string name;
  std::string owner;  // identifies one process incarnation (e.g. node id + start-up nonce)
  int64_t epoch = 0;  // >= 1
  int64_t acquired_at_ms = 0;
  int64_t expires_at_ms = 0;  // 0 after release
};

struct lease_fence {
  std::string name;
  int64_t epoch = 0;
};

// A range copied from a source Kafka cluster keeps its source offsets.
struct mirror_range {
  range_commit range;       // the batches as the source has them (producer fields are ignored)
  int64_t base_offset = 0;  // source offset of the range's first batch
  int64_t last_offset = 0;  // source offset of its last batch's last offset; gaps inside allowed
};

// Where a mirror resumes consuming one source partition.
struct mirror_checkpoint {
  std::string mirror_name;  // one mirror configuration (a bridge and its source cluster)
  std::string source_topic;
  int32_t source_partition = 0;
  std::string topic;  // the archive partition it feeds
  int32_t partition = 0;
  int64_t next_source_offset = 0;
  int64_t updated_at_ms = 0;  // set by the store
};

struct mirror_commit {
  std::string object_key;
  uint64_t object_size = 0;
  std::vector<mirror_range> ranges;
  std::vector<mirror_checkpoint> checkpoints;
  std::optional<lease_fence> fence;  // the mirror task's lease, if it runs under one
};

// Compaction: one partition's index rows [first_offset, last_offset], all in ingest objects or
// older segments, rewritten into one segment object.
struct segment_replacement {
  std::string topic;
  int32_t partition = 0;
  std::string segment_key;
  uint64_t segment_size = 0;
  int64_t first_offset = 0;
  int64_t last_offset = 0;
  // The index rows the compactor read and copied, in offset order. They must all still exist
  // unchanged and be the only rows in [first_offset, last_offset] (a DeleteRecords or another
  // compactor in between makes the swap a conflict).
  std::vector<index_entry> replaced;
  // The new rows, all pointing into segment_key, in offset order, tiling
  // [first_offset, last_offset] exactly (base of each = last of the previous + 1).
  std::vector<index_entry> entries;
  lease_fence fence;  // the partition's compaction lease ("compact/<topic>/<partition>")
};

// An object no index row references any more, waiting for garbage collection.
struct unreferenced_object {
  std::string object_key;
  uint64_t object_size = 0;
  int64_t unreferenced_at_ms = 0;  // when the last index row referencing it went away
};

// A consumer group's committed position in one partition (OffsetCommit / OffsetFetch).
struct group_offset {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  int32_t leader_epoch = -1;
  std::string metadata;
  int64_t commit_timestamp_ms = 0;  // <= 0 on commit: the store's clock
};

struct producer_identity {
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
};

// A live broker process, for Metadata responses and the preferred-broker choice.
struct broker_registration {
  int32_t node_id = 0;
  std::string endpoints;         // opaque to the store (e.g. the advertised listeners)
  std::string rack;              // "" when none
  std::string incarnation;       // unique per process start: tells a restart from a duplicate
  int64_t registered_at_ms = 0;  // set by the store
  int64_t heartbeat_at_ms = 0;   // set by the store
};

// A partition whose high watermark a commit advanced.
struct partition_change {
  std::string topic;
  int32_t partition = 0;
  int64_t high_watermark = 0;
};

// Receives commit notifications. `resync`: notifications may have been lost (the PostgreSQL
// listener reconnected), so re-read whatever is cached; `changes` is then empty.
using commit_listener =
    std::function<void(const std::vector<partition_change>& changes, bool resync)>;

// Limits enforced by every implementation (Kafka's own limits where Kafka has one).
inline constexpr size_t max_topic_name_length = 249;
inline constexpr int32_t max_partition_count = 100000;
inline constexpr size_t max_object_key_length = 1024;
inline constexpr size_t max_name_length = 1024;  // lease names and owners
inline constexpr int64_t max_lease_ttl_ms = int64_t{366} * 24 * 3600 * 1000;

// True when `name` is a legal Kafka topic name: 1..249 characters of [a-zA-Z0-9._-], and
// neither "." nor "..".
bool is_valid_topic_name(std::string_view name) noexcept;

class metadata_store {
 public:
  virtual ~metadata_store() = default;

  // Creates the topic with `partitions` empty partitions (offsets start at 0) and a new random
  // topic id. Errors: invalid_argument (bad name, partition count outside 1..100000, empty config
  // name, NUL in a config name or value), already_exists.
  virtual mresult<topic_info> create_topic(const std::string& name, int32_t partitions,
                                           const std::map<std::string, std::string>& configs) = 0;
  // std::nullopt when there is no such topic.
  virtual mresult<std::optional<topic_info>> get_topic(const std::string& name) = 0;
  // All topics, ordered by name.
  virtual mresult<std::vector<topic_info>> list_topics() = 0;
  // Errors: not_found (no such topic or partition).
  virtual mresult<partition_state> get_partition(const std::string& topic, int32_t partition) = 0;

  // CreatePartitions: grows the topic to new_count partitions; the new ones start empty.
  // Errors: not_found, invalid_argument (new_count not above the current count, or above
  // max_partition_count).
  virtual mresult<topic_info> create_partitions(const std::string& topic, int32_t new_count) = 0;
  // AlterConfigs: replaces the topic's whole config set with `configs` (an empty map clears it),
  // in one transaction. Returns the topic afterwards. Errors: not_found, invalid_argument (empty
  // config name, NUL in a name or value).
  virtual mresult<topic_info> set_topic_configs(
      const std::string& name, const std::map<std::string, std::string>& configs) = 0;
  // DeleteRecords: moves the partition's log start offset up to `offset` (-1: the high
  // watermark) and drops the index entries wholly below it (objects left without index entries
  // become unreferenced); an offset at or below the current log
  // start changes nothing. Returns the log start offset afterwards. Errors: not_found,
  // invalid_argument (offset above the high watermark, or below -1).
  virtual mresult<int64_t> delete_records(const std::string& topic, int32_t partition,
                                          int64_t offset) = 0;
  // DeleteTopics: the topic disappears at once (its name may be reused; a new topic gets a new
  // id), with its partitions, index entries, group offsets, producer state and mirror
  // checkpoints. Objects it referenced stay registered, marked unreferenced for garbage collection
  // (list_unreferenced_objects). Errors: not_found.
  virtual mresult<void> delete_topic(const std::string& name) = 0;

  // ONE transaction: registers the object, and for each range in a fixed (topic, partition) lock
  // order assigns base_offset = high watermark, last = base + sum(offset_count) - 1, inserts the
  // index row, advances the high watermark. Outcomes are in the order of commit.ranges; two ranges
  // of one partition get offsets in their order in commit.ranges. A range of an unknown topic or
  // partition gets unknown_topic_or_partition and does not affect the others.
  //
  // When the transaction returns, it is durable. Committing an object key that is already
  // registered with the same size is treated as a retry of an earlier commit whose answer was
  // lost: nothing changes and the outcomes recorded for it are returned again. Errors:
  // invalid_argument (malformed commit: empty, too long or NUL-containing key, range outside the
  // object, a range without batches or with offset_count < 1), conflict (the key is registered with
  // another size), io_error, busy.
  virtual mresult<std::vector<range_outcome>> commit_object(const object_commit& commit) = 0;

  // Index entries of the partition whose last_offset >= from_offset, ordered by base_offset, at
  // most max_entries of them. Errors: not_found (no such topic or partition).
  virtual mresult<std::vector<index_entry>> read_index(const std::string& topic, int32_t partition,
                                                       int64_t from_offset, size_t max_entries) = 0;

  // ---- mirror writes ----
  // ONE transaction, all or nothing: checks the fence, registers the object, inserts each range at
  // its own source offsets (a range may start at or after the partition's high watermark, so
  // offsets absent in the source become gaps; never below it) and advances the high watermark
  // past it, then stores the checkpoints. A checkpoint also advances its archive partition's high
  // watermark to at least next_source_offset, so trailing gaps of the source (transaction
  // markers, compacted records) are gaps here too and synced consumer offsets stay valid.
  // A commit with an empty object_key (and no ranges, size 0) is checkpoint-only: it registers no
  // object and leaves the high watermark where the last record ends (a log ending in offsets
  // without records would leave consumers with no batch to move past them; the next range
  // starts after the gap). A checkpoint below its partition's high watermark is a conflict.
  // Committing an already registered object key with the same ranges is a retry and succeeds
  // without change. Errors: invalid_argument (malformed), not_found (unknown topic or partition),
  // conflict (a range below the high watermark, or the key registered with other content),
  // fenced, io_error, busy.
  virtual mresult<void> commit_mirror_object(const mirror_commit& commit) = 0;
  virtual mresult<std::optional<mirror_checkpoint>> get_mirror_checkpoint(
      const std::string& mirror_name, const std::string& source_topic,
      int32_t source_partition) = 0;
  // Every checkpoint of one mirror, ordered by (source_topic, source_partition).
  virtual mresult<std::vector<mirror_checkpoint>> list_mirror_checkpoints(
      const std::string& mirror_name) = 0;

  // ---- producers ----
  // InitProducerId. Without a transactional id: a new producer id (unique across brokers) with
  // epoch 0. With one: the id registered for it with the epoch bumped (fencing the previous
  // incarnation), or a new id at epoch 0 for a new transactional id or when the epoch would reach
  // INT16_MAX. Errors: invalid_argument (transactional id over 1024 characters or with NUL).
  virtual mresult<producer_identity> init_producer_id(const std::string& transactional_id) = 0;

  // ---- consumer groups ----
  // Group ids: 1..1024 characters without NUL.

  // Stores the offsets in one transaction (registering the group if new); a later entry for the
  // same partition wins. The result has one code per entry: ok, or not_found for an unknown topic
  // or partition (that entry is skipped). `fence`: the coordinator's lease for the group.
  // Errors: invalid_argument, fenced, io_error, busy.
  virtual mresult<std::vector<errc>> commit_group_offsets(
      const std::string& group_id, const std::vector<group_offset>& offsets,
      const std::optional<lease_fence>& fence) = 0;
  // The group's committed offsets of live topics, ordered by (topic, partition); empty for an
  // unknown group.
  virtual mresult<std::vector<group_offset>> fetch_group_offsets(const std::string& group_id) = 0;
  // Groups with stored state, ordered by id.
  virtual mresult<std::vector<std::string>> list_groups() = 0;
  // Removes the group and its offsets. Errors: not_found, fenced.
  virtual mresult<void> delete_group(const std::string& group_id,
                                     const std::optional<lease_fence>& fence) = 0;

  // ---- brokers ----
  // Times are the database's clock, like leases.

  // Registers (or refreshes) this broker process. Another incarnation of the same node id that
  // heartbeated within session_timeout_ms is alive: conflict (two brokers share a node.id).
  // Errors: invalid_argument, conflict.
  virtual mresult<broker_registration> register_broker(const broker_registration& broker,
                                                       int64_t session_timeout_ms) = 0;
  // Errors: fenced (the node id now belongs to another incarnation, or was unregistered).
  virtual mresult<void> heartbeat_broker(int32_t node_id, const std::string& incarnation) = 0;
  // Graceful shutdown. Errors: fenced.
  virtual mresult<void> unregister_broker(int32_t node_id, const std::string& incarnation) = 0;
  // Brokers whose last heartbeat is at most max_age_ms old, ordered by node id.
  virtual mresult<std::vector<broker_registration>> list_brokers(int64_t max_age_ms) = 0;

  // ---- leases ----
  // Lease times are the database's clock (PostgreSQL: the server's, so brokers' clocks don't
  // matter). Names and owners: 1..1024 characters without NUL; ttl_ms in 1..max_lease_ttl_ms.

  // Takes the lease if it is free, released, expired, or already `owner`'s, for ttl_ms from now.
  // A new owner gets epoch + 1 (1 for a new lease); the same owner keeps its epoch. Returns the
  // lease as it stands afterwards: when its owner is not `owner`, someone else holds it.
  virtual mresult<lease> acquire_lease(const std::string& name, const std::string& owner,
                                       int64_t ttl_ms) = 0;
  // Extends a lease still held at `epoch` (even if it expired, as long as no one took it).
  // Errors: fenced (taken by another owner, or never held).
  virtual mresult<lease> renew_lease(const std::string& name, const std::string& owner,
                                     int64_t epoch, int64_t ttl_ms) = 0;
  // Gives the lease up at once (the next owner need not wait for expiry). Errors: fenced.
  virtual mresult<void> release_lease(const std::string& name, const std::string& owner,
                                      int64_t epoch) = 0;
  virtual mresult<std::optional<lease>> get_lease(const std::string& name) = 0;

  // ListOffsets by timestamp: the first index entry (in offset order) whose max_timestamp is
  // >= `timestamp` -- the entry holding Kafka's answer, which the caller finds in its batches --
  // or nullopt when there is none. For ListOffsets MAX_TIMESTAMP pass
  // partition_state::max_timestamp. An index seek, not a scan. Errors: not_found.
  virtual mresult<std::optional<index_entry>> find_by_timestamp(const std::string& topic,
                                                                int32_t partition,
                                                                int64_t timestamp) = 0;

  // Commit notifications for caches and long-polling fetches: after every commit_object and
  // commit_mirror_object that advanced high watermarks -- by this store for SQLite (on the
  // committing thread, after the commit), by any broker for PostgreSQL (LISTEN/NOTIFY, on a thread
  // the store owns, so this broker's own commits arrive that way too). One listener per store;
  // setting another replaces it, an empty function stops delivery. Notifications may repeat,
  // arrive late or out of order, and (SQLite) from several committing threads at once: a listener
  // keeps the largest high watermark it saw. It should be quick (post work elsewhere) and must
  // not throw.
  virtual mresult<void> set_commit_listener(commit_listener listener) = 0;

  // ---- compaction and object garbage collection ----
  // ONE transaction: checks the fence, registers the segment object (kind 'segment'), deletes the
  // replaced index rows, inserts the new ones, and marks every object that lost its last index
  // row as unreferenced (now). Offsets, high watermark and log start are unchanged, so reads see
  // the same batches before and after. Errors: invalid_argument (malformed replacement), not_found
  // (unknown topic or partition), conflict (the replaced rows changed, or the segment key is
  // already registered), fenced, io_error, busy, unsupported (a backend without compaction).
  virtual mresult<void> replace_with_segment(const segment_replacement& replacement) {
    (void)replacement;
    return make_error(errc::unsupported, "replace_with_segment is not implemented by this store");
  }
  // Objects that have been unreferenced since at or before `unreferenced_before_ms` (the store's
  // clock), oldest first, at most max_objects of them.
  virtual mresult<std::vector<unreferenced_object>> list_unreferenced_objects(
      int64_t unreferenced_before_ms, size_t max_objects) {
    (void)unreferenced_before_ms;
    (void)max_objects;
    return make_error(errc::unsupported,
                      "list_unreferenced_objects is not implemented by this store");
  }
  // Drops the registration of an unreferenced object after its bytes were deleted from object
  // storage. An unknown key is not an error (a retry after a lost answer). Errors: conflict (the
  // object is still referenced or not marked unreferenced).
  virtual mresult<void> forget_object(const std::string& object_key) {
    (void)object_key;
    return make_error(errc::unsupported, "forget_object is not implemented by this store");
  }
  // The keys among `object_keys` that are registered (live or waiting for garbage collection),
  // in the order given, for the orphan sweep: an object in the bucket that is not registered was
  // written by a writer that crashed (or failed) before its commit or index swap. At most 10000
  // keys per call. Errors: invalid_argument (too many keys), io_error, busy.
  virtual mresult<std::vector<std::string>> registered_objects(
      const std::vector<std::string>& object_keys) {
    (void)object_keys;
    return make_error(errc::unsupported, "registered_objects is not implemented by this store");
  }

  // Human-readable description for logs, e.g. "sqlite:/var/lib/streamhouse/meta.db".
  virtual std::string describe() const = 0;
};

// Opens (creating if needed) and migrates the store named by `url`:
//   "sqlite:///abs/path.db", "sqlite:relative.db", "sqlite::memory:" or a plain file path ->
//   SQLite. "postgresql://..." / "postgres://..." -> errc::unsupported for now.
// Errors: invalid_argument (empty or unparsable url), io_error (cannot open), schema_too_new (the
// database was migrated by a newer binary), unsupported.
mresult<std::unique_ptr<metadata_store>> open_metadata_store(const std::string& url);

}  // namespace sh::metadata
