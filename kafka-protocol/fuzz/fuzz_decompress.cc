// libFuzzer target: every codec on arbitrary input must fail cleanly or stay within the bound;
// what decompresses must compress and decompress back to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "sh/kafka/compression.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto codec = static_cast<sh::kafka::compression_type>(data[0] % 5);
  constexpr size_t kMax = 1u << 20;
  auto out = sh::kafka::decompress(codec, {data + 1, size - 1}, kMax);
  if (!out) return 0;
  if (out->size() > kMax) std::abort();
  auto packed = sh::kafka::compress(codec, *out);
  if (!packed) std::abort();
  auto back = sh::kafka::decompress(codec, *packed, kMax);
  if (!back || *back != *out) std::abort();
  return 0;
}
