#include "sh/parquet/internal/thrift_compact.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace sh::parquet::thrift {
namespace {

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
using v = std::vector<uint8_t>;

TEST(ThriftCompact, Varints) {
  const auto enc = [](uint64_t x) {
    std::string out;
    put_varint(out, x);
    return bytes(out);
  };
  EXPECT_EQ(enc(0), (v{0x00}));
  EXPECT_EQ(enc(1), (v{0x01}));
  EXPECT_EQ(enc(127), (v{0x7f}));
  EXPECT_EQ(enc(128), (v{0x80, 0x01}));
  EXPECT_EQ(enc(300), (v{0xac, 0x02}));
  EXPECT_EQ(enc(16384), (v{0x80, 0x80, 0x01}));
  EXPECT_EQ(enc(std::numeric_limits<uint64_t>::max()),
            (v{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
}

TEST(ThriftCompact, Zigzag) {
  EXPECT_EQ(zigzag32(0), 0u);
  EXPECT_EQ(zigzag32(-1), 1u);
  EXPECT_EQ(zigzag32(1), 2u);
  EXPECT_EQ(zigzag32(-2), 3u);
  EXPECT_EQ(zigzag32(std::numeric_limits<int32_t>::max()), 0xfffffffeu);
  EXPECT_EQ(zigzag32(std::numeric_limits<int32_t>::min()), 0xffffffffu);
  EXPECT_EQ(zigzag64(0), 0u);
  EXPECT_EQ(zigzag64(-1), 1u);
  EXPECT_EQ(zigzag64(2), 4u);
  EXPECT_EQ(zigzag64(std::numeric_limits<int64_t>::max()), 0xfffffffffffffffeull);
  EXPECT_EQ(zigzag64(std::numeric_limits<int64_t>::min()), 0xffffffffffffffffull);
}

TEST(ThriftCompact, ShortAndLongFieldHeaders) {
  std::string out;
  compact_writer w(out);
  w.begin_struct();
  w.field_i32(1, 5);    // delta 1, type i32 (5): 0x15, zigzag(5) = 10
  w.field_i32(3, -1);   // delta 2: 0x25, zigzag(-1) = 1
  w.field_i64(20, 1);   // delta 17 > 15: long form, type 6, zigzag(20) = 40, value 2
  w.field_i16(35, -3);  // delta 15: short form 0xf4, zigzag(-3) = 5
  w.field_i32(2, 0);    // negative delta: long form 0x05, zigzag(2) = 4
  w.end_struct();
  EXPECT_EQ(bytes(out),
            (v{0x15, 0x0a, 0x25, 0x01, 0x06, 0x28, 0x02, 0xf4, 0x05, 0x05, 0x04, 0x00, 0x00}));
}

TEST(ThriftCompact, BoolsI8AndBinary) {
  std::string out;
  compact_writer w(out);
  w.begin_struct();
  w.field_bool(1, true);    // 0x11
  w.field_bool(2, false);   // 0x12
  w.field_i8(3, -2);        // 0x13 0xfe
  w.field_binary(4, "ab");  // 0x18 len 2
  w.field_binary(5, "");    // 0x18 len 0
  w.field_i64(6, -300);     // 0x16, zigzag 599 = 0xd7 0x04
  w.end_struct();
  EXPECT_EQ(bytes(out),
            (v{0x11, 0x12, 0x13, 0xfe, 0x18, 0x02, 'a', 'b', 0x18, 0x00, 0x16, 0xd7, 0x04, 0x00}));
}

TEST(ThriftCompact, NestedStructsRestoreFieldIds) {
  std::string out;
  compact_writer w(out);
  w.begin_struct();
  w.field_i32(5, 1);         // 0x55 0x02
  w.field_struct_begin(6);   // 0x1c
  w.field_i32(1, 0);         // ids restart inside: 0x15 0x00
  w.field_struct_begin(15);  // delta 14: 0xec
  w.end_struct();            // 0x00
  w.end_struct();            // 0x00
  w.field_i32(7, 0);         // delta from 6 (not from the inner 15): 0x15 0x00
  w.end_struct();
  EXPECT_EQ(bytes(out), (v{0x55, 0x02, 0x1c, 0x15, 0x00, 0xec, 0x00, 0x00, 0x15, 0x00, 0x00}));
}

TEST(ThriftCompact, Lists) {
  std::string out;
  compact_writer w(out);
  w.begin_struct();
  w.field_list_begin(2, ctype::i32, 3);  // 0x29, size 3 type 5: 0x35
  w.elem_i32(0);
  w.elem_i32(3);
  w.elem_i32(-1);
  w.field_list_begin(3, ctype::binary, 2);  // 0x19 0x28
  w.elem_binary("x");
  w.elem_binary("yz");
  w.field_list_begin(4, ctype::structure, 1);  // 0x19 0x1c
  w.begin_struct();
  w.field_i32(1, 1);  // ids restart in each element: 0x15 0x02
  w.end_struct();
  w.field_i32(5, 9);  // delta from 4: 0x15 0x12
  w.end_struct();
  EXPECT_EQ(bytes(out), (v{0x29, 0x35, 0x00, 0x06, 0x01, 0x19, 0x28, 0x01, 'x',  0x02,
                           'y',  'z',  0x19, 0x1c, 0x15, 0x02, 0x00, 0x15, 0x12, 0x00}));
}

TEST(ThriftCompact, LongListHeader) {
  std::string out;
  compact_writer w(out);
  w.begin_struct();
  w.field_list_begin(1, ctype::i64, 15);  // 0x19, 0xf6, varint 15
  for (int i = 0; i < 15; ++i) w.elem_i64(i);
  w.field_list_begin(2, ctype::i32, 14);  // still short: 0x19, 0xe5
  for (int i = 0; i < 14; ++i) w.elem_i32(0);
  w.field_list_begin(3, ctype::i32, 300);  // 0x19, 0xf5, 0xac 0x02
  w.end_struct();
  const auto b = bytes(out);
  ASSERT_GE(b.size(), 3u);
  EXPECT_EQ(b[0], 0x19);
  EXPECT_EQ(b[1], 0xf6);
  EXPECT_EQ(b[2], 15);
  EXPECT_EQ(b[3], 0);    // zigzag(0)
  EXPECT_EQ(b[17], 28);  // zigzag(14)
  EXPECT_EQ(b[18], 0x19);
  EXPECT_EQ(b[19], 0xe5);
  EXPECT_EQ(b[34], 0x19);
  EXPECT_EQ(b[35], 0xf5);
  EXPECT_EQ(b[36], 0xac);
  EXPECT_EQ(b[37], 0x02);
  EXPECT_EQ(b.size(), 39u);
}

}  // namespace
}  // namespace sh::parquet::thrift
