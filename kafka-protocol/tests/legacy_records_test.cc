#include "sh/kafka/legacy_records.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <string_view>

#include "sh/kafka/compression.h"
#include "sh/kafka/wire.h"

namespace sh::kafka {
namespace {

std::vector<uint8_t> from_hex(std::string_view hex) {
  auto nib = [](char c) -> int { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(nib(hex[i]) * 16 + nib(hex[i + 1])));
  }
  return out;
}

std::string as_string(std::span<const uint8_t> s) {
  return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}

struct python_batch {
  const char* name;
  int magic;
  int codec;
  int count;
  const char* hex;
};
const python_batch kPythonBatches[] = {
#include "kafka_python_batches.inc"
};

// One legacy message set entry, written the way old clients do.
void append_message(std::vector<uint8_t>& out, int8_t magic, int8_t attributes, int64_t ts,
                    std::optional<std::string> key, std::optional<std::vector<uint8_t>> value,
                    int64_t offset = 0) {
  byte_writer body;
  body.write_int8(magic);
  body.write_int8(attributes);
  if (magic == 1) body.write_int64(ts);
  if (key) {
    body.write_bytes({reinterpret_cast<const uint8_t*>(key->data()), key->size()});
  } else {
    body.write_int32(-1);
  }
  body.write_nullable_bytes(value);
  byte_writer w(std::move(out));
  w.write_int64(offset);
  w.write_int32(static_cast<int32_t>(body.size() + 4));
  w.write_uint32(static_cast<uint32_t>(crc32(0L, body.data(), static_cast<uInt>(body.size()))));
  w.write_raw({body.data(), body.size()});
  out = w.take();
}

std::vector<uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

struct decoded {
  batch_header header;
  std::vector<std::string> keys, values;
  std::vector<int64_t> ts_deltas;
};

decoded decode_v2(const std::vector<uint8_t>& batch) {
  decoded d;
  auto split = split_batches(batch);
  EXPECT_TRUE(split) << split.message();
  if (!split) return d;
  EXPECT_EQ(split->size(), 1u);
  d.header = (*split)[0].header;
  int i = 0;
  auto res = for_each_record((*split)[0], [&](const record_view& r) {
    EXPECT_EQ(r.offset_delta, i++);
    d.keys.push_back(r.key ? as_string(*r.key) : "<null>");
    d.values.push_back(r.value ? as_string(*r.value) : "<null>");
    d.ts_deltas.push_back(r.timestamp_delta);
  });
  EXPECT_TRUE(res) << res.message();
  return d;
}

TEST(legacy_records, kafka_python_message_sets_convert) {
  int checked = 0;
  for (const auto& pb : kPythonBatches) {
    if (pb.magic == 2) continue;
    SCOPED_TRACE(pb.name);
    auto bytes = from_hex(pb.hex);
    EXPECT_EQ(records_magic(bytes), pb.magic);
    auto v2 = convert_legacy_to_v2(bytes);
    ASSERT_TRUE(v2) << v2.message();
    auto d = decode_v2(*v2);
    ASSERT_EQ(d.values.size(), static_cast<size_t>(pb.count));
    EXPECT_EQ(d.header.compression_bits(), pb.codec);  // codec kept by default
    EXPECT_EQ(d.header.records_count, pb.count);
    EXPECT_EQ(d.header.producer_id, -1);
    for (int i = 0; i < pb.count; ++i) {
      EXPECT_EQ(d.keys[i], i % 3 == 2 ? "<null>" : "key-" + std::to_string(i));
      std::string value = "value-" + std::to_string(i) + "-";
      for (int k = 0; k < 4; ++k) value += "abcdefgh";
      EXPECT_EQ(d.values[i], value);
      EXPECT_EQ(d.ts_deltas[i], pb.magic == 1 ? 7 * i : 0);
    }
    EXPECT_EQ(d.header.base_timestamp, pb.magic == 1 ? 1700000000000 : -1);
    EXPECT_EQ(d.header.max_timestamp, pb.magic == 1 ? 1700000000000 + 7 * (pb.count - 1) : -1);
    ++checked;
  }
  EXPECT_EQ(checked, 7);
}

TEST(legacy_records, output_codec_override) {
  std::vector<uint8_t> set;
  append_message(set, 1, 0, 10, "a", bytes_of("x"));
  append_message(set, 1, 0, 5, std::nullopt, std::nullopt);
  legacy_conversion_options o;
  o.output_compression = compression_type::zstd;
  auto v2 = convert_legacy_to_v2(set, o);
  ASSERT_TRUE(v2);
  auto d = decode_v2(*v2);
  EXPECT_EQ(d.header.compression(), compression_type::zstd);
  EXPECT_EQ(d.keys, (std::vector<std::string>{"a", "<null>"}));
  EXPECT_EQ(d.values, (std::vector<std::string>{"x", "<null>"}));
  EXPECT_EQ(d.ts_deltas, (std::vector<int64_t>{0, -5}));
  EXPECT_EQ(d.header.base_timestamp, 10);
  EXPECT_EQ(d.header.max_timestamp, 10);
}

TEST(legacy_records, log_append_time_wrapper_overrides_inner_timestamps) {
  std::vector<uint8_t> inner;
  append_message(inner, 1, 0, 111, "a", bytes_of("x"), 0);
  append_message(inner, 1, 0, 222, "b", bytes_of("y"), 1);
  auto packed = compress(compression_type::gzip, inner);
  ASSERT_TRUE(packed);
  std::vector<uint8_t> set;
  append_message(set, 1, static_cast<int8_t>(1 | 0x8), 999, std::nullopt, *packed, 1);
  auto v2 = convert_legacy_to_v2(set);
  ASSERT_TRUE(v2) << v2.message();
  auto d = decode_v2(*v2);
  EXPECT_EQ(d.header.ts_type(), timestamp_type::log_append_time);
  EXPECT_EQ(d.header.base_timestamp, 999);
  EXPECT_EQ(d.ts_deltas, (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(d.header.compression(), compression_type::gzip);
}

TEST(legacy_records, magic0_lz4_with_kafka_3160_header_checksum) {
  std::vector<uint8_t> inner;
  append_message(inner, 0, 0, -1, "k", bytes_of("v"));
  auto frame = *compress(compression_type::lz4, inner);
  // LZ4F writes 7-byte headers here (no content size); the checksum byte is at index 6.
  ASSERT_EQ(frame[4] & 0x09, 0);
  frame[6] ^= 0x5a;  // what a 0.8/0.9 client's miscomputed checksum looks like to a decoder
  EXPECT_FALSE(decompress(compression_type::lz4, frame, 1000));
  std::vector<uint8_t> set;
  append_message(set, 0, 3, -1, std::nullopt, frame);
  auto v2 = convert_legacy_to_v2(set);
  ASSERT_TRUE(v2) << v2.message();
  auto d = decode_v2(*v2);
  EXPECT_EQ(d.values, (std::vector<std::string>{"v"}));
}

TEST(legacy_records, malformed_sets) {
  std::vector<uint8_t> good;
  append_message(good, 1, 0, 1, "a", bytes_of("x"));
  ASSERT_TRUE(convert_legacy_to_v2(good));

  EXPECT_EQ(convert_legacy_to_v2({}).code(), batch_errc::bad_record);
  for (size_t n = 1; n < good.size(); ++n) {
    auto r = convert_legacy_to_v2(std::span<const uint8_t>(good).first(n));
    ASSERT_FALSE(r) << n;
    EXPECT_EQ(r.code(), batch_errc::truncated) << n;
  }
  auto bad_crc = good;
  bad_crc.back() ^= 1;
  EXPECT_EQ(convert_legacy_to_v2(bad_crc).code(), batch_errc::bad_crc);

  auto bad_size = good;
  bad_size[11] = 3;  // message_size 3
  EXPECT_EQ(convert_legacy_to_v2(bad_size).code(), batch_errc::bad_length);

  std::vector<uint8_t> magic2;
  append_message(magic2, 2, 0, 1, "a", bytes_of("x"));
  EXPECT_EQ(convert_legacy_to_v2(magic2).code(), batch_errc::bad_magic);

  // Key length past the message end, with a valid CRC.
  std::vector<uint8_t> inner_bad;
  {
    byte_writer body;
    body.write_int8(0);
    body.write_int8(0);
    body.write_int32(100);  // key length
    body.write_int32(-1);
    byte_writer w;
    w.write_int64(0);
    w.write_int32(static_cast<int32_t>(body.size() + 4));
    w.write_uint32(static_cast<uint32_t>(crc32(0L, body.data(), static_cast<uInt>(body.size()))));
    w.write_raw({body.data(), body.size()});
    inner_bad = w.take();
  }
  EXPECT_EQ(convert_legacy_to_v2(inner_bad).code(), batch_errc::bad_record);

  // Nested compression.
  std::vector<uint8_t> inner;
  append_message(inner, 1, 0, 1, "a", bytes_of("x"));
  std::vector<uint8_t> mid;
  append_message(mid, 1, 1, 1, std::nullopt, *compress(compression_type::gzip, inner));
  std::vector<uint8_t> outer;
  append_message(outer, 1, 1, 1, std::nullopt, *compress(compression_type::gzip, mid));
  EXPECT_EQ(convert_legacy_to_v2(outer).code(), batch_errc::bad_record);

  // Compression bomb within a wrapper is bounded.
  std::vector<uint8_t> big_inner;
  for (int i = 0; i < 100; ++i)
    append_message(big_inner, 1, 0, 1, "a", std::vector<uint8_t>(10000));
  std::vector<uint8_t> bomb;
  append_message(bomb, 1, 1, 1, std::nullopt, *compress(compression_type::gzip, big_inner));
  legacy_conversion_options o;
  o.max_decompressed = 100000;
  EXPECT_EQ(convert_legacy_to_v2(bomb, o).code(), batch_errc::decompressed_too_large);
  EXPECT_TRUE(convert_legacy_to_v2(bomb));

  // Unknown legacy codec.
  std::vector<uint8_t> codec5;
  append_message(codec5, 1, 5, 1, std::nullopt, bytes_of("zz"));
  EXPECT_EQ(convert_legacy_to_v2(codec5).code(), batch_errc::unsupported_compression);
}

TEST(legacy_records, records_magic) {
  EXPECT_FALSE(records_magic({}));
  auto b = build_batch({}, {});
  EXPECT_EQ(records_magic(b), 2);
}

}  // namespace
}  // namespace sh::kafka

namespace sh::kafka {
namespace {

struct parsed_legacy {
  int64_t offset;
  int8_t magic;
  int8_t attributes;
  int64_t timestamp;
  std::optional<std::string> key, value;
};

std::vector<parsed_legacy> parse_legacy_set(const std::vector<uint8_t>& set) {
  std::vector<parsed_legacy> out;
  byte_reader r(set);
  while (r.remaining() > 0) {
    parsed_legacy m{};
    m.offset = r.read_int64();
    const int32_t size = r.read_int32();
    const auto body = r.read_raw(static_cast<size_t>(size));
    EXPECT_TRUE(r.ok());
    byte_reader b(body);
    const uint32_t crc = b.read_uint32();
    EXPECT_EQ(crc, static_cast<uint32_t>(
                       ::crc32(0L, body.data() + 4, static_cast<uInt>(body.size() - 4))));
    m.magic = b.read_int8();
    m.attributes = b.read_int8();
    m.timestamp = m.magic == 1 ? b.read_int64() : -1;
    auto k = b.read_nullable_bytes();
    auto v = b.read_nullable_bytes();
    if (k) m.key = std::string(k->begin(), k->end());
    if (v) m.value = std::string(v->begin(), v->end());
    EXPECT_TRUE(b.ok());
    EXPECT_EQ(b.remaining(), 0u);
    out.push_back(m);
  }
  return out;
}

TEST(legacy_down_conversion, magic_2_batches_become_legacy_sets_for_old_consumers) {
  batch_build_options opts;
  opts.base_offset = 10;
  opts.base_timestamp = 1000;
  std::vector<record_spec> recs(3);
  recs[0].key = "k0";
  recs[0].value = "v0";
  recs[1].value = "v1";  // null key
  recs[1].timestamp_delta = 5;
  recs[1].headers.push_back({"h", std::string("dropped")});
  recs[2].key = "k2";  // tombstone
  recs[2].timestamp_delta = 7;
  recs[2].offset_delta = 4;  // a gap: offsets 10, 11, 14
  auto plain = build_batch(opts, recs);
  opts.base_offset = 15;
  opts.attributes = static_cast<int16_t>(compression_type::zstd);
  auto zstd = build_batch(opts, {recs[0]});
  std::vector<uint8_t> both = plain;
  both.insert(both.end(), zstd.begin(), zstd.end());

  auto v1 = convert_v2_to_legacy(both, 1);
  ASSERT_TRUE(v1) << v1.message();
  auto msgs = parse_legacy_set(*v1);
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[0].offset, 10);
  EXPECT_EQ(msgs[0].key, "k0");
  EXPECT_EQ(msgs[0].value, "v0");
  EXPECT_EQ(msgs[0].timestamp, 1000);
  EXPECT_EQ(msgs[1].offset, 11);
  EXPECT_FALSE(msgs[1].key.has_value());
  EXPECT_EQ(msgs[1].timestamp, 1005);
  EXPECT_EQ(msgs[2].offset, 14);
  EXPECT_FALSE(msgs[2].value.has_value());
  EXPECT_EQ(msgs[3].offset, 15);  // decompressed from the zstd batch
  EXPECT_EQ(msgs[3].value, "v0");
  for (const auto& m : msgs) EXPECT_EQ(m.magic, 1);

  auto v0 = convert_v2_to_legacy(both, 0, /*from_offset=*/12);
  ASSERT_TRUE(v0) << v0.message();
  auto old = parse_legacy_set(*v0);
  ASSERT_EQ(old.size(), 2u);  // offsets below 12 left out
  EXPECT_EQ(old[0].offset, 14);
  EXPECT_EQ(old[0].magic, 0);
  EXPECT_EQ(old[0].timestamp, -1);

  EXPECT_FALSE(convert_v2_to_legacy(both, 2));
  std::vector<uint8_t> corrupt = plain;
  corrupt.back() ^= 0xff;
  EXPECT_FALSE(convert_v2_to_legacy(corrupt, 1));
}

}  // namespace
}  // namespace sh::kafka
