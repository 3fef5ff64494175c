#include "sh/storage/ingest_object.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "sh/storage/crc32c.h"
#include "streamhouse_storage.pb.h"
#include "test_util.h"

namespace sh::storage {
namespace {

using testing::temp_dir;

bytes fake_batch(std::mt19937& rng, size_t size) {
  bytes b(size);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

struct added {
  std::string topic;
  int32_t partition;
  bytes data;
  uint32_t index;
};

// Builds an object with interleaved batches of several partitions and returns what went in.
std::vector<added> fill(ingest_object_builder& b, std::mt19937& rng, int batches) {
  const std::pair<std::string, int32_t> parts[] = {{"orders", 1}, {"orders", 0}, {"clicks", 7}};
  std::vector<added> in;
  for (int i = 0; i < batches; ++i) {
    const auto& [topic, partition] = parts[rng() % 3];
    bytes data = fake_batch(rng, 61 + rng() % 700);
    ingest_batch_meta meta{static_cast<int32_t>(1 + i % 5), 1000 + i, 900 + i};
    uint32_t idx = b.add(topic, partition, data, meta);
    in.push_back({topic, partition, std::move(data), idx});
  }
  return in;
}

TEST(ingest_object, round_trip) {
  std::mt19937 rng(1);
  ingest_object_builder b("broker-1");
  EXPECT_TRUE(b.empty());
  auto in = fill(b, rng, 40);
  EXPECT_FALSE(b.empty());
  size_t total = 0;
  for (auto& a : in) total += a.data.size();
  EXPECT_EQ(b.size_bytes(), total);

  auto f = b.finish(1700000000123);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size_bytes(), 0u);

  // Sorted by (topic, partition), back to back from byte 0.
  ASSERT_EQ(f.ranges.size(), 3u);
  EXPECT_EQ(f.ranges[0].topic, "clicks");
  EXPECT_EQ(f.ranges[1].topic, "orders");
  EXPECT_EQ(f.ranges[1].partition, 0);
  EXPECT_EQ(f.ranges[2].partition, 1);
  uint64_t pos = 0;
  for (auto& r : f.ranges) {
    EXPECT_EQ(r.offset, pos);
    pos += r.length;
  }
  EXPECT_EQ(pos, total);

  // Each batch sits where batches[][] says, in the order it was added.
  ASSERT_EQ(f.batches.size(), 3u);
  std::map<std::pair<std::string, int32_t>, uint32_t> next_index;
  for (auto& a : in) {
    EXPECT_EQ(a.index, (next_index[{a.topic, a.partition}]++));
    size_t ri = 0;
    while (f.ranges[ri].topic != a.topic || f.ranges[ri].partition != a.partition) ++ri;
    const auto& loc = f.batches[ri].at(a.index);
    ASSERT_EQ(loc.length, a.data.size());
    EXPECT_TRUE(std::equal(a.data.begin(), a.data.end(), f.data.begin() + loc.offset));
  }
  for (size_t ri = 0; ri < 3; ++ri) {
    EXPECT_EQ(f.ranges[ri].batch_count, f.batches[ri].size());
  }

  // The footer decodes to the same ranges, from the whole object and from its tail alone.
  auto whole = parse_ingest_footer(f.data, f.data.size());
  ASSERT_TRUE(whole) << whole.message();
  EXPECT_EQ(whole->format_version, 1u);
  EXPECT_EQ(whole->created_at_ms, 1700000000123);
  EXPECT_EQ(whole->writer_id, "broker-1");
  auto need = ingest_tail_size(std::span(f.data).last(16), f.data.size());
  ASSERT_TRUE(need) << need.message();
  EXPECT_EQ(*need, f.data.size() - total);
  auto tail = read_ingest_footer(std::span(f.data).last(*need), f.data.size());
  ASSERT_TRUE(tail) << tail.message();
  ASSERT_EQ(tail->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto& x = (*tail)[i];
    const auto& y = f.ranges[i];
    EXPECT_EQ(x.topic, y.topic);
    EXPECT_EQ(x.partition, y.partition);
    EXPECT_EQ(x.offset, y.offset);
    EXPECT_EQ(x.length, y.length);
    EXPECT_EQ(x.batch_count, y.batch_count);
    EXPECT_EQ(x.offset_count, y.offset_count);
    EXPECT_EQ(x.min_timestamp, y.min_timestamp);
    EXPECT_EQ(x.max_timestamp, y.max_timestamp);
    EXPECT_EQ(x.crc32c, y.crc32c);
    EXPECT_TRUE(verify_range(std::span(f.data).subspan(x.offset, x.length), x));
  }
  // Too short a tail is the caller's mistake, not corruption.
  auto short_tail = read_ingest_footer(std::span(f.data).last(*need - 1), f.data.size());
  EXPECT_EQ(short_tail.code(), errc::invalid_argument);
}

TEST(ingest_object, aggregates_meta) {
  ingest_object_builder b("w");
  bytes batch(70, 1);
  b.add("t", 0, batch, {3, 500, 100});
  b.add("t", 0, batch, {1, 400, 50});
  b.add("t", 0, batch, {10, 900, 300});
  auto f = b.finish();
  ASSERT_EQ(f.ranges.size(), 1u);
  EXPECT_EQ(f.ranges[0].batch_count, 3u);
  EXPECT_EQ(f.ranges[0].offset_count, 14);
  EXPECT_EQ(f.ranges[0].min_timestamp, 50);
  EXPECT_EQ(f.ranges[0].max_timestamp, 900);
  EXPECT_EQ(f.ranges[0].length, 210u);
  EXPECT_EQ(f.ranges[0].crc32c, crc32c(std::span(f.data).first(210)));
  auto footer = parse_ingest_footer(f.data, f.data.size());
  ASSERT_TRUE(footer);
  EXPECT_GT(footer->created_at_ms, 1600000000000);  // wall clock
}

TEST(ingest_object, empty_object_is_valid) {
  ingest_object_builder b("w");
  auto f = b.finish(5);
  EXPECT_EQ(f.data.size(), f.data.size());
  auto footer = parse_ingest_footer(f.data, f.data.size());
  ASSERT_TRUE(footer) << footer.message();
  EXPECT_TRUE(footer->ranges.empty());
  EXPECT_EQ(footer->writer_id, "w");
}

TEST(ingest_object, builder_is_reusable) {
  std::mt19937 rng(2);
  ingest_object_builder b("w");
  fill(b, rng, 10);
  auto f1 = b.finish(1);
  b.add("solo", 3, bytes(100, 9), {1, 1, 1});
  auto f2 = b.finish(2);
  ASSERT_EQ(f2.ranges.size(), 1u);
  EXPECT_EQ(f2.ranges[0].topic, "solo");
  EXPECT_EQ(f2.ranges[0].offset, 0u);
  EXPECT_TRUE(parse_ingest_footer(f2.data, f2.data.size()));
}

TEST(ingest_object, flipped_range_byte_is_detected) {
  std::mt19937 rng(3);
  ingest_object_builder b("w");
  fill(b, rng, 20);
  auto f = b.finish(1);
  const auto& r = f.ranges[1];
  f.data[r.offset + r.length / 2] ^= 0x10;
  auto ok0 =
      verify_range(std::span(f.data).subspan(f.ranges[0].offset, f.ranges[0].length), f.ranges[0]);
  EXPECT_TRUE(ok0);
  auto bad = verify_range(std::span(f.data).subspan(r.offset, r.length), r);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.code(), errc::corrupt);
  EXPECT_NE(bad.message().find("checksum mismatch"), std::string::npos) << bad.message();
  EXPECT_NE(bad.message().find(r.topic + "/" + std::to_string(r.partition)), std::string::npos)
      << bad.message();
  // The footer is untouched, so it still parses.
  EXPECT_TRUE(parse_ingest_footer(f.data, f.data.size()));
  // A range read short is named as such.
  auto short_read = verify_range(std::span(f.data).subspan(r.offset, r.length - 1), r);
  EXPECT_EQ(short_read.code(), errc::corrupt);
  EXPECT_NE(short_read.message().find("expected"), std::string::npos) << short_read.message();
}

TEST(ingest_object, footer_damage_is_detected) {
  std::mt19937 rng(4);
  ingest_object_builder b("w");
  fill(b, rng, 20);
  const auto f = b.finish(1);
  const size_t n = f.data.size();
  const uint64_t footer_len = *ingest_tail_size(f.data, n) - ingest_trailer_size;
  struct damage {
    size_t at;
    const char* expect;
  };
  const damage cases[] = {
      {n - 16 - footer_len, "footer checksum mismatch"},      // first footer byte
      {n - 16 - footer_len / 2, "footer checksum mismatch"},  // middle of the footer
      {n - 17, "footer checksum mismatch"},                   // last footer byte
      {n - 12, "footer checksum mismatch"},                   // stored CRC
      {n - 1, "bad magic"},
      {n - 8, "bad magic"},
      {n - 13, "exceeds the object size"},  // high byte of the footer length
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.at);
    bytes d = f.data;
    d[c.at] ^= 0x40;
    auto r = parse_ingest_footer(d, n);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.code(), errc::corrupt);
    EXPECT_NE(r.message().find(c.expect), std::string::npos) << r.message();
  }
  // Low byte of the footer length: the CRC then covers different bytes.
  bytes d = f.data;
  d[n - 16] ^= 0x01;
  auto r = parse_ingest_footer(d, n);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::corrupt) << r.message();
}

TEST(ingest_object, truncated_object_is_detected) {
  std::mt19937 rng(5);
  ingest_object_builder b("w");
  fill(b, rng, 20);
  const auto f = b.finish(1);
  for (size_t cut : {size_t{1}, size_t{7}, size_t{8}, size_t{16}, size_t{100}, f.data.size() / 2,
                     f.data.size() - 16, f.data.size() - 1, f.data.size()}) {
    SCOPED_TRACE(cut);
    std::span<const uint8_t> truncated = std::span(f.data).first(f.data.size() - cut);
    auto r = parse_ingest_footer(truncated, truncated.size());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.code(), errc::corrupt);
    if (truncated.size() < 16) {
      EXPECT_NE(r.message().find("truncated"), std::string::npos) << r.message();
    } else {
      EXPECT_NE(r.message().find("bad magic"), std::string::npos) << r.message();
    }
  }
}

// Footers whose checksum is right but whose content is not: a buggy or hostile writer.
class forged_footer : public ::testing::Test {
 protected:
  // An object of `data_size` data bytes and the given footer, with a correct trailer.
  static bytes forge(size_t data_size, const streamhouse::storage::v1::IngestFooter& footer) {
    return forge_raw(data_size, footer.SerializeAsString());
  }
  static bytes forge_raw(size_t data_size, const std::string& encoded) {
    bytes d(data_size, 0xab);
    d.insert(d.end(), encoded.begin(), encoded.end());
    auto put32 = [&](uint32_t v) {
      for (int i = 0; i < 4; ++i) d.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    put32(static_cast<uint32_t>(encoded.size()));
    put32(crc32c({reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size()}));
    d.insert(d.end(), ingest_magic, ingest_magic + 8);
    return d;
  }
  static streamhouse::storage::v1::IngestFooter footer_with(
      std::initializer_list<std::pair<uint64_t, uint64_t>> ranges) {
    streamhouse::storage::v1::IngestFooter f;
    f.set_format_version(1);
    f.set_writer_id("w");
    for (auto [off, len] : ranges) {
      auto* r = f.add_ranges();
      r->set_topic("t");
      r->set_partition(0);
      r->set_offset(off);
      r->set_length(len);
      r->set_batch_count(1);
      r->set_offset_count(1);
    }
    return f;
  }
  static std::string error_of(const bytes& d) {
    auto r = parse_ingest_footer(d, d.size());
    if (r) return "ok";
    return std::string(to_string(r.code())) + ": " + r.message();
  }
};

TEST_F(forged_footer, accepts_well_formed) {
  EXPECT_EQ(error_of(forge(100, footer_with({{0, 50}, {50, 50}}))), "ok");
}

TEST_F(forged_footer, rejects_bad_ranges) {
  EXPECT_NE(error_of(forge(100, footer_with({{0, 101}}))).find("corrupt: "), std::string::npos);
  EXPECT_NE(error_of(forge(100, footer_with({{0, 101}}))).find("past the data area"),
            std::string::npos);
  EXPECT_NE(error_of(forge(100, footer_with({{UINT64_MAX, 2}}))).find("past the data area"),
            std::string::npos);
  EXPECT_NE(error_of(forge(100, footer_with({{90, UINT64_MAX}}))).find("past the data area"),
            std::string::npos);
  EXPECT_NE(error_of(forge(100, footer_with({{0, 50}, {40, 20}}))).find("overlaps"),
            std::string::npos);
  EXPECT_NE(error_of(forge(100, footer_with({{50, 10}, {0, 10}}))).find("out of order"),
            std::string::npos);
  EXPECT_NE(error_of(forge(100, footer_with({{0, 0}}))).find("no batches"), std::string::npos);
  auto f = footer_with({{0, 10}});
  f.mutable_ranges(0)->set_partition(-1);
  EXPECT_NE(error_of(forge(100, f)).find("negative partition"), std::string::npos);
  f = footer_with({{0, 10}});
  f.mutable_ranges(0)->set_topic("");
  EXPECT_NE(error_of(forge(100, f)).find("empty topic"), std::string::npos);
}

TEST_F(forged_footer, rejects_versions_and_garbage) {
  auto f = footer_with({});
  f.set_format_version(2);
  EXPECT_NE(error_of(forge(0, f)).find("unsupported: "), std::string::npos);
  f.set_format_version(0);
  EXPECT_NE(error_of(forge(0, f)).find("corrupt: "), std::string::npos);
  EXPECT_NE(error_of(forge_raw(10, "\xff\xff\xff")).find("not a valid IngestFooter"),
            std::string::npos);
}

TEST(ingest_object, random_damage_never_crashes) {
  std::mt19937 rng(6);
  ingest_object_builder b("w");
  fill(b, rng, 10);
  const auto f = b.finish(1);
  for (int i = 0; i < 3000; ++i) {
    bytes d = f.data;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Mostly the footer and trailer: that is what the parser reads.
      size_t at = d.size() - 1 - rng() % std::min<size_t>(d.size(), 300);
      d[at] = static_cast<uint8_t>(rng());
    }
    size_t cut = rng() % 4 == 0 ? rng() % d.size() : 0;
    d.resize(d.size() - cut);
    auto r = parse_ingest_footer(d, d.size());
    if (r) {
      for (auto& range : r->ranges) ASSERT_LE(range.offset + range.length, d.size());
    }
  }
}

TEST(ingest_object, read_footer_from_store) {
  temp_dir dir;
  auto store = open_local_store(dir.path());
  ASSERT_TRUE(store) << store.message();
  std::mt19937 rng(8);

  // Small object: one ranged GET of the tail.
  ingest_object_builder b("b7");
  auto in = fill(b, rng, 30);
  auto f = b.finish(9);
  const std::string key = ingest_object_key("cluster-a", "b7", 1);
  ASSERT_TRUE((*store)->put(key, f.data));
  auto footer = read_ingest_footer(**store, key);
  ASSERT_TRUE(footer) << footer.message();
  ASSERT_EQ(footer->ranges.size(), f.ranges.size());
  for (const auto& r : footer->ranges) {
    auto got = (*store)->get_range(key, r.offset, r.length);
    ASSERT_TRUE(got) << got.message();
    EXPECT_TRUE(verify_range(*got, r));
  }

  // A footer larger than the first guess (thousands of partitions): a second GET.
  for (int p = 0; p < 3000; ++p) {
    b.add("a-rather-long-topic-name-for-a-big-footer", p, bytes(10, 1), {1, 2, 3});
  }
  auto big = b.finish(10);
  ASSERT_GT(big.data.size() - 30000, 64u * 1024);
  const std::string big_key = ingest_object_key("cluster-a", "b7", 2);
  ASSERT_TRUE((*store)->put(big_key, big.data));
  auto big_footer = read_ingest_footer(**store, big_key);
  ASSERT_TRUE(big_footer) << big_footer.message();
  EXPECT_EQ(big_footer->ranges.size(), 3000u);

  // Damage carries the key in the message.
  ASSERT_TRUE((*store)->put("junk", bytes(40, 0)));
  auto junk = read_ingest_footer(**store, "junk");
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.code(), errc::corrupt);
  EXPECT_NE(junk.message().find("junk: "), std::string::npos) << junk.message();
  ASSERT_TRUE((*store)->put("tiny", bytes(3, 0)));
  EXPECT_EQ(read_ingest_footer(**store, "tiny").code(), errc::corrupt);
  EXPECT_EQ(read_ingest_footer(**store, "missing").code(), errc::not_found);
}

TEST(ingest_object, keys) {
  EXPECT_EQ(ingest_object_key("", "b1", 42), "ingest/b1/00000000000000000042.ing");
  EXPECT_EQ(ingest_object_key("pre/", "b1", 0), "pre/ingest/b1/00000000000000000000.ing");
  EXPECT_EQ(ingest_object_key("a/b", "n", UINT64_MAX), "a/b/ingest/n/18446744073709551615.ing");
  EXPECT_LT(ingest_object_key("p", "w", 9), ingest_object_key("p", "w", 10));
  EXPECT_TRUE(validate_key(ingest_object_key("p", "w", 9)));
}

}  // namespace
}  // namespace sh::storage

namespace sh::storage {
namespace {

// The object as the format defines it, built independently of the builder: each (topic,
// partition) group's batches back to back in key order, then the protobuf footer, then the
// trailer [u32 LE length][u32 LE CRC32C]["SHINGST1"].
bytes reference_object(const std::vector<added>& in, const std::vector<ingest_batch_meta>& metas,
                       const std::string& writer, int64_t created) {
  std::map<std::pair<std::string, int32_t>, std::vector<size_t>> groups;
  for (size_t i = 0; i < in.size(); ++i) groups[{in[i].topic, in[i].partition}].push_back(i);
  streamhouse::storage::v1::IngestFooter footer;
  footer.set_format_version(ingest_format_version);
  footer.set_created_at_ms(created);
  footer.set_writer_id(writer);
  bytes out;
  for (const auto& [id, idx] : groups) {
    const uint64_t start = out.size();
    int64_t count = 0, min_ts = 0, max_ts = 0;
    for (size_t k = 0; k < idx.size(); ++k) {
      const auto& m = metas[idx[k]];
      out.insert(out.end(), in[idx[k]].data.begin(), in[idx[k]].data.end());
      count += m.offset_count;
      min_ts = k == 0 ? m.first_timestamp : std::min(min_ts, m.first_timestamp);
      max_ts = k == 0 ? m.max_timestamp : std::max(max_ts, m.max_timestamp);
    }
    auto* r = footer.add_ranges();
    r->set_topic(id.first);
    r->set_partition(id.second);
    r->set_offset(start);
    r->set_length(out.size() - start);
    r->set_batch_count(static_cast<uint32_t>(idx.size()));
    r->set_offset_count(count);
    r->set_min_timestamp(min_ts);
    r->set_max_timestamp(max_ts);
    r->set_crc32c(crc32c(std::span(out).subspan(start)));
  }
  const std::string enc = footer.SerializeAsString();
  out.insert(out.end(), enc.begin(), enc.end());
  auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put32(static_cast<uint32_t>(enc.size()));
  put32(crc32c({reinterpret_cast<const uint8_t*>(enc.data()), enc.size()}));
  out.insert(out.end(), ingest_magic, ingest_magic + 8);
  return out;
}

// add() (copied), add_view() (borrowed) and a mix, through finish() and finish_into() into a
// reused aligned buffer: every combination gives the reference bytes and the same layout.
TEST(ingest_object, views_and_aligned_output_are_byte_identical) {
  const std::pair<std::string, int32_t> parts[] = {{"orders", 1}, {"orders", 0}, {"clicks", 7}};
  aligned_buffer reused;
  for (int round = 0; round < 6; ++round) {
    std::mt19937 rng(100 + round);
    const int batches = round == 5 ? 3 : 30 + round * 20;
    std::vector<added> in;
    std::vector<ingest_batch_meta> metas;
    for (int i = 0; i < batches; ++i) {
      const auto& [topic, partition] = parts[rng() % 3];
      in.push_back({topic, partition, fake_batch(rng, 61 + rng() % 5000), 0});
      metas.push_back({static_cast<int32_t>(1 + i % 5), 1000 + (i * 7919) % 500, 900 + i});
    }
    const bytes expected = reference_object(in, metas, "broker-3", 1700000000999);
    ingest_object_builder copied("broker-3"), viewed("broker-3"), mixed("broker-3");
    for (size_t i = 0; i < in.size(); ++i) {
      const uint32_t a = copied.add(in[i].topic, in[i].partition, in[i].data, metas[i]);
      const uint32_t b = viewed.add_view(in[i].topic, in[i].partition, in[i].data, metas[i]);
      const uint32_t c = i % 2 ? mixed.add(in[i].topic, in[i].partition, in[i].data, metas[i])
                               : mixed.add_view(in[i].topic, in[i].partition, in[i].data, metas[i]);
      EXPECT_EQ(a, b);
      EXPECT_EQ(a, c);
    }
    EXPECT_EQ(viewed.size_bytes(), copied.size_bytes());
    auto f1 = copied.finish(1700000000999);
    auto f2 = viewed.finish_into(reused, 1700000000999);
    EXPECT_TRUE(viewed.empty());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(reused.data()) % aligned_buffer::alignment, 0u);
    EXPECT_EQ(reused.capacity() % aligned_buffer::alignment, 0u);
    EXPECT_TRUE(f2.data.empty());
    ASSERT_EQ(f1.data, expected) << "round " << round;
    ASSERT_TRUE(
        std::equal(reused.span().begin(), reused.span().end(), expected.begin(), expected.end()))
        << "round " << round;
    auto f3 = mixed.finish(1700000000999);
    ASSERT_EQ(f3.data, expected);
    ASSERT_EQ(f1.ranges.size(), f2.ranges.size());
    for (size_t i = 0; i < f1.ranges.size(); ++i) {
      EXPECT_EQ(f1.ranges[i].offset, f2.ranges[i].offset);
      EXPECT_EQ(f1.ranges[i].crc32c, f2.ranges[i].crc32c);
      ASSERT_EQ(f1.batches[i].size(), f2.batches[i].size());
      for (size_t j = 0; j < f1.batches[i].size(); ++j) {
        EXPECT_EQ(f1.batches[i][j].offset, f2.batches[i][j].offset);
        EXPECT_EQ(f1.batches[i][j].length, f2.batches[i][j].length);
      }
    }
    auto footer = parse_ingest_footer(reused.span(), reused.size());
    ASSERT_TRUE(footer) << footer.message();
  }
  // An empty builder still makes a valid (footer-only) object.
  ingest_object_builder empty("w");
  EXPECT_TRUE(empty.finish_into(reused, 5).ranges.empty());
  EXPECT_TRUE(parse_ingest_footer(reused.span(), reused.size()));
}

}  // namespace
}  // namespace sh::storage
