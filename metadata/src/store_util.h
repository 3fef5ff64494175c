#pragma once
// Helpers shared by the metadata_store implementations: argument validation, the lock order of a
// commit, ids and clocks. Internal to the metadata module.
#include <compare>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "sh/metadata/metadata_store.h"

// Propagate an error from an mresult-returning expression: SH_META_TRY binds the value to `var`.
#define SH_META_TRY(var, expr)   \
  auto var##_result = (expr);    \
  if (!var##_result) {           \
    return var##_result.error(); \
  }                              \
  auto& var = *var##_result

#define SH_META_CHECK(expr)                \
  do {                                     \
    auto sh_meta_check_result = (expr);    \
    if (!sh_meta_check_result) {           \
      return sh_meta_check_result.error(); \
    }                                      \
  } while (0)

namespace sh::metadata::detail {

int64_t now_ms();

// A random (version 4, RFC 4122 variant) UUID that Kafka accepts as a topic id: not the reserved
// all-zero or metadata-topic ids, and not one whose base64 text would start with '-' (Kafka
// avoids those because they look like command-line flags).
topic_id random_topic_id();

mresult<void> validate_create_topic(const std::string& name, int32_t partitions,
                                    const std::map<std::string, std::string>& configs);
// Topic config names and values every store accepts (non-empty names, no NUL).
mresult<void> validate_configs(const std::map<std::string, std::string>& configs);

// Checks everything about a commit that does not need the database. Bad input from the caller is
// an error value, never a crash.
mresult<void> validate_commit(const object_commit& commit);
mresult<void> validate_mirror_commit(const mirror_commit& commit);
// A checkpoint-only mirror commit whose checkpoint is below its partition's high watermark:
// someone else has written further (a zombie after a takeover); conflict.
error_info<errc> checkpoint_behind(const mirror_checkpoint& cp, int64_t high_watermark);
// Checks a compaction swap's shape: keys, both row lists tiling [first_offset, last_offset], new
// rows inside the segment.
mresult<void> validate_segment_replacement(const segment_replacement& r);
// Whether two index rows are the same row (every field).
bool same_index_entry(const index_entry& a, const index_entry& b);

// Empty means "no transactional id".
mresult<void> validate_transactional_id(const std::string& transactional_id);

mresult<void> validate_group_id(const std::string& group_id);

// Indexes of `offsets` to store: the last entry of each (topic, partition).
std::vector<size_t> last_offset_per_partition(const std::vector<group_offset>& offsets);

mresult<void> validate_broker(const broker_registration& broker, int64_t session_timeout_ms);
mresult<void> validate_incarnation(int32_t node_id, const std::string& incarnation);

mresult<void> validate_lease_args(const std::string& name, const std::string& owner,
                                  int64_t ttl_ms);

// Sum of the batches' offset counts (validate_commit guarantees it is positive and fits).
int64_t range_offset_count(const range_commit& range);
// max(range.max_timestamp, every batch's max_timestamp); -1 when none is known.
int64_t range_max_timestamp(const range_commit& range);

// Indexes of commit.ranges sorted by (topic, partition, position): the order in which partitions
// are locked (so concurrent commits never deadlock) and two ranges of one partition keep their
// order.
std::vector<size_t> commit_lock_order(const object_commit& commit);

// ---- idempotent producers ------------------------------------------------------------------
// Kafka's rules (ProducerStateManager): per (producer, partition) the broker keeps the last 5
// batches; a batch equal to one of them (same epoch, first and last sequence) is a duplicate and
// is answered with the original offsets; otherwise its first sequence must follow the last one
// (wrapping at INT32_MAX), an older epoch is fenced, and a newer epoch must start at sequence 0.
// With no state at all (new producer, or state expired) any sequence is accepted.

inline constexpr size_t retained_producer_batches = 5;

struct producer_key {
  int64_t producer_id = 0;
  int64_t topic_key = 0;
  int32_t partition = 0;
  auto operator<=>(const producer_key&) const = default;
};

struct producer_batch_record {
  int16_t epoch = 0;
  int32_t first_sequence = 0;
  int32_t last_sequence = 0;
  int64_t base_offset = 0;
  int64_t last_offset = 0;
};

// Retained batches per (producer, partition), oldest first. A key that is absent has no state.
using producer_states = std::map<producer_key, std::vector<producer_batch_record>>;

// Kafka's sequence arithmetic: sequence + increment, wrapping from INT32_MAX to 0.
int32_t increment_sequence(int32_t sequence, int32_t increment);

// The (producer, partition) keys of a range's idempotent batches.
std::set<producer_key> producer_keys(int64_t topic_key, const range_commit& range);

struct sequence_verdict {
  range_status status = range_status::ok;
  int64_t base_offset = -1;  // the original offsets, for a duplicate
  int64_t last_offset = -1;
};

// Checks a range's idempotent batches against `states` (which must hold every loaded key of
// producer_keys(range)). ok: commit it; duplicate_sequence: every batch was committed before;
// anything else refuses the whole range. A range mixing duplicates with new batches is
// out_of_order_sequence (the broker gives each idempotent batch its own range).
sequence_verdict check_sequences(const producer_states& states, int64_t topic_key,
                                 const range_commit& range);

// Records an accepted range's idempotent batches (offsets from base_offset on) in `states`, and
// their keys in `touched`.
void record_sequences(producer_states& states, std::set<producer_key>& touched, int64_t topic_key,
                      const range_commit& range, int64_t base_offset);

}  // namespace sh::metadata::detail
