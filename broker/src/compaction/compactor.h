#pragma once
// Compaction of one partition's committed ranges from ingest objects into a segment object, and
// garbage collection of objects no index row references any more. Blocking (metadata and object
// store calls): run on a background thread, never on an I/O thread.
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

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
};

struct compaction_outcome {
  bool compacted = false;
  std::string segment_key;
  int64_t first_offset = -1;
  int64_t last_offset = -1;
  size_t replaced_rows = 0;
  uint64_t segment_size = 0;
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
  std::string owner;   // lease owner: this process incarnation
  std::string prefix;  // object key prefix for segments
  int64_t pass_interval_ms = 10000;
  int64_t lease_ttl_ms = 60000;
  // Objects stay this long after losing their last index row (covers in-flight fetches).
  // Hardcoded by the broker for now (no config key yet).
  int64_t gc_grace_ms = 300000;
};

// The broker's background compactor: one thread that, every pass_interval_ms, takes (or keeps)
// the lease "compact/<topic>/<partition>" of every partition it can, compacts each held partition
// with the topic's segment.bytes / segment.ms (defaults 134217728 / 600000), then collects
// garbage. Errors are logged and retried on the next pass. start()/stop() from one thread.
class compactor {
 public:
  compactor(std::shared_ptr<metadata::metadata_store> meta,
            std::shared_ptr<storage::object_store> objects, compactor_options options);
  ~compactor();
  compactor(const compactor&) = delete;
  compactor& operator=(const compactor&) = delete;

  void start();
  // Ends the pass in progress at its next partition and joins; leases expire on their own.
  void stop();
  // One pass over every partition (what the thread does each interval); for tests.
  void run_pass();

 private:
  void loop();
  bool stopping();

  std::shared_ptr<metadata::metadata_store> _meta;
  std::shared_ptr<storage::object_store> _objects;
  compactor_options _options;
  std::mutex _mu;  // guards _stop
  std::condition_variable _cv;
  bool _stop = false;
  std::thread _thread;
};

}  // namespace sh::broker::compaction
