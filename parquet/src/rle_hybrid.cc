#include "sh/parquet/internal/rle_hybrid.h"

#include "sh/parquet/internal/thrift_compact.h"

namespace sh::parquet {

int level_bit_width(int max_level) {
  int w = 0;
  while ((1 << w) <= max_level) ++w;
  return w;
}

int index_bit_width(uint32_t entries) {
  int w = 1;
  while (w < 32 && (uint64_t{1} << w) < entries) ++w;
  return w;
}

namespace {

template <class T>
size_t run_length(std::span<const T> v, size_t i) {
  size_t j = i + 1;
  while (j < v.size() && v[j] == v[i]) ++j;
  return j - i;
}

template <class T>
void encode(std::span<const T> values, int bit_width, std::string& out) {
  const size_t value_bytes = (static_cast<size_t>(bit_width) + 7) / 8;
  const size_t n = values.size();
  size_t i = 0;
  std::string packed;
  while (i < n) {
    const size_t run = run_length(values, i);
    if (run >= 8) {
      thrift::put_varint(out, static_cast<uint64_t>(run) << 1);
      const uint64_t v = values[i];
      for (size_t b = 0; b < value_bytes; ++b)
        out.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
      i += run;
      continue;
    }
    // Bit-packed groups of 8 until a run of 8+ equal values starts at a group boundary (groups
    // cannot be padded except at the very end, so a run is only taken where a group ends).
    size_t j = i;
    size_t groups = 0;
    packed.clear();
    while (j < n) {
      if (groups > 0 && run_length(values, j) >= 8) break;
      // 8 values of up to 32 bits, LSB first: flush whole bytes as they fill.
      uint64_t acc = 0;
      int bits = 0;
      for (size_t k = 0; k < 8; ++k) {
        const uint64_t v = j + k < n ? static_cast<uint64_t>(values[j + k]) : 0;
        acc |= v << bits;
        bits += bit_width;
        while (bits >= 8) {
          packed.push_back(static_cast<char>(acc & 0xff));
          acc >>= 8;
          bits -= 8;
        }
      }
      ++groups;
      j += 8;
    }
    thrift::put_varint(out, (static_cast<uint64_t>(groups) << 1) | 1);
    out.append(packed);
    i = j < n ? j : n;
  }
}

}  // namespace

void rle_hybrid_encode(std::span<const uint8_t> values, int bit_width, std::string& out) {
  encode(values, bit_width, out);
}

void rle_hybrid_encode(std::span<const uint32_t> values, int bit_width, std::string& out) {
  encode(values, bit_width, out);
}

}  // namespace sh::parquet
