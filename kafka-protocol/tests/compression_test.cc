#include "sh/kafka/compression.h"

#include <gtest/gtest.h>
#include <snappy-c.h>

#include <random>
#include <string>

namespace sh::kafka {
namespace {

constexpr compression_type kCodecs[] = {compression_type::gzip, compression_type::snappy,
                                        compression_type::lz4, compression_type::zstd};

std::vector<uint8_t> sample(size_t n, bool compressible, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = compressible ? static_cast<uint8_t>("abcdefghij"[(i / 7) % 10] + (rng() % 50 == 0))
                        : static_cast<uint8_t>(rng());
  }
  return v;
}

TEST(compression, round_trip_every_codec) {
  for (auto codec : kCodecs) {
    SCOPED_TRACE(compression_name(codec));
    for (size_t n : {0u, 1u, 100u, 70000u, 1u << 20}) {
      for (bool compressible : {true, false}) {
        auto in = sample(n, compressible);
        auto packed = compress(codec, in);
        ASSERT_TRUE(packed) << packed.message();
        if (compressible && n >= 70000) {
          EXPECT_LT(packed->size(), n / 2);
        }
        auto out = decompress(codec, *packed, n);
        ASSERT_TRUE(out) << out.message() << " n=" << n;
        EXPECT_EQ(*out, in);
      }
    }
  }
}

TEST(compression, levels) {
  auto in = sample(100000, true);
  for (auto codec : {compression_type::gzip, compression_type::lz4, compression_type::zstd}) {
    for (int level : {1, 9}) {
      auto packed = compress(codec, in, level);
      ASSERT_TRUE(packed);
      auto out = decompress(codec, *packed, in.size());
      ASSERT_TRUE(out);
      EXPECT_EQ(*out, in);
    }
  }
}

TEST(compression, output_bound_is_enforced_without_trusting_sizes) {
  std::vector<uint8_t> zeros(64u << 20, 0);  // 64 MiB compresses to almost nothing
  for (auto codec : kCodecs) {
    SCOPED_TRACE(compression_name(codec));
    auto packed = compress(codec, zeros);
    ASSERT_TRUE(packed);
    auto out = decompress(codec, *packed, 1u << 20);
    ASSERT_FALSE(out);
    EXPECT_EQ(out.code(), batch_errc::decompressed_too_large);
    // Exactly at the bound is fine.
    auto small = std::vector<uint8_t>(4096, 7);
    auto p2 = compress(codec, small);
    ASSERT_TRUE(p2);
    auto exact = decompress(codec, *p2, 4096);
    EXPECT_TRUE(exact) << exact.message();
    auto over = decompress(codec, *p2, 4095);
    ASSERT_FALSE(over);
    EXPECT_EQ(over.code(), batch_errc::decompressed_too_large);
  }
  auto none = decompress(compression_type::none, zeros, 10);
  EXPECT_EQ(none.code(), batch_errc::decompressed_too_large);
}

TEST(compression, raw_snappy_is_accepted) {
  // librdkafka sends raw snappy blocks, not the xerial framing Java uses.
  auto in = sample(5000, true);
  size_t n = snappy_max_compressed_length(in.size());
  std::vector<uint8_t> raw(n);
  ASSERT_EQ(snappy_compress(reinterpret_cast<const char*>(in.data()), in.size(),
                            reinterpret_cast<char*>(raw.data()), &n),
            SNAPPY_OK);
  raw.resize(n);
  auto out = decompress(compression_type::snappy, raw, 1u << 20);
  ASSERT_TRUE(out) << out.message();
  EXPECT_EQ(*out, in);
  // A raw block whose declared length exceeds the bound fails before allocating.
  auto small = decompress(compression_type::snappy, raw, 100);
  EXPECT_EQ(small.code(), batch_errc::decompressed_too_large);
}

TEST(compression, gzip_concatenated_members) {
  auto a = sample(1000, true, 1);
  auto b = sample(2000, true, 2);
  auto pa = compress(compression_type::gzip, a);
  auto pb = compress(compression_type::gzip, b);
  ASSERT_TRUE(pa && pb);
  std::vector<uint8_t> both = *pa;
  both.insert(both.end(), pb->begin(), pb->end());
  auto out = decompress(compression_type::gzip, both, 1u << 20);
  ASSERT_TRUE(out);
  auto expect = a;
  expect.insert(expect.end(), b.begin(), b.end());
  EXPECT_EQ(*out, expect);
}

TEST(compression, truncated_and_garbage_inputs_fail_cleanly) {
  auto in = sample(20000, true);
  for (auto codec : kCodecs) {
    SCOPED_TRACE(compression_name(codec));
    auto packed = compress(codec, in);
    ASSERT_TRUE(packed);
    for (size_t n = 0; n < packed->size(); n += 1 + n / 8) {
      auto out = decompress(codec, std::span<const uint8_t>(*packed).first(n), 1u << 20);
      // Snappy's xerial framing may end cleanly at a block boundary; that's a shorter output.
      if (out) {
        EXPECT_LT(out->size(), in.size()) << n;
      } else {
        EXPECT_TRUE(out.code() == batch_errc::corrupt_compressed) << n;
      }
    }
    auto garbage = sample(3000, false, 5);
    auto g = decompress(codec, garbage, 1u << 20);
    EXPECT_FALSE(g);
  }
}

TEST(compression, random_mutations_never_crash) {
  auto in = sample(30000, true);
  std::mt19937 rng(3);
  for (auto codec : kCodecs) {
    auto packed = *compress(codec, in);
    for (int iter = 0; iter < 2000; ++iter) {
      auto m = packed;
      m[rng() % m.size()] = static_cast<uint8_t>(rng());
      auto out = decompress(codec, m, 1u << 20);
      if (out) {
        EXPECT_LE(out->size(), 1u << 20);
      }
    }
  }
}

TEST(compression, unknown_codec) {
  auto r = decompress(static_cast<compression_type>(5), {}, 10);
  EXPECT_EQ(r.code(), batch_errc::unsupported_compression);
}

}  // namespace
}  // namespace sh::kafka
