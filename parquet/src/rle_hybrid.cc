#include "sh/parquet/internal/rle_hybrid.h"

#include "sh/parquet/internal/thrift_compact.h"

namespace sh::parquet {

int level_bit_width(int max_level) {
  int w = 0;
  while ((1 << w) <= max_level) ++w;
  return w;
}

namespace {

size_t run_length(std::span<const uint8_t> v, size_t i) {
  size_t j = i + 1;
  while (j < v.size() && v[j] == v[i]) ++j;
  return j - i;
}

}  // namespace

void rle_hybrid_encode(std::span<const uint8_t> values, int bit_width, std::string& out) {
  const size_t value_bytes = (static_cast<size_t>(bit_width) + 7) / 8;
  const size_t n = values.size();
  size_t i = 0;
  while (i < n) {
    const size_t run = run_length(values, i);
    if (run >= 8) {
      thrift::put_varint(out, static_cast<uint64_t>(run) << 1);
      uint32_t v = values[i];
      for (size_t b = 0; b < value_bytes; ++b)
        out.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
      i += run;
      continue;
    }
    // Bit-packed groups of 8 until a run of 8+ equal values starts at a group boundary (groups
    // cannot be padded except at the very end, so a run is only taken where a group ends).
    size_t j = i;
    size_t groups = 0;
    std::string packed;
    while (j < n) {
      if (groups > 0 && run_length(values, j) >= 8) break;
      uint64_t acc = 0;
      for (size_t k = 0; k < 8; ++k) {
        const uint64_t v = j + k < n ? values[j + k] : 0;
        acc |= v << (k * static_cast<size_t>(bit_width));
      }
      for (int b = 0; b < bit_width; ++b)
        packed.push_back(static_cast<char>((acc >> (8 * b)) & 0xff));
      ++groups;
      j += 8;
    }
    thrift::put_varint(out, (static_cast<uint64_t>(groups) << 1) | 1);
    out.append(packed);
    i = j < n ? j : n;
  }
}

}  // namespace sh::parquet
