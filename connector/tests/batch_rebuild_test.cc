#include "batch_rebuild.h"

#include <gtest/gtest.h>

#include <deque>

namespace sh::connector {
namespace {

// source_record holds views: the test's strings live here.
std::optional<std::string_view> keep(std::optional<std::string> s) {
  static std::deque<std::string> arena;
  if (!s) return std::nullopt;
  arena.push_back(std::move(*s));
  return std::string_view(arena.back());
}

source_record rec(int64_t offset, int64_t ts, std::optional<std::string> key,
                  std::optional<std::string> value, bool append_time = false) {
  source_record r;
  r.offset = offset;
  r.timestamp = ts;
  r.log_append_time = append_time;
  r.key = keep(std::move(key));
  r.value = keep(std::move(value));
  r.size = 24 + (r.key ? r.key->size() : 0) + (r.value ? r.value->size() : 0);
  return r;
}

struct read_back {
  int64_t offset;
  int64_t timestamp;
  bool append_time;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
};

std::optional<std::string> str(const std::optional<std::span<const uint8_t>>& s) {
  if (!s) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(s->data()), s->size());
}

// Numbers the batches the way the broker's read path does (batch k+1 starts right after batch
// k's last offset, from the range's base offset) and decodes them like a consumer.
std::vector<read_back> read_like_broker(const std::vector<rebuilt_batch>& batches, int64_t base) {
  std::vector<read_back> out;
  int64_t next = base;
  for (const auto& b : batches) {
    auto views = kafka::split_batches(b.bytes);
    EXPECT_TRUE(views);
    EXPECT_EQ(views->size(), 1u);
    const auto& v = views->front();
    EXPECT_EQ(kafka::compute_batch_crc(b.bytes), v.header.crc);
    EXPECT_EQ(v.header.last_offset_delta + 1, b.offset_count);
    EXPECT_EQ(v.header.max_timestamp, b.max_timestamp);
    const bool append = v.header.ts_type() == kafka::timestamp_type::log_append_time;
    auto r = kafka::for_each_record(v, [&](const kafka::record_view& rv) {
      read_back x;
      x.offset = next + rv.offset_delta;
      x.timestamp = append ? v.header.max_timestamp : v.header.base_timestamp + rv.timestamp_delta;
      x.append_time = append;
      x.key = str(rv.key);
      x.value = str(rv.value);
      for (const auto& h : rv.headers) x.headers.emplace_back(std::string(h.key), str(h.value));
      out.push_back(std::move(x));
    });
    EXPECT_TRUE(r);
    next += v.header.last_offset_delta + 1;
  }
  return out;
}

void expect_same(const std::vector<source_record>& in, const std::vector<read_back>& out) {
  ASSERT_EQ(in.size(), out.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].offset, in[i].offset) << i;
    EXPECT_EQ(out[i].timestamp, in[i].timestamp) << i;
    EXPECT_EQ(out[i].append_time, in[i].log_append_time) << i;
    EXPECT_EQ(out[i].key, in[i].key) << i;
    EXPECT_EQ(out[i].value, in[i].value) << i;
    ASSERT_EQ(out[i].headers.size(), in[i].headers.size()) << i;
    for (size_t h = 0; h < in[i].headers.size(); ++h) {
      EXPECT_EQ(out[i].headers[h].first, in[i].headers[h].key);
      EXPECT_EQ(out[i].headers[h].second, in[i].headers[h].value);
    }
  }
}

std::vector<source_record> sample() {
  std::vector<source_record> v;
  v.push_back(rec(5, 1000, "k", "v"));
  v.push_back(rec(6, 990, std::nullopt, "v2"));             // null key, earlier timestamp
  v.push_back(rec(9, 1010, std::string(), std::string()));  // gap 7-8, empty key and value
  v.push_back(rec(10, 1020, "k", std::nullopt));            // tombstone
  v.push_back(rec(20, 1030, "k2", "x"));                    // gap 11-19
  v.back().headers = {{"a", "1"}, {"dup", "x"}, {"dup", "y"}, {"e", ""}, {"n", std::nullopt}};
  v.push_back(rec(21, 5000, "la", "1", true));  // LogAppendTime
  v.push_back(rec(22, 5000, "la", "2", true));
  v.push_back(rec(30, 6000, "la", "3", true));  // another append time: new batch, gap
  v.push_back(rec(31, 1040, "c", "4"));
  return v;
}

TEST(batch_rebuild, keeps_offsets_gaps_keys_values_headers_timestamps) {
  const auto in = sample();
  for (int codec : {0, 1, 2, 3, 4}) {
    auto batches = rebuild_batches(in, 1 << 20, codec);
    EXPECT_EQ(batches.size(), 4u);  // create | append 5000 | append 6000 | create
    expect_same(in, read_like_broker(batches, in.front().offset));
    int64_t total = 0;
    for (const auto& b : batches) total += b.offset_count;
    EXPECT_EQ(total, in.back().offset - in.front().offset + 1);  // contiguous range
  }
}

TEST(batch_rebuild, small_batch_bound_splits_at_gaps_and_stays_contiguous) {
  const auto in = sample();
  auto batches = rebuild_batches(in, 30, 0);
  EXPECT_EQ(batches.size(), in.size());
  expect_same(in, read_like_broker(batches, in.front().offset));
}

// The direct encoder writes exactly what kafka::build_batch writes for the same records.
TEST(batch_rebuild, uncompressed_bytes_equal_kafka_build_batch) {
  const auto in = sample();
  auto batches = rebuild_batches(in, 1 << 20, 0);
  size_t i = 0;
  int64_t base = in.front().offset;
  for (const auto& b : batches) {
    auto views = kafka::split_batches(b.bytes);
    ASSERT_TRUE(views);
    const auto& h = views->front().header;
    std::vector<kafka::record_spec> specs;
    for (int32_t n = 0; n < h.records_count; ++n, ++i) {
      const source_record& r = in[i];
      kafka::record_spec spec;
      if (r.key) spec.key = std::string(*r.key);
      if (r.value) spec.value = std::string(*r.value);
      for (const auto& hd : r.headers) {
        kafka::record_header_spec x;
        x.key = std::string(hd.key);
        if (hd.value) x.value = std::string(*hd.value);
        spec.headers.push_back(x);
      }
      spec.timestamp_delta = r.log_append_time ? 0 : r.timestamp - h.base_timestamp;
      spec.offset_delta = static_cast<int32_t>(r.offset - base);
      specs.push_back(std::move(spec));
    }
    kafka::batch_build_options o;
    o.base_offset = base;
    o.attributes = h.attributes;
    o.base_timestamp = h.base_timestamp;
    o.max_timestamp = h.max_timestamp;
    o.last_offset_delta = h.last_offset_delta;
    EXPECT_EQ(kafka::build_batch(o, specs), b.bytes);
    base += h.last_offset_delta + 1;
  }
  EXPECT_EQ(i, in.size());
}

TEST(batch_rebuild, empty_input) { EXPECT_TRUE(rebuild_batches({}, 1 << 20, 0).empty()); }

}  // namespace
}  // namespace sh::connector
