// libFuzzer target: records blobs through split_batches and record iteration. When the first
// byte is odd, every batch's CRC is recomputed first so mutations reach the record parser and
// the codecs instead of stopping at the CRC check.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "sh/kafka/record_batch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::vector<uint8_t> blob(data + 1, data + size);
  if (data[0] & 1) {
    size_t pos = 0;
    while (blob.size() - pos >= sh::kafka::batch_header_size) {
      auto h = sh::kafka::parse_batch_header(std::span<const uint8_t>(blob).subspan(pos));
      if (h->batch_length < 49 || h->size_bytes() > blob.size() - pos) break;
      sh::kafka::update_batch_crc(std::span<uint8_t>(blob).subspan(pos, h->size_bytes()));
      pos += h->size_bytes();
    }
  }
  auto split = sh::kafka::split_batches(blob);
  if (!split) return 0;
  for (const auto& b : *split) {
    size_t total = 0;
    auto r = sh::kafka::for_each_record(
        b,
        [&](const sh::kafka::record_view& rec) {
          if (rec.key) total += rec.key->size();
          if (rec.value) total += rec.value->size();
          for (const auto& h : rec.headers) total += h.key.size();
        },
        1u << 20);
    if (r && total > (1u << 20)) std::abort();
  }
  return 0;
}
