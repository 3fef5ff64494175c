// libFuzzer target: legacy magic 0/1 message sets; a successful conversion must yield a batch
// that splits and iterates cleanly.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "sh/kafka/legacy_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sh::kafka::legacy_conversion_options o;
  o.max_decompressed = 1u << 20;
  auto v2 = sh::kafka::convert_legacy_to_v2({data, size}, o);
  if (!v2) return 0;
  auto split = sh::kafka::split_batches(*v2);
  if (!split || split->size() != 1) std::abort();
  auto r = sh::kafka::for_each_record((*split)[0], [](const sh::kafka::record_view&) {});
  if (!r) std::abort();
  return 0;
}
