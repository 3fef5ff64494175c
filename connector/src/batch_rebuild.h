#pragma once
// Rebuilding source records as magic-2 batches at their source offsets (private to connector;
// tests include it from src/).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sh/kafka/record_batch.h"

namespace sh::connector {

// One record as read from the source, owned (librdkafka's message is freed at once).
struct source_record {
  int64_t offset = 0;
  int64_t timestamp = -1;
  bool log_append_time = false;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<kafka::record_header_spec> headers;
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
// timestamp. `compression` is Kafka's codec bits (0..4).
std::vector<rebuilt_batch> rebuild_batches(std::span<const source_record> records,
                                           size_t batch_max_bytes, int compression);

}  // namespace sh::connector
