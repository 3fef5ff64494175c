// libFuzzer target: arbitrary bytes as the tail of an ingest object or a segment. The decoders
// must return a value or an error, never crash, and every range or index entry they accept must
// lie inside the object. Build with Clang (the CMake target exists only then) and run e.g.
//   storage_footer_fuzz -max_total_time=60
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sh/storage/ingest_object.h"
#include "sh/storage/segment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sh::storage;
  std::span<const uint8_t> in(data, size);
  // The first byte, when present, makes the object look bigger than the tail we have.
  const uint64_t extra = size > 0 ? data[0] : 0;
  for (uint64_t object_size : {uint64_t{size}, uint64_t{size} + extra}) {
    if (auto ingest = parse_ingest_footer(in, object_size)) {
      for (const auto& r : ingest->ranges) {
        if (r.offset > object_size || r.length > object_size - r.offset) std::abort();
      }
    }
    if (auto seg = parse_segment_footer(in, object_size)) {
      for (const auto& e : seg->index) {
        if (e.position >= seg->data_length) std::abort();
      }
      (void)seg->position_for_offset(static_cast<int64_t>(extra));
      (void)seg->position_for_timestamp(static_cast<int64_t>(extra));
    }
    (void)ingest_tail_size(in, object_size);
    (void)segment_tail_size(in, object_size);
  }
  return 0;
}
