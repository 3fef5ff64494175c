#include "sh/kafka/wire.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>

namespace sh::kafka {
namespace {

std::vector<uint8_t> bytes(std::initializer_list<int> v) {
  std::vector<uint8_t> out;
  for (int b : v) out.push_back(static_cast<uint8_t>(b));
  return out;
}

TEST(wire, fixed_width_big_endian) {
  byte_writer w;
  w.write_int8(-2);
  w.write_int16(0x0102);
  w.write_int32(-1);
  w.write_int64(0x0102030405060708);
  w.write_uint16(0xfffe);
  w.write_uint32(0x80000001u);
  w.write_float64(1.5);
  w.write_bool(true);
  EXPECT_EQ(w.size(), 1u + 2 + 4 + 8 + 2 + 4 + 8 + 1);
  std::vector<uint8_t> expect_prefix = bytes({0xfe, 0x01, 0x02, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4,
                                              5,    6,    7,    8,    0xff, 0xfe, 0x80, 0, 0, 1});
  auto buf = w.take();
  EXPECT_TRUE(std::equal(expect_prefix.begin(), expect_prefix.end(), buf.begin()));
  byte_reader r(buf);
  EXPECT_EQ(r.read_int8(), -2);
  EXPECT_EQ(r.read_int16(), 0x0102);
  EXPECT_EQ(r.read_int32(), -1);
  EXPECT_EQ(r.read_int64(), 0x0102030405060708);
  EXPECT_EQ(r.read_uint16(), 0xfffe);
  EXPECT_EQ(r.read_uint32(), 0x80000001u);
  EXPECT_EQ(r.read_float64(), 1.5);
  EXPECT_TRUE(r.read_bool());
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(r.read_int8(), 0);
  EXPECT_EQ(r.error(), decode_errc::truncated);
}

TEST(wire, bool_any_nonzero_is_true) {
  auto b = bytes({0, 1, 0x80});
  byte_reader r(b);
  EXPECT_FALSE(r.read_bool());
  EXPECT_TRUE(r.read_bool());
  EXPECT_TRUE(r.read_bool());
}

TEST(wire, varints_match_kafka_encoding) {
  // Values and encodings from Kafka's ByteUtils tests (zigzag).
  struct c {
    int32_t v;
    std::vector<uint8_t> enc;
  };
  for (const auto& [v, enc] : std::vector<c>{
           {0, bytes({0x00})},
           {-1, bytes({0x01})},
           {1, bytes({0x02})},
           {63, bytes({0x7e})},
           {-64, bytes({0x7f})},
           {64, bytes({0x80, 0x01})},
           {-65, bytes({0x81, 0x01})},
           {std::numeric_limits<int32_t>::max(), bytes({0xfe, 0xff, 0xff, 0xff, 0x0f})},
           {std::numeric_limits<int32_t>::min(), bytes({0xff, 0xff, 0xff, 0xff, 0x0f})}}) {
    byte_writer w;
    w.write_varint(v);
    EXPECT_EQ(w.take(), enc) << v;
    byte_reader r(enc);
    EXPECT_EQ(r.read_varint(), v);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.remaining(), 0u);
  }
}

TEST(wire, varlong_round_trip_random) {
  std::mt19937_64 rng(42);
  byte_writer w;
  std::vector<int64_t> values = {0, -1, 1, std::numeric_limits<int64_t>::min(),
                                 std::numeric_limits<int64_t>::max()};
  for (int i = 0; i < 1000; ++i) values.push_back(static_cast<int64_t>(rng()) >> (rng() % 64));
  for (auto v : values) w.write_varlong(v);
  std::vector<uint32_t> uvalues;
  for (int i = 0; i < 1000; ++i) uvalues.push_back(static_cast<uint32_t>(rng() >> (rng() % 64)));
  for (auto v : uvalues) w.write_unsigned_varint(v);
  auto buf = w.take();
  byte_reader r(buf);
  for (auto v : values) ASSERT_EQ(r.read_varlong(), v);
  for (auto v : uvalues) ASSERT_EQ(r.read_unsigned_varint(), v);
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(unsigned_varint_size(0), 1u);
  EXPECT_EQ(unsigned_varint_size(127), 1u);
  EXPECT_EQ(unsigned_varint_size(128), 2u);
  EXPECT_EQ(unsigned_varint_size(std::numeric_limits<uint32_t>::max()), 5u);
}

TEST(wire, varint_too_long_is_bad_varint) {
  auto b = bytes({0x80, 0x80, 0x80, 0x80, 0x80, 0x01});
  byte_reader r(b);
  (void)r.read_unsigned_varint();
  EXPECT_EQ(r.error(), decode_errc::bad_varint);
  auto l = std::vector<uint8_t>(11, 0x80);
  byte_reader r2(l);
  (void)r2.read_varlong();
  EXPECT_EQ(r2.error(), decode_errc::bad_varint);
}

TEST(wire, varint_truncated) {
  auto b = bytes({0x80, 0x80});
  byte_reader r(b);
  (void)r.read_varint();
  EXPECT_EQ(r.error(), decode_errc::truncated);
}

TEST(wire, strings_classic_and_compact) {
  byte_writer w;
  w.write_string("abc");
  w.write_nullable_string(std::nullopt);
  w.write_nullable_string(std::string(""));
  w.write_compact_string("hello");
  w.write_compact_nullable_string(std::nullopt);
  w.write_compact_nullable_string(std::string("x"));
  auto buf = w.take();
  EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + 5), bytes({0, 3, 'a', 'b', 'c'}));
  byte_reader r(buf);
  EXPECT_EQ(r.read_string(), "abc");
  EXPECT_EQ(r.read_nullable_string(), std::nullopt);
  EXPECT_EQ(r.read_nullable_string(), std::optional<std::string>(""));
  EXPECT_EQ(r.read_compact_string(), "hello");
  EXPECT_EQ(r.read_compact_nullable_string(), std::nullopt);
  EXPECT_EQ(r.read_compact_nullable_string(), std::optional<std::string>("x"));
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(wire, bytes_classic_and_compact) {
  std::vector<uint8_t> payload = {1, 2, 3};
  byte_writer w;
  w.write_bytes(payload);
  w.write_nullable_bytes(std::nullopt);
  w.write_compact_bytes(payload);
  w.write_compact_nullable_bytes(std::nullopt);
  w.write_compact_nullable_bytes(payload);
  auto buf = w.take();
  byte_reader r(buf);
  EXPECT_EQ(r.read_bytes(), payload);
  EXPECT_EQ(r.read_nullable_bytes(), std::nullopt);
  EXPECT_EQ(r.read_compact_bytes(), payload);
  EXPECT_EQ(r.read_compact_nullable_bytes(), std::nullopt);
  auto view = r.read_compact_nullable_bytes_view();
  ASSERT_TRUE(view);
  EXPECT_EQ(std::vector<uint8_t>(view->begin(), view->end()), payload);
  EXPECT_TRUE(r.ok());
}

TEST(wire, null_in_non_nullable_is_invalid) {
  {
    auto b = bytes({0xff, 0xff});
    byte_reader r(b);
    (void)r.read_string();
    EXPECT_EQ(r.error(), decode_errc::invalid_value);
  }
  {
    auto b = bytes({0x00});
    byte_reader r(b);
    (void)r.read_compact_string();
    EXPECT_EQ(r.error(), decode_errc::invalid_value);
  }
  {
    auto b = bytes({0xff, 0xff, 0xff, 0xff});
    byte_reader r(b);
    (void)r.read_bytes();
    EXPECT_EQ(r.error(), decode_errc::invalid_value);
  }
}

TEST(wire, negative_lengths_fail) {
  {
    auto b = bytes({0xff, 0xfe, 'a'});  // -2
    byte_reader r(b);
    EXPECT_EQ(r.read_nullable_string(), std::nullopt);
    EXPECT_EQ(r.error(), decode_errc::negative_length);
  }
  {
    auto b = bytes({0x80, 0x00, 0x00, 0x00});  // INT32_MIN
    byte_reader r(b);
    EXPECT_EQ(r.read_nullable_bytes(), std::nullopt);
    EXPECT_EQ(r.error(), decode_errc::negative_length);
  }
  {
    auto b = bytes({0xff, 0xff, 0xff, 0xfe});
    byte_reader r(b);
    (void)r.read_array_length();
    EXPECT_EQ(r.error(), decode_errc::negative_length);
  }
}

TEST(wire, lengths_past_the_end_fail_before_allocating) {
  {
    auto b = bytes({0x7f, 0xff, 'a'});
    byte_reader r(b);
    (void)r.read_string();
    EXPECT_EQ(r.error(), decode_errc::truncated);
  }
  {
    auto b = bytes({0x7f, 0xff, 0xff, 0xff, 1, 2});  // 2 GiB claimed
    byte_reader r(b);
    (void)r.read_bytes();
    EXPECT_EQ(r.error(), decode_errc::truncated);
  }
  {
    auto b = bytes({0xff, 0xff, 0xff, 0xff, 0x0f});  // compact length 2^32 - 2
    byte_reader r(b);
    (void)r.read_compact_nullable_bytes();
    EXPECT_EQ(r.error(), decode_errc::truncated);
  }
}

TEST(wire, huge_array_counts_fail) {
  {
    auto b = bytes({0x7f, 0xff, 0xff, 0xff, 0, 0, 0});
    byte_reader r(b);
    EXPECT_EQ(r.read_array_length(), 0);
    EXPECT_EQ(r.error(), decode_errc::too_large);
  }
  {
    auto b = bytes({0xff, 0xff, 0xff, 0xff, 0x0f, 0});
    byte_reader r(b);
    EXPECT_EQ(r.read_compact_array_length(), 0);
    EXPECT_EQ(r.error(), decode_errc::too_large);
  }
  {
    auto b = bytes({0x00, 0x00, 0x00, 0x02, 0xaa, 0xbb});
    byte_reader r(b);
    EXPECT_EQ(r.read_array_length(), 2);
    EXPECT_TRUE(r.ok());
  }
  {
    auto b = bytes({0x00});
    byte_reader r(b);
    EXPECT_EQ(r.read_compact_array_length(), -1);
    auto c = bytes({0xff, 0xff, 0xff, 0xff});
    byte_reader r2(c);
    EXPECT_EQ(r2.read_array_length(), -1);
    EXPECT_TRUE(r2.ok());
  }
}

TEST(wire, error_is_sticky_and_first_wins) {
  auto b = bytes({0x00, 0x05, 'a'});
  byte_reader r(b);
  (void)r.read_string();
  EXPECT_EQ(r.error(), decode_errc::truncated);
  r.fail(decode_errc::invalid_value);
  EXPECT_EQ(r.error(), decode_errc::truncated);
  EXPECT_EQ(r.read_int8(), 0);
  EXPECT_FALSE(r.ok());
}

TEST(wire, uuid_and_raw) {
  uuid u{};
  for (size_t i = 0; i < u.size(); ++i) u[i] = static_cast<uint8_t>(i * 3);
  byte_writer w;
  w.write_uuid(u);
  auto buf = w.take();
  ASSERT_EQ(buf.size(), 16u);
  byte_reader r(buf);
  EXPECT_EQ(r.read_uuid(), u);
  byte_reader r2(std::span<const uint8_t>(buf).first(15));
  (void)r2.read_uuid();
  EXPECT_EQ(r2.error(), decode_errc::truncated);
}

TEST(wire, patch_int32_and_append_buffer) {
  byte_writer w(bytes({0xaa}));
  size_t at = w.size();
  w.write_int32(0);
  w.write_string("ab");
  w.patch_int32(at, static_cast<int32_t>(w.size() - at - 4));
  EXPECT_EQ(w.take(), bytes({0xaa, 0, 0, 0, 4, 0, 2, 'a', 'b'}));
  byte_writer w2;
  w2.patch_int32(10, 1);
  EXPECT_FALSE(w2.ok());
}

TEST(wire, classic_string_overflow_flags_writer) {
  byte_writer w;
  w.write_string(std::string(40000, 'x'));
  EXPECT_FALSE(w.ok());
}

TEST(wire, tagged_field_helpers_merge_in_tag_order) {
  std::vector<tagged_field> unknown = {{1, {0xa}}, {5, {0xb, 0xc}}};
  byte_writer w;
  size_t next = 0;
  write_unknown_tags_below(w, unknown, next, 3);
  w.write_unsigned_varint(3);  // a known tag in between
  w.write_unsigned_varint(0);
  write_remaining_unknown_tags(w, unknown, next);
  EXPECT_EQ(w.take(), bytes({1, 1, 0xa, 3, 0, 5, 2, 0xb, 0xc}));
}

TEST(wire, decode_errc_names) {
  EXPECT_STREQ(decode_errc_name(decode_errc::too_large), "too_large");
  EXPECT_STREQ(decode_errc_name(decode_errc::unsupported_version), "unsupported_version");
}

}  // namespace
}  // namespace sh::kafka
