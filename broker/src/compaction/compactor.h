#pragma once
// Compaction of one partition's committed ranges from ingest objects into a segment object, and
// garbage collection of objects no index row references any more. Blocking (metadata and object
// store calls): run on a background thread, never on an I/O thread.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "sh/broker/config.h"
#include "sh/common/result.h"
#include "sh/metadata/metadata_store.h"
#include "sh/storage/object_store.h"

namespace sh::broker::compaction {

enum class errc {
  ok = 0,
  metadata_error,  // a metadata call failed (conflict/fenced included: the pass is abandoned)
  storage_error,   // an object GET/PUT/DELETE failed
  corrupt,         // committed bytes are not whole batches
};

template <class T>
using cresult = sh::result<T, errc>;

struct compaction_options {
  std::string prefix;                  // object key prefix of the segment ("" for none)
  std::string writer_id;               // recorded in the segment footer
  uint64_t segment_bytes = 134217728;  // topic segment.bytes: compact once this much is there
  int64_t segment_ms = 600000;         // topic segment.ms: or once the oldest row is this old
  // Size of one new index row's byte range inside the segment: a fetch reads at most about this
  // much for one row, as it would from an ingest object.
  uint64_t index_row_bytes = 1 << 20;
  int64_t now_ms = 0;  // the caller's clock, for segment.ms
  // Offset to start looking for rows not yet in segments (a previous outcome's next_scan_from);
  // 0 scans the whole index.
  int64_t scan_from = 0;
  // Codec of the segment's batches: -1 keeps every batch as it is; 0 (uncompressed), 1 (gzip),
  // 2 (snappy), 3 (lz4), 4 (zstd) rewrite each batch in another codec with its offsets,
  // timestamps, keys, values, headers and producer fields unchanged (control batches and
  // batches that cannot be decoded are kept as they are).
  int recompress_codec = -1;
  // Fault injection for tests: called after the segment PUT, before the index swap. Returning
  // false abandons the pass right there, as a crash would: the segment stays an orphan.
  std::function<bool(const std::string& segment_key)> before_swap;
};

struct compaction_outcome {
  bool compacted = false;
  std::string segment_key;
  int64_t first_offset = -1;
  int64_t last_offset = -1;
  size_t replaced_rows = 0;
  uint64_t segment_size = 0;
  uint64_t input_bytes = 0;           // bytes of the batches read from ingest objects
  uint64_t batches = 0;               // batches written
  uint64_t batches_recompressed = 0;  // of those, rewritten in another codec
  int64_t next_scan_from = 0;         // scan_from for the next call on this partition
};

// The codec number for recompress_codec of a topic: archive.compression.type when it names a
// codec (anything but "none"), else compression.type unless "producer"; -1 to keep batches.
int segment_codec(const std::string& compression_type, const std::string& archive_compression_type);

// One batch rewritten in `codec` (0..4) with every record unchanged, or nullopt when it stays as
// it is (already in that codec, a control batch, not decodable, or an invalid codec).
std::optional<std::vector<uint8_t>> recompress_batch(std::span<const uint8_t> batch, int codec);

struct retention_options {
  int64_t retention_ms = -1;     // topic retention.ms: -1 keeps forever
  int64_t retention_bytes = -1;  // topic retention.bytes (per partition): -1 no limit
  int64_t now_ms = 0;
};

struct retention_outcome {
  bool applied = false;  // the log start offset moved
  int64_t log_start_offset = -1;
  size_t units_removed = 0;  // whole segments, or whole committed ranges not yet compacted
  uint64_t bytes_removed = 0;
};

// Kafka's delete retention over one partition: from the oldest, whole units -- a segment (all
// its index rows), or one committed range still in an ingest object -- are removed while the
// unit's largest record timestamp is more than retention_ms old, or while the partition minus
// the unit still holds at least retention_bytes. Removal moves the log start offset past the
// unit (metadata_store::delete_records), which drops the rows and marks objects left without
// rows unreferenced; object garbage collection deletes them after its grace period.
cresult<retention_outcome> apply_retention(metadata::metadata_store& meta, const std::string& topic,
                                           int32_t partition, const retention_options& options);

struct sweep_outcome {
  size_t listed = 0;        // .ing / .seg objects in the bucket prefix
  size_t unregistered = 0;  // of those, unknown to the metadata store right now
  size_t deleted = 0;
};

// Finds and deletes orphans: objects in the bucket that the metadata store does not know (not
// live, not waiting for GC), left by a writer that crashed or failed between its PUT and its
// commit (ingest objects) or index swap (segments). An object is deleted only once it has been
// seen unregistered for at least grace_ms (first sightings are remembered by this object, so a
// restart starts the clock again), is checked once more right before the delete, and -- for a
// segment -- only while this process holds the partition's compaction lease, the only writer
// of that partition's segment keys. Registered objects are never touched. One owner thread.
class orphan_sweeper {
 public:
  struct options {
    std::string prefix;  // key prefix under which ingest/ and topics/ live ("" for none)
    std::string owner;   // lease owner (this process incarnation)
    int64_t grace_ms = 300000;
    int64_t lease_ttl_ms = 60000;
  };
  explicit orphan_sweeper(options o) : _options(std::move(o)) {}
  cresult<sweep_outcome> sweep(metadata::metadata_store& meta, storage::object_store& objects,
                               int64_t now_ms);
  size_t suspects() const { return _first_seen.size(); }

 private:
  options _options;
  std::map<std::string, int64_t> _first_seen;  // unregistered key -> when first seen so
};

// One pass over one partition under its compaction lease (fence): takes the leading run of index
// rows that live in ingest objects (not yet in segments), offset-contiguous, and if the run holds
// at least segment_bytes -- or its first row is older than segment_ms by max_timestamp -- copies
// its batches into a segment (real offsets written, footer index), PUTs it, and swaps the index in
// one metadata transaction. A crash or refused swap leaves at worst an orphan segment object.
cresult<compaction_outcome> compact_partition_once(metadata::metadata_store& meta,
                                                   storage::object_store& objects,
                                                   const std::string& topic, int32_t partition,
                                                   const metadata::lease_fence& fence,
                                                   const compaction_options& options);

// Deletes objects unreferenced since at least grace_ms before now_ms (the grace period covers
// fetches that read an index row just before the swap), then forgets them. Returns how many.
cresult<size_t> collect_garbage(metadata::metadata_store& meta, storage::object_store& objects,
                                int64_t now_ms, int64_t grace_ms, size_t max_objects = 1000);

struct compactor_options {
  std::string owner;                 // lease owner: this process incarnation
  std::string prefix;                // object key prefix for segments
  int64_t pass_interval_ms = 10000;  // broker compaction.interval.ms
  int64_t lease_ttl_ms = 60000;      // broker compaction.lease.ms
  // Objects stay this long after losing their last index row (covers in-flight fetches); also
  // how long the orphan sweep waits before deleting an unregistered object. Broker
  // object.gc.grace.ms.
  int64_t gc_grace_ms = 300000;
  int64_t sweep_interval_ms = 3600000;  // broker object.sweep.interval.ms
  // Topic config defaults come from here (log.segment.bytes, log.roll.ms, log.retention.*).
  broker_config broker;
  // Called after a partition's index rows were swapped for a segment or removed by retention,
  // so caches of those rows (the broker's index cache) drop them now instead of at their expiry.
  std::function<void(const std::string& topic, int32_t partition)> on_partition_changed;
};

// The broker's compactor settings from its config (the keys above; defaults when unset).
compactor_options make_compactor_options(const broker_config& cfg, std::string owner);

// The broker's background compactor: one thread that, every pass_interval_ms, takes (or keeps)
// the lease "compact/<topic>/<partition>" of every partition it can, compacts each held partition
// with the topic's segment.bytes / segment.ms (defaults 134217728 / 600000), then collects
// garbage. Each held partition first gets retention (retention.ms / retention.bytes), then
// compaction (re-compressing per compression.type / archive.compression.type); after the
// partitions, unreferenced objects past the grace period are deleted, and every
// sweep_interval_ms orphans are swept. Errors are logged and retried on the next pass.
// start()/stop() from one thread.
class compactor {
 public:
  compactor(std::shared_ptr<metadata::metadata_store> meta,
            std::shared_ptr<storage::object_store> objects, compactor_options options);
  ~compactor();
  compactor(const compactor&) = delete;
  compactor& operator=(const compactor&) = delete;

  void start();
  // Ends the pass in progress at its next partition, joins, and releases the leases held so
  // another broker can take the partitions over at once.
  void stop();
  // One pass over every partition (what the thread does each interval); for tests.
  void run_pass();

 private:
  void loop();
  bool stopping();
  void run_partition(const metadata::topic_info& t, int32_t partition);

  std::shared_ptr<metadata::metadata_store> _meta;
  std::shared_ptr<storage::object_store> _objects;
  compactor_options _options;
  std::mutex _mu;  // guards _stop
  std::condition_variable _cv;
  bool _stop = false;
  std::thread _thread;
  orphan_sweeper _sweeper;
  int64_t _last_sweep_ms = 0;
  std::map<std::string, int64_t> _scan_from;  // topic id + partition -> next scan_from
  std::map<std::string, int64_t> _held;  // leases held (name -> epoch); the thread's, then stop()'s
};

}  // namespace sh::broker::compaction
