#include "sh/storage/segment.h"

#include <gtest/gtest.h>

#include <random>

#include "sh/storage/crc32c.h"
#include "streamhouse_storage.pb.h"
#include "test_util.h"

namespace sh::storage {
namespace {

void put_be(bytes& b, size_t at, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) {
    b[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}
int64_t get_be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return static_cast<int64_t>(v);
}
int32_t get_be32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = v << 8 | p[i];
  return static_cast<int32_t>(v);
}

// A batch with a well-formed magic-2 header and random record bytes (storage does not look at
// the records or the batch CRC). baseOffset is set to garbage, as in ingest objects.
bytes make_batch(std::mt19937& rng, int32_t last_delta, int64_t first_ts, int64_t max_ts,
                 int32_t records, size_t payload) {
  bytes b(batch_header_size + payload);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  put_be(b, 0, 0xdeadbeef, 8);
  put_be(b, 8, b.size() - 12, 4);
  b[16] = 2;
  put_be(b, 23, static_cast<uint32_t>(last_delta), 4);
  put_be(b, 27, static_cast<uint64_t>(first_ts), 8);
  put_be(b, 35, static_cast<uint64_t>(max_ts), 8);
  put_be(b, 57, static_cast<uint32_t>(records), 4);
  return b;
}

struct added {
  int64_t base;
  int64_t last;
  int64_t max_ts;
  uint64_t position;
  size_t size;
};

// Walks batches from `position` until `end` by their batchLength.
std::vector<added> scan(const bytes& data, uint64_t position, uint64_t end) {
  std::vector<added> out;
  while (position < end) {
    const uint8_t* p = data.data() + position;
    const size_t size = static_cast<size_t>(get_be32(p + 8)) + 12;
    out.push_back({get_be64(p), get_be64(p) + get_be32(p + 23), get_be64(p + 35), position, size});
    position += size;
  }
  return out;
}

class segment_test : public ::testing::Test {
 protected:
  // 300 batches with offset gaps and jumping (non-monotonic) timestamps, a 1 KiB index interval.
  void SetUp() override {
    std::mt19937 rng(11);
    segment_builder b("compactor-1", "orders", 4, 1024);
    int64_t offset = 1000;
    for (int i = 0; i < 300; ++i) {
      const int32_t delta = static_cast<int32_t>(rng() % 5);
      const int64_t ts = 1'700'000'000'000 + i * 10 + static_cast<int64_t>(rng() % 50) - 25;
      bytes batch = make_batch(rng, delta, ts - 3, ts, delta + 1, 50 + rng() % 400);
      auto r = b.add(batch, offset);
      ASSERT_TRUE(r) << r.message();
      _batches.push_back({offset, offset + delta, ts, 0, batch.size()});
      _records += delta + 1;
      offset += delta + 1 + (i % 7 == 0 ? 5 : 0);  // gaps
    }
    EXPECT_EQ(b.next_offset(), _batches.back().last + 1);
    _seg = b.finish(42);
    EXPECT_TRUE(b.empty());
  }
  std::vector<added> _batches;
  int64_t _records = 0;
  segment_builder::finished _seg;
};

TEST_F(segment_test, round_trip) {
  const auto& info = _seg.info;
  EXPECT_EQ(info.topic, "orders");
  EXPECT_EQ(info.partition, 4);
  EXPECT_EQ(info.base_offset, 1000);
  EXPECT_EQ(info.last_offset, _batches.back().last);
  EXPECT_EQ(info.batch_count, 300u);
  EXPECT_EQ(info.record_count, _records);
  EXPECT_GT(info.index.size(), 20u);
  EXPECT_LT(info.index.size(), 300u);

  auto parsed = parse_segment_footer(_seg.data, _seg.data.size());
  ASSERT_TRUE(parsed) << parsed.message();
  EXPECT_EQ(parsed->created_at_ms, 42);
  EXPECT_EQ(parsed->writer_id, "compactor-1");
  EXPECT_EQ(parsed->data_length, info.data_length);
  EXPECT_EQ(parsed->data_crc32c, info.data_crc32c);
  EXPECT_EQ(parsed->min_timestamp, info.min_timestamp);
  EXPECT_EQ(parsed->max_timestamp, info.max_timestamp);
  EXPECT_EQ(parsed->index_interval, 1024u);
  ASSERT_EQ(parsed->index.size(), info.index.size());
  for (size_t i = 0; i < info.index.size(); ++i) {
    EXPECT_EQ(parsed->index[i].offset, info.index[i].offset);
    EXPECT_EQ(parsed->index[i].position, info.index[i].position);
    EXPECT_EQ(parsed->index[i].max_timestamp, info.index[i].max_timestamp);
  }

  // Batches are back to back, verbatim except for the patched base offsets.
  auto all = scan(_seg.data, 0, info.data_length);
  ASSERT_EQ(all.size(), _batches.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].base, _batches[i].base);
    EXPECT_EQ(all[i].last, _batches[i].last);
  }
  EXPECT_TRUE(verify_segment_data(std::span(_seg.data).first(info.data_length), info));
}

TEST_F(segment_test, offset_lookup) {
  const auto& info = _seg.info;
  for (const auto& b : _batches) {
    for (int64_t o = b.base; o <= b.last; ++o) {
      const uint64_t start = info.position_for_offset(o);
      auto window = scan(_seg.data, start, info.scan_end(start));
      auto hit = std::find_if(window.begin(), window.end(),
                              [&](const added& a) { return a.base <= o && o <= a.last; });
      ASSERT_NE(hit, window.end()) << "offset " << o;
      EXPECT_EQ(hit->base, b.base);
    }
  }
  EXPECT_EQ(info.position_for_offset(0), 0u);  // before the segment
  // In a gap: the scan window holds the next batch after the gap.
  const int64_t gap = _batches[0].last + 1;
  ASSERT_NE(_batches[1].base, gap);
  const uint64_t start = info.position_for_offset(gap);
  auto window = scan(_seg.data, start, info.scan_end(start));
  EXPECT_TRUE(std::any_of(window.begin(), window.end(),
                          [&](const added& a) { return a.base == _batches[1].base; }));
}

TEST_F(segment_test, timestamp_lookup) {
  const auto& info = _seg.info;
  for (int64_t ts = info.min_timestamp - 5; ts <= info.max_timestamp + 5; ts += 3) {
    // Kafka: the first batch whose maxTimestamp >= ts.
    auto expect = std::find_if(_batches.begin(), _batches.end(),
                               [&](const added& a) { return a.max_ts >= ts; });
    const uint64_t start = info.position_for_timestamp(ts);
    auto found = scan(_seg.data, start, info.data_length);
    auto hit =
        std::find_if(found.begin(), found.end(), [&](const added& a) { return a.max_ts >= ts; });
    if (expect == _batches.end()) {
      EXPECT_EQ(hit, found.end());
      continue;
    }
    ASSERT_NE(hit, found.end()) << ts;
    EXPECT_EQ(hit->base, expect->base) << ts;
    // ...and it lies within the first scan window or the next one: the index keeps scans short.
    EXPECT_LT(hit->position, info.scan_end(info.scan_end(start)) + 1) << ts;
  }
}

TEST(segment_builder, rejects_bad_input_and_stays_unchanged) {
  std::mt19937 rng(1);
  segment_builder b("w", "t", 0);
  ASSERT_TRUE(b.add(make_batch(rng, 4, 1, 2, 5, 10), 100));  // offsets 100..104
  const size_t size = b.size_bytes();
  auto expect_bad = [&](sresult<void> r, const char* part) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.code(), errc::invalid_argument);
    EXPECT_NE(r.message().find(part), std::string::npos) << r.message();
    EXPECT_EQ(b.size_bytes(), size);
  };
  expect_bad(b.add(make_batch(rng, 0, 1, 2, 1, 10), 104), "not after");
  expect_bad(b.add(make_batch(rng, 0, 1, 2, 1, 10), 50), "not after");
  bytes short_batch(20, 0);
  expect_bad(b.add(short_batch, 200), "shorter");
  bytes wrong_len = make_batch(rng, 0, 1, 2, 1, 10);
  wrong_len.push_back(0);
  expect_bad(b.add(wrong_len, 200), "batchLength");
  bytes wrong_magic = make_batch(rng, 0, 1, 2, 1, 10);
  wrong_magic[16] = 1;
  expect_bad(b.add(wrong_magic, 200), "magic");
  expect_bad(b.add(make_batch(rng, -1, 1, 2, 1, 10), 200), "negative");
  EXPECT_TRUE(b.add(make_batch(rng, 0, 1, 2, 1, 10), 105));
  EXPECT_EQ(b.next_offset(), 106);
}

TEST(segment_builder, empty_segment_is_valid) {
  segment_builder b("w", "t", 0);
  auto f = b.finish(1);
  auto info = parse_segment_footer(f.data, f.data.size());
  ASSERT_TRUE(info) << info.message();
  EXPECT_EQ(info->batch_count, 0u);
  EXPECT_EQ(info->position_for_offset(5), 0u);
  EXPECT_EQ(info->scan_end(0), 0u);
}

TEST_F(segment_test, damage_is_detected) {
  const auto& info = _seg.info;
  bytes d = _seg.data;
  d[info.data_length / 2] ^= 1;
  auto r = verify_segment_data(std::span(d).first(info.data_length), info);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::corrupt);
  EXPECT_NE(r.message().find("data checksum mismatch"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("orders/4"), std::string::npos) << r.message();

  d = _seg.data;
  d[info.data_length + 3] ^= 1;  // inside the footer
  auto f = parse_segment_footer(d, d.size());
  ASSERT_FALSE(f);
  EXPECT_NE(f.message().find("footer checksum mismatch"), std::string::npos) << f.message();

  auto t =
      parse_segment_footer(std::span(_seg.data).first(_seg.data.size() - 5), _seg.data.size() - 5);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.code(), errc::corrupt);
  EXPECT_NE(t.message().find("bad magic"), std::string::npos) << t.message();

  // An ingest object is not a segment (different magic).
  bytes ingest_like = _seg.data;
  std::copy_n("SHINGST1", 8, ingest_like.end() - 8);
  EXPECT_EQ(parse_segment_footer(ingest_like, ingest_like.size()).code(), errc::corrupt);

  // Random damage to the tail never crashes and never yields an index pointing outside.
  std::mt19937 rng(9);
  for (int i = 0; i < 2000; ++i) {
    bytes x = _seg.data;
    for (int k = 0; k < 3; ++k) x[x.size() - 1 - rng() % 400] = static_cast<uint8_t>(rng());
    auto p = parse_segment_footer(x, x.size());
    if (p) {
      for (auto& e : p->index) ASSERT_LT(e.position, p->data_length);
    }
  }
}

TEST(segment_footer, forged_footers_are_rejected) {
  auto forge = [](size_t data_size, const streamhouse::storage::v1::SegmentFooter& pb) {
    bytes d(data_size, 0);
    std::string enc = pb.SerializeAsString();
    d.insert(d.end(), enc.begin(), enc.end());
    uint32_t len = static_cast<uint32_t>(enc.size());
    uint32_t crc = crc32c({reinterpret_cast<const uint8_t*>(enc.data()), enc.size()});
    for (int i = 0; i < 4; ++i) d.push_back(static_cast<uint8_t>(len >> (8 * i)));
    for (int i = 0; i < 4; ++i) d.push_back(static_cast<uint8_t>(crc >> (8 * i)));
    d.insert(d.end(), segment_magic, segment_magic + 8);
    auto r = parse_segment_footer(d, d.size());
    return r ? std::string("ok") : r.message();
  };
  streamhouse::storage::v1::SegmentFooter good;
  good.set_format_version(1);
  good.set_topic("t");
  good.set_base_offset(10);
  good.set_last_offset(20);
  good.set_batch_count(2);
  good.set_data_length(100);
  auto* e0 = good.add_index();
  e0->set_offset(10);
  e0->set_position(0);
  auto* e1 = good.add_index();
  e1->set_offset(15);
  e1->set_position(60);
  EXPECT_EQ(forge(100, good), "ok");
  EXPECT_NE(forge(99, good).find("data_length"), std::string::npos);
  auto f = good;
  f.mutable_index(1)->set_position(100);
  EXPECT_NE(forge(100, f).find("past the data"), std::string::npos);
  f = good;
  f.mutable_index(1)->set_offset(25);
  EXPECT_NE(forge(100, f).find("outside the segment"), std::string::npos);
  f = good;
  f.mutable_index(1)->set_offset(10);
  EXPECT_NE(forge(100, f).find("out of order"), std::string::npos);
  f = good;
  f.mutable_index(0)->set_position(5);
  EXPECT_NE(forge(100, f).find("does not start"), std::string::npos);
  f = good;
  f.set_last_offset(5);
  EXPECT_NE(forge(100, f).find("has offsets"), std::string::npos);
  f = good;
  f.set_format_version(9);
  EXPECT_NE(forge(100, f).find("newer"), std::string::npos);
}

TEST(segment_keys, format_and_parse) {
  EXPECT_EQ(segment_object_key("", "orders", 3, 42), "topics/orders/3/00000000000000000042.seg");
  EXPECT_EQ(segment_object_key("pre/", "a.b-c_d", 0, 0),
            "pre/topics/a.b-c_d/0/00000000000000000000.seg");
  EXPECT_LT(segment_object_key("p", "t", 0, 999), segment_object_key("p", "t", 0, 1000));
  auto parts = parse_segment_key("topics/orders/3/00000000000000000042.seg");
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->topic, "orders");
  EXPECT_EQ(parts->partition, 3);
  EXPECT_EQ(parts->base_offset, 42);
  for (const char* bad :
       {"topics/orders/3/42.seg", "topics/orders/x/00000000000000000042.seg",
        "topics//3/00000000000000000042.seg", "topics/a/b/3/00000000000000000042.seg",
        "topics/orders/3/00000000000000000042.ing", "ingest/w/00000000000000000001.ing",
        "topics/orders/-1/00000000000000000042.seg", "topics/3/00000000000000000042.seg",
        "topics/orders/3/0000000000000000004x.seg", "topics/.seg"}) {
    EXPECT_FALSE(parse_segment_key(bad)) << bad;
  }
}

TEST_F(segment_test, read_footer_through_store) {
  testing::temp_dir dir;
  auto store = open_local_store(dir.path());
  ASSERT_TRUE(store);
  const std::string key = segment_object_key("c", "orders", 4, _seg.info.base_offset);
  ASSERT_TRUE((*store)->put(key, _seg.data));
  auto info = read_segment_footer(**store, key);
  ASSERT_TRUE(info) << info.message();
  EXPECT_EQ(info->last_offset, _seg.info.last_offset);
  // A reader fetches just the window an offset needs.
  const int64_t target = _batches[150].base;
  const uint64_t start = info->position_for_offset(target);
  auto window = (*store)->get_range(key, start, info->scan_end(start) - start);
  ASSERT_TRUE(window);
  EXPECT_LE(window->size(), 1024u + 512u);
}

}  // namespace
}  // namespace sh::storage
