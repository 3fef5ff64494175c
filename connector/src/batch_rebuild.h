#pragma once
// Rebuilding source records as magic-2 batches at their source offsets (private to connector;
// tests include it from src/).
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "sh/kafka/record_batch.h"

namespace sh::connector {

struct source_header {
  std::string_view key;
  std::optional<std::string_view> value;  // null distinct from empty
};

// One record as read from the source. The views point into the librdkafka message, which the
// mirror keeps alive until the record is encoded (no copy of keys, values or headers).
struct source_record {
  int64_t offset = 0;
  int64_t timestamp = -1;
  bool log_append_time = false;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
  std::vector<source_header> headers;
  size_t size = 0;  // approximate encoded size, for batch and flush bounds
};

struct rebuilt_batch {
  std::vector<uint8_t> bytes;  // base offset written; the read path patches it anyway
  int32_t offset_count = 0;    // last_offset_delta + 1
  int64_t max_timestamp = -1;
  int64_t first_timestamp = -1;
};

// Records of one partition in increasing offset order -> contiguous batches: batch 0 starts at
// records[0].offset, batch k+1 at batch k's last offset + 1 (the broker's read path numbers the
// batches of a range that way), so a source gap becomes the first record's offset delta or a
// delta inside a batch; the last batch ends at the last record. A batch holds about
// batch_max_bytes at most (one record at least), one timestamp type, and for LogAppendTime one
// timestamp. `compression` is Kafka's codec bits (0..4). Records are encoded straight from the
// views into the batch (one copy); compressed batches compress that records section.
std::vector<rebuilt_batch> rebuild_batches(std::span<const source_record> records,
                                           size_t batch_max_bytes, int compression);

}  // namespace sh::connector
