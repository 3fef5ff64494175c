#include "sh/parquet/internal/rle_hybrid.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace sh::parquet {
namespace {

using v = std::vector<uint8_t>;

v encode(const v& values, int width) {
  std::string out;
  rle_hybrid_encode(values, width, out);
  return {out.begin(), out.end()};
}

// An independent decoder written from the spec, for round trips (reads bit by bit). Returns
// false on malformed input.
bool decode(const v& in, int width, size_t count, std::vector<uint32_t>& out) {
  size_t i = 0;
  const auto varint = [&](uint64_t& x) {
    x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i >= in.size()) return false;
      const uint8_t b = in[i++];
      x |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (out.size() < count) {
    uint64_t h;
    if (!varint(h)) return false;
    if (h & 1) {
      const uint64_t groups = h >> 1;
      if (groups == 0 || i + groups * width > in.size()) return false;
      const size_t base = i * 8;
      for (uint64_t k = 0; k < groups * 8; ++k) {
        uint32_t x = 0;
        for (int b = 0; b < width; ++b) {
          const size_t bit = base + k * width + b;
          x |= static_cast<uint32_t>((in[bit / 8] >> (bit % 8)) & 1) << b;
        }
        if (out.size() < count) out.push_back(x);
      }
      i += groups * width;
    } else {
      const uint64_t n = h >> 1;
      const int nbytes = (width + 7) / 8;
      if (n == 0 || i + nbytes > in.size()) return false;
      uint32_t val = 0;
      for (int b = 0; b < nbytes; ++b) val |= static_cast<uint32_t>(in[i++]) << (8 * b);
      for (uint64_t k = 0; k < n; ++k) out.push_back(val);
    }
  }
  return i == in.size() && out.size() == count;
}

bool decode(const v& in, int width, size_t count, v& out) {
  std::vector<uint32_t> wide;
  if (!decode(in, width, count, wide)) return false;
  out.assign(wide.begin(), wide.end());
  return true;
}

TEST(RleHybrid, BitWidth) {
  EXPECT_EQ(level_bit_width(0), 0);
  EXPECT_EQ(level_bit_width(1), 1);
  EXPECT_EQ(level_bit_width(2), 2);
  EXPECT_EQ(level_bit_width(3), 2);
  EXPECT_EQ(level_bit_width(4), 3);
}

TEST(RleHybrid, RleRun) {
  // 10 zeros, width 1: header varint(10 << 1) = 0x14, value in one byte.
  EXPECT_EQ(encode(v(10, 0), 1), (v{0x14, 0x00}));
  // 100 threes, width 2: varint(200) = 0xc8 0x01.
  EXPECT_EQ(encode(v(100, 3), 2), (v{0xc8, 0x01, 0x03}));
  EXPECT_EQ(encode(v(8, 1), 1), (v{0x10, 0x01}));
}

TEST(RleHybrid, BitPackedGroups) {
  // Five values, one padded group: header (1 << 1) | 1, bits LSB first 1,0,1,0,1 -> 0b10101.
  EXPECT_EQ(encode(v{1, 0, 1, 0, 1}, 1), (v{0x03, 0x15}));
  // Width 2: 0,1,2,3 -> 0b11100100 = 0xe4, twice.
  EXPECT_EQ(encode(v{0, 1, 2, 3, 0, 1, 2, 3}, 2), (v{0x03, 0xe4, 0xe4}));
  // Width 3 (max level 4): eight values in three bytes.
  EXPECT_EQ(encode(v{7, 0, 0, 0, 0, 0, 0, 7}, 3), (v{0x03, 0x07, 0x00, 0xe0}));
}

TEST(RleHybrid, MixedRunsAndGroups) {
  // 1,2,1 then 20 zeros: one bit-packed group (1,2,1,0,0,0,0,0), then an RLE run of the 15
  // zeros left.
  v in{1, 2, 1};
  in.resize(23, 0);
  EXPECT_EQ(encode(in, 2), (v{0x03, 0x19, 0x00, 0x1e, 0x00}));
  v back;
  ASSERT_TRUE(decode(encode(in, 2), 2, in.size(), back));
  EXPECT_EQ(back, in);
}

TEST(RleHybrid, IndexBitWidth) {
  EXPECT_EQ(index_bit_width(0), 1);
  EXPECT_EQ(index_bit_width(1), 1);
  EXPECT_EQ(index_bit_width(2), 1);
  EXPECT_EQ(index_bit_width(3), 2);
  EXPECT_EQ(index_bit_width(256), 8);
  EXPECT_EQ(index_bit_width(257), 9);
  EXPECT_EQ(index_bit_width(65536), 16);
}

TEST(RleHybrid, WideValues) {
  // Width 12: 0xabc then seven zeros -> bits LSB first: 0xbc, 0x0a, then 10 zero bytes.
  std::vector<uint32_t> in{0xabc, 0, 0, 0, 0, 0, 0, 1};
  std::string out;
  rle_hybrid_encode(std::span<const uint32_t>(in), 12, out);
  v b(out.begin(), out.end());
  ASSERT_EQ(b.size(), 1u + 12u);
  EXPECT_EQ(b[0], 0x03);
  EXPECT_EQ(b[1], 0xbc);
  EXPECT_EQ(b[2], 0x0a);
  EXPECT_EQ(b[11], 0x10);  // the last value (1) at bit 84: packed byte 10, bit 4
  std::vector<uint32_t> back;
  ASSERT_TRUE(decode(b, 12, in.size(), back));
  EXPECT_EQ(back, in);
  // An RLE run of a 20-bit value uses 3 bytes.
  std::vector<uint32_t> run(9, 0xfedcb);
  out.clear();
  rle_hybrid_encode(std::span<const uint32_t>(run), 20, out);
  EXPECT_EQ(v(out.begin(), out.end()), (v{0x12, 0xcb, 0xed, 0x0f}));
}

TEST(RleHybrid, RandomWideRoundTrips) {
  std::mt19937 rng(7);
  for (int width : {1, 5, 9, 16, 17, 31, 32}) {
    for (int trial = 0; trial < 100; ++trial) {
      const size_t n = rng() % 300;
      std::vector<uint32_t> in;
      const uint64_t limit = uint64_t{1} << width;
      while (in.size() < n) {
        const auto x = static_cast<uint32_t>(rng() % limit);
        const size_t run = rng() % 3 == 0 ? rng() % 30 : 1;
        for (size_t k = 0; k < run && in.size() < n; ++k) in.push_back(x);
      }
      std::string out;
      rle_hybrid_encode(std::span<const uint32_t>(in), width, out);
      std::vector<uint32_t> back;
      ASSERT_TRUE(decode(v(out.begin(), out.end()), width, in.size(), back)) << width;
      ASSERT_EQ(back, in) << width << " " << trial;
    }
  }
}

TEST(RleHybrid, EmptyInput) { EXPECT_TRUE(encode(v{}, 1).empty()); }

TEST(RleHybrid, RandomRoundTrips) {
  std::mt19937 rng(42);
  for (int width = 1; width <= 3; ++width) {
    for (int trial = 0; trial < 300; ++trial) {
      const size_t n = rng() % 500;
      v in;
      while (in.size() < n) {
        // Mix runs of random length with noise, as repetition/definition levels look.
        const uint8_t x = static_cast<uint8_t>(rng() % (1u << width));
        const size_t run = rng() % 3 == 0 ? rng() % 40 : 1;
        for (size_t k = 0; k < run && in.size() < n; ++k) in.push_back(x);
      }
      v back;
      ASSERT_TRUE(decode(encode(in, width), width, in.size(), back)) << width << " " << trial;
      ASSERT_EQ(back, in) << width << " " << trial;
    }
  }
}

}  // namespace
}  // namespace sh::parquet
