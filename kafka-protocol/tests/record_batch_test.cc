#include "sh/kafka/record_batch.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>

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

// The record formula of make_kafka_python_batches.py.
void expect_formula_record(const record_view& r, int i, bool with_headers) {
  SCOPED_TRACE("record " + std::to_string(i));
  EXPECT_EQ(r.offset_delta, i);
  EXPECT_EQ(r.timestamp_delta, 7 * i);
  if (i % 3 == 2) {
    EXPECT_FALSE(r.key.has_value());
  } else {
    ASSERT_TRUE(r.key.has_value());
    EXPECT_EQ(as_string(*r.key), "key-" + std::to_string(i));
  }
  ASSERT_TRUE(r.value.has_value());
  std::string value = "value-" + std::to_string(i) + "-";
  for (int k = 0; k < 4; ++k) value += "abcdefgh";
  EXPECT_EQ(as_string(*r.value), value);
  if (with_headers && i % 2 == 0) {
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0].key, "hdr");
    ASSERT_TRUE(r.headers[0].value.has_value());
    EXPECT_EQ(as_string(*r.headers[0].value), "hv" + std::to_string(i));
  } else {
    EXPECT_TRUE(r.headers.empty());
  }
}

TEST(crc32c, standard_check_value) {
  const std::string s = "123456789";
  auto p = reinterpret_cast<const uint8_t*>(s.data());
  EXPECT_EQ(crc32c(0, p, s.size()), 0xE3069283u);
  EXPECT_EQ(crc32c_portable(0, p, s.size()), 0xE3069283u);
  if (crc32c_hardware_available()) {
    EXPECT_EQ(crc32c_hardware(0, p, s.size()), 0xE3069283u);
  }
  EXPECT_EQ(crc32c(0, p, 0), 0u);
}

TEST(crc32c, hardware_and_portable_agree_on_random_data) {
  std::mt19937 rng(7);
  std::vector<uint8_t> data(5000);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  for (size_t offset = 0; offset < 9; ++offset) {
    for (size_t len : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 65u, 1000u, 4000u}) {
      const uint8_t* p = data.data() + offset;
      uint32_t sw = crc32c_portable(0, p, len);
      if (crc32c_hardware_available()) {
        ASSERT_EQ(crc32c_hardware(0, p, len), sw) << len;
      }
      ASSERT_EQ(crc32c(0, p, len), sw);
      // Chaining over a split gives the same result.
      size_t half = len / 3;
      ASSERT_EQ(crc32c(crc32c(0, p, half), p + half, len - half), sw);
      ASSERT_EQ(crc32c_portable(crc32c_portable(0, p, half), p + half, len - half), sw);
    }
  }
}

std::vector<record_spec> sample_records() {
  std::vector<record_spec> recs;
  recs.push_back({"k0", "v0", {{"h", "x"}, {"n", std::nullopt}}, 0, std::nullopt, 0});
  recs.push_back({std::nullopt, "v1", {}, 5, std::nullopt, 0});
  recs.push_back({"k2", std::nullopt, {}, 3, std::nullopt, 0});
  recs.push_back({std::string("\0\x01", 2), std::string(300, 'z'), {}, 9, std::nullopt, 0});
  return recs;
}

TEST(record_batch, build_split_iterate_round_trip) {
  batch_build_options o;
  o.base_offset = 100;
  o.base_timestamp = 1000;
  o.producer_id = 77;
  o.producer_epoch = 2;
  o.base_sequence = 5;
  o.attributes = 0x10;  // transactional
  auto batch = build_batch(o, sample_records());
  auto blob = batch;
  blob.insert(blob.end(), batch.begin(), batch.end());  // two batches back to back
  auto split = split_batches(blob);
  ASSERT_TRUE(split) << split.message();
  ASSERT_EQ(split->size(), 2u);
  const auto& h = (*split)[0].header;
  EXPECT_EQ(h.base_offset, 100);
  EXPECT_EQ(h.batch_length, static_cast<int32_t>(batch.size() - 12));
  EXPECT_EQ(h.magic, 2);
  EXPECT_EQ(h.records_count, 4);
  EXPECT_EQ(h.last_offset_delta, 3);
  EXPECT_EQ(h.last_offset(), 103);
  EXPECT_EQ(h.max_timestamp, 1009);
  EXPECT_EQ(h.producer_id, 77);
  EXPECT_EQ(h.producer_epoch, 2);
  EXPECT_EQ(h.base_sequence, 5);
  EXPECT_TRUE(h.is_transactional());
  EXPECT_FALSE(h.is_control());
  EXPECT_EQ(h.compression(), compression_type::none);
  EXPECT_EQ(h.ts_type(), timestamp_type::create_time);
  EXPECT_EQ((*split)[0].bytes.size(), batch.size());
  EXPECT_EQ((*split)[1].bytes.data(), blob.data() + batch.size());

  std::vector<std::string> values;
  int n = 0;
  auto res = for_each_record((*split)[0], [&](const record_view& r) {
    EXPECT_EQ(r.offset_delta, n);
    values.push_back(r.value ? as_string(*r.value) : "<null>");
    if (n == 0) {
      EXPECT_EQ(as_string(*r.key), "k0");
      ASSERT_EQ(r.headers.size(), 2u);
      EXPECT_EQ(r.headers[0].key, "h");
      EXPECT_EQ(as_string(*r.headers[0].value), "x");
      EXPECT_FALSE(r.headers[1].value.has_value());
    }
    if (n == 1) {
      EXPECT_FALSE(r.key.has_value());
    }
    if (n == 3) {
      EXPECT_EQ(as_string(*r.key), std::string("\0\x01", 2));
    }
    ++n;
  });
  ASSERT_TRUE(res) << res.message();
  EXPECT_EQ(n, 4);
  EXPECT_EQ(values, (std::vector<std::string>{"v0", "v1", "<null>", std::string(300, 'z')}));

  // Stopping early is not an error.
  int seen = 0;
  auto stop = for_each_record((*split)[1], [&](const record_view&) { return ++seen < 2; });
  EXPECT_TRUE(stop);
  EXPECT_EQ(seen, 2);
}

TEST(record_batch, empty_blob_has_no_batches) {
  auto split = split_batches({});
  ASSERT_TRUE(split);
  EXPECT_TRUE(split->empty());
}

TEST(record_batch, base_offset_and_epoch_patches_keep_crc_valid) {
  auto batch = build_batch({}, sample_records());
  set_base_offset(batch, 123456789012345);
  set_partition_leader_epoch(batch, 9);
  auto split = split_batches(batch);
  ASSERT_TRUE(split);
  EXPECT_EQ((*split)[0].header.base_offset, 123456789012345);
  EXPECT_EQ((*split)[0].header.partition_leader_epoch, 9);
}

TEST(record_batch, header_write_parse_round_trip) {
  batch_header h;
  h.base_offset = -5;
  h.batch_length = 49;
  h.partition_leader_epoch = 3;
  h.crc = 0xdeadbeef;
  h.attributes = 0x2b;
  h.last_offset_delta = 7;
  h.base_timestamp = 1;
  h.max_timestamp = 2;
  h.producer_id = 3;
  h.producer_epoch = 4;
  h.base_sequence = 5;
  h.records_count = 6;
  std::vector<uint8_t> buf(batch_header_size);
  write_batch_header(h, buf);
  auto p = parse_batch_header(buf);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, h);
  EXPECT_EQ(p->compression(), compression_type::lz4);
  EXPECT_EQ(p->ts_type(), timestamp_type::log_append_time);
  EXPECT_TRUE(p->is_control());
  EXPECT_FALSE(p->is_transactional());
  EXPECT_FALSE(parse_batch_header(std::span<const uint8_t>(buf).first(60)));
}

TEST(record_batch, kafka_python_batches) {
  int checked = 0;
  for (const auto& pb : kPythonBatches) {
    SCOPED_TRACE(pb.name);
    auto bytes = from_hex(pb.hex);
    auto split = split_batches(bytes);
    if (pb.magic != 2) {
      ASSERT_FALSE(split);
      EXPECT_EQ(split.code(), batch_errc::bad_magic);
      continue;
    }
    ASSERT_TRUE(split) << split.message();
    ASSERT_EQ(split->size(), 1u);
    const auto& b = (*split)[0];
    EXPECT_EQ(b.header.records_count, pb.count);
    EXPECT_EQ(b.header.last_offset_delta, pb.count - 1);
    EXPECT_EQ(b.header.base_timestamp, 1700000000000);
    EXPECT_EQ(b.header.max_timestamp, 1700000000000 + 7 * (pb.count - 1));
    EXPECT_EQ(b.header.compression_bits(), pb.codec);
    if (std::string_view(pb.name) == "v2_none_transactional") {
      EXPECT_TRUE(b.header.is_transactional());
      EXPECT_EQ(b.header.producer_id, 1234);
      EXPECT_EQ(b.header.producer_epoch, 3);
      EXPECT_EQ(b.header.base_sequence, 10);
    }
    int i = 0;
    auto res =
        for_each_record(b, [&](const record_view& r) { expect_formula_record(r, i++, true); });
    ASSERT_TRUE(res) << res.message();
    EXPECT_EQ(i, pb.count);
    ++checked;
  }
  EXPECT_EQ(checked, 6);  // none, gzip, snappy, lz4, zstd, transactional
}

TEST(record_batch, every_truncation_is_an_error) {
  auto batch = build_batch({}, sample_records());
  for (size_t n = 1; n < batch.size(); ++n) {
    auto split = split_batches(std::span<const uint8_t>(batch).first(n));
    ASSERT_FALSE(split) << n;
    EXPECT_EQ(split.code(), batch_errc::truncated) << n;
  }
}

TEST(record_batch, corrupted_bytes_are_detected) {
  auto batch = build_batch({}, sample_records());
  for (size_t i = 0; i < batch.size(); ++i) {
    auto copy = batch;
    copy[i] ^= 0x40;
    auto split = split_batches(copy);
    if (i < 8 || (i >= 12 && i < 16)) {
      EXPECT_TRUE(split) << i;  // base offset and leader epoch are outside the CRC
    } else if (i < 12) {
      ASSERT_FALSE(split);
      EXPECT_TRUE(split.code() == batch_errc::truncated || split.code() == batch_errc::bad_length ||
                  split.code() == batch_errc::bad_crc)
          << i;
    } else if (i == 16) {
      ASSERT_FALSE(split);
      EXPECT_EQ(split.code(), batch_errc::bad_magic);
    } else {
      ASSERT_FALSE(split);
      EXPECT_EQ(split.code(), batch_errc::bad_crc) << i;
    }
  }
}

TEST(record_batch, bad_length_below_header) {
  auto batch = build_batch({}, {});
  ASSERT_EQ(batch.size(), batch_header_size);
  auto split = split_batches(batch);
  ASSERT_TRUE(split);  // a batch with zero records is well-formed
  batch[11] = 48;      // batch_length 48 < 49
  split = split_batches(batch);
  ASSERT_FALSE(split);
  EXPECT_EQ(split.code(), batch_errc::bad_length);
  batch[8] = 0x80;  // negative
  split = split_batches(batch);
  ASSERT_FALSE(split);
  EXPECT_EQ(split.code(), batch_errc::bad_length);
}

// Re-frames the records section with a different count and a fresh CRC.
std::vector<uint8_t> with_count(std::vector<uint8_t> batch, int32_t count) {
  auto h = *parse_batch_header(batch);
  h.records_count = count;
  write_batch_header(h, batch);
  update_batch_crc(batch);
  return batch;
}

result<void, batch_errc> iterate_all(const std::vector<uint8_t>& bytes) {
  auto split = split_batches(bytes);
  if (!split) return make_error(split.code(), split.message());
  for (const auto& b : *split) {
    auto r = for_each_record(b, [](const record_view&) {});
    if (!r) return r;
  }
  return {};
}

TEST(record_batch, record_count_must_match_records) {
  auto batch = build_batch({}, sample_records());
  EXPECT_TRUE(iterate_all(batch));
  EXPECT_EQ(iterate_all(with_count(batch, 5)).code(), batch_errc::bad_record);
  EXPECT_EQ(iterate_all(with_count(batch, 3)).code(), batch_errc::bad_record);
  EXPECT_EQ(iterate_all(with_count(batch, -1)).code(), batch_errc::bad_record);
}

TEST(record_batch, malformed_record_fields) {
  // One record: length, attributes, ts delta, offset delta, key len, ...
  auto make = [](std::vector<uint8_t> record_body) {
    auto batch = build_batch({}, {});
    std::vector<uint8_t> rec;
    rec.push_back(static_cast<uint8_t>(record_body.size() * 2));  // zigzag, < 64 bytes
    rec.insert(rec.end(), record_body.begin(), record_body.end());
    batch.insert(batch.end(), rec.begin(), rec.end());
    auto h = *parse_batch_header(batch);
    h.batch_length = static_cast<int32_t>(batch.size() - 12);
    h.records_count = 1;
    write_batch_header(h, batch);
    update_batch_crc(batch);
    return batch;
  };
  // attributes 0, ts 0, offset 0, key null (-1 = 0x01), value len 1 'a', 0 headers: valid.
  EXPECT_TRUE(iterate_all(make({0, 0, 0, 0x01, 0x02, 'a', 0})));
  // key length -2 (zigzag 0x03)
  EXPECT_EQ(iterate_all(make({0, 0, 0, 0x03, 0x02, 'a', 0})).code(), batch_errc::bad_record);
  // value length past the record
  EXPECT_EQ(iterate_all(make({0, 0, 0, 0x01, 0x10, 'a', 0})).code(), batch_errc::bad_record);
  // negative header count
  EXPECT_EQ(iterate_all(make({0, 0, 0, 0x01, 0x02, 'a', 0x01})).code(), batch_errc::bad_record);
  // huge header count
  EXPECT_EQ(iterate_all(make({0, 0, 0, 0x01, 0x02, 'a', 0xfe, 0xff, 0xff, 0xff, 0x0f})).code(),
            batch_errc::bad_record);
  // negative header key length
  EXPECT_EQ(iterate_all(make({0, 0, 0, 0x01, 0x02, 'a', 0x02, 0x03, 0x01})).code(),
            batch_errc::bad_record);
  // trailing byte inside the record
  EXPECT_EQ(iterate_all(make({0, 0, 0, 0x01, 0x02, 'a', 0, 0})).code(), batch_errc::bad_record);
  // bad varint in timestamp delta
  EXPECT_EQ(iterate_all(make({0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}))
                .code(),
            batch_errc::bad_record);
}

TEST(record_batch, random_mutations_never_crash) {
  auto base = build_batch({}, sample_records());
  std::mt19937 rng(99);
  int ok = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    auto b = base;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t at = batch_header_size + rng() % (b.size() - batch_header_size);
      b[at] = static_cast<uint8_t>(rng());
    }
    update_batch_crc(b);  // get past the CRC to exercise the record parser
    if (iterate_all(b)) ++ok;
  }
  EXPECT_GT(ok, 0);  // some mutations hit payload bytes only
}

TEST(record_batch, compressed_batches_build_and_iterate) {
  for (int codec = 1; codec <= 4; ++codec) {
    SCOPED_TRACE(codec);
    batch_build_options o;
    o.attributes = static_cast<int16_t>(codec | 0x10);
    std::vector<record_spec> recs = sample_records();
    for (int i = 0; i < 50; ++i) {
      recs.push_back(
          {"k", std::string(1000, static_cast<char>('a' + i % 3)), {}, i, std::nullopt, 0});
    }
    auto batch = build_batch(o, recs);
    auto split = split_batches(batch);
    ASSERT_TRUE(split) << split.message();
    EXPECT_EQ((*split)[0].header.compression_bits(), codec);
    EXPECT_TRUE((*split)[0].header.is_transactional());
    EXPECT_LT(batch.size(), 20000u);  // 50 KB of values compressed
    int n = 0;
    ASSERT_TRUE(for_each_record((*split)[0], [&](const record_view& r) {
      EXPECT_EQ(r.offset_delta, n);
      ++n;
    }));
    EXPECT_EQ(n, static_cast<int>(recs.size()));
    // A bound below the decompressed size is reported, not exceeded.
    auto small = for_each_record((*split)[0], [](const record_view&) {}, 1000);
    EXPECT_EQ(small.code(), batch_errc::decompressed_too_large);
  }
}

TEST(record_batch, unknown_codec_bits_and_corrupt_compressed_data) {
  batch_build_options o;
  o.attributes = 5;
  auto batch = build_batch(o, sample_records());
  EXPECT_EQ(iterate_all(batch).code(), batch_errc::unsupported_compression);
  // Claim zstd over uncompressed records.
  batch = build_batch({}, sample_records());
  auto h = *parse_batch_header(batch);
  h.attributes = 4;
  write_batch_header(h, batch);
  update_batch_crc(batch);
  EXPECT_EQ(iterate_all(batch).code(), batch_errc::corrupt_compressed);
}

TEST(record_batch, errc_names) { EXPECT_STREQ(batch_errc_name(batch_errc::bad_crc), "bad_crc"); }

}  // namespace
}  // namespace sh::kafka
