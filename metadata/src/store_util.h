#pragma once
// Helpers shared by the metadata_store implementations: argument validation, the lock order of a
// commit, ids and clocks. Internal to the metadata module.
#include <cstdint>
#include <map>
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

// Checks everything about a commit that does not need the database. Bad input from the caller is
// an error value, never a crash.
mresult<void> validate_commit(const object_commit& commit);

// Sum of the batches' offset counts (validate_commit guarantees it is positive and fits).
int64_t range_offset_count(const range_commit& range);
// max(range.max_timestamp, every batch's max_timestamp); -1 when none is known.
int64_t range_max_timestamp(const range_commit& range);

// Indexes of commit.ranges sorted by (topic, partition, position): the order in which partitions
// are locked (so concurrent commits never deadlock) and two ranges of one partition keep their
// order.
std::vector<size_t> commit_lock_order(const object_commit& commit);

}  // namespace sh::metadata::detail
