#include "sh/storage/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string_view>
#include <vector>

namespace sh::storage {
namespace {

std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(crc32c, known_vectors) {
  EXPECT_EQ(crc32c({}), 0u);
  EXPECT_EQ(crc32c(as_bytes("123456789")), 0xE3069283u);
  // RFC 3720 (iSCSI) appendix B.4.
  std::vector<uint8_t> buf(32, 0);
  EXPECT_EQ(crc32c(buf), 0x8A9136AAu);
  std::fill(buf.begin(), buf.end(), 0xff);
  EXPECT_EQ(crc32c(buf), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(crc32c(buf), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(31 - i);
  EXPECT_EQ(crc32c(buf), 0x113FDB5Cu);
}

TEST(crc32c, extend_and_paths_agree) {
  std::mt19937 rng(7);
  std::vector<uint8_t> data(4099);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  std::span<const uint8_t> all(data);
  const uint32_t whole = crc32c_extend_portable_for_test(0, all);
  EXPECT_EQ(crc32c(all), whole);
  for (size_t start : {0, 1, 3, 7, 8, 13}) {
    for (size_t len : {0, 1, 5, 8, 9, 63, 64, 1000}) {
      auto sub = all.subspan(start, len);
      EXPECT_EQ(crc32c(sub), crc32c_extend_portable_for_test(0, sub)) << start << "+" << len;
    }
  }
  for (size_t cut : {0, 1, 9, 2048, 4099}) {
    EXPECT_EQ(crc32c_extend(crc32c(all.first(cut)), all.subspan(cut)), whole) << cut;
    EXPECT_EQ(crc32c_extend_portable_for_test(crc32c_extend_portable_for_test(0, all.first(cut)),
                                              all.subspan(cut)),
              whole);
  }
}

}  // namespace
}  // namespace sh::storage
