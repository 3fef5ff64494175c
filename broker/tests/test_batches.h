#pragma once
// Record batches for broker unit tests (shared by the ingest writer and compaction tests).
#include <cstdint>
#include <string>
#include <vector>

#include "sh/kafka/record_batch.h"

namespace sh::broker::testing {

// An uncompressed magic-2 batch of `records` records: keys "k<i>", 100-byte values,
// timestamps ts, ts+1, ...
inline std::vector<uint8_t> make_batch(int records, int64_t ts) {
  kafka::batch_build_options opts;
  opts.base_timestamp = ts;
  std::vector<kafka::record_spec> recs;
  for (int i = 0; i < records; ++i) {
    kafka::record_spec r;
    r.timestamp_delta = i;
    r.key = std::string(1, 'k');
    r.key->append(std::to_string(i));  // (append: GCC 12 warns falsely on literal + string)
    r.value = std::string(100, static_cast<char>('a' + i % 26));
    recs.push_back(r);
  }
  return kafka::build_batch(opts, recs);
}

}  // namespace sh::broker::testing
