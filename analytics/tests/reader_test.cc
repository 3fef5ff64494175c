// archive_reader against an in-memory object store and a SQLite metadata store: committed
// ingest ranges (numbered from the index), segments (offsets from the batches), offset and time
// bounds, codecs, null keys, headers, control batches, LogAppendTime, and the skipping stats.
#include "sh/analytics/reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "sh/kafka/record_batch.h"
#include "sh/metadata/metadata_store.h"
#include "sh/storage/segment.h"

namespace sh::analytics {
namespace {

struct seen {
  int64_t offset;
  int64_t ts;
  int32_t ts_type;
  std::optional<std::string> key, value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
};

// A batch of `n` records at timestamps ts, ts+1, ...: keys "k<i>" except every third one null,
// values "v<tag>-<i>", a header on even records (null value every fourth).
std::vector<uint8_t> batch(int n, int64_t ts, const std::string& tag, int16_t attributes = 0) {
  kafka::batch_build_options o;
  o.base_timestamp = ts;
  o.attributes = attributes;
  std::vector<kafka::record_spec> recs;
  for (int i = 0; i < n; ++i) {
    kafka::record_spec r;
    r.timestamp_delta = i;
    if (i % 3 != 1) r.key = "k" + std::to_string(i);
    r.value = "v" + tag + "-" + std::to_string(i);
    if (i % 2 == 0) {
      r.headers.push_back(
          {"h" + std::to_string(i), i % 4 == 0 ? std::nullopt : std::optional<std::string>("x")});
    }
    recs.push_back(r);
  }
  return kafka::build_batch(o, recs);
}

std::vector<seen> read_all(archive_reader& r, int32_t p, const read_range& range) {
  std::vector<seen> out;
  auto res = r.read("t", p, range, [&](const record& rec) {
    seen s{rec.offset, rec.timestamp, rec.timestamp_type, {}, {}, {}};
    if (rec.key) s.key = std::string(*rec.key);
    if (rec.value) s.value = std::string(*rec.value);
    for (const auto& h : rec.headers) {
      s.headers.emplace_back(std::string(h.key),
                             h.value ? std::optional<std::string>(*h.value) : std::nullopt);
    }
    out.push_back(s);
    return true;
  });
  EXPECT_TRUE(res) << res.message();
  return out;
}

std::vector<int64_t> offsets(const std::vector<seen>& v) {
  std::vector<int64_t> o;
  for (const auto& s : v) o.push_back(s.offset);
  return o;
}

class reader_test : public ::testing::Test {
 protected:
  void SetUp() override {
    store = std::shared_ptr<storage::object_store>(storage::open_memory_store());
    auto m = metadata::open_metadata_store("sqlite::memory:");
    ASSERT_TRUE(m) << m.message();
    meta = std::shared_ptr<metadata::metadata_store>(std::move(*m));
    ASSERT_TRUE(meta->create_topic("t", 2, {}));
  }

  // Commits `batches` as one range of partition p in a new ingest object (after some junk bytes,
  // as another partition's range would be).
  void commit(int32_t p, const std::vector<std::vector<uint8_t>>& batches) {
    std::vector<uint8_t> obj(17, 0xEE);
    metadata::range_commit rc;
    rc.topic = "t";
    rc.partition = p;
    rc.byte_offset = obj.size();
    for (const auto& b : batches) {
      auto h = kafka::parse_batch_header(b);
      ASSERT_TRUE(h);
      obj.insert(obj.end(), b.begin(), b.end());
      rc.batches.push_back({h->last_offset_delta + 1, h->max_timestamp, -1, -1, -1});
      rc.min_timestamp = rc.min_timestamp < 0 ? h->base_timestamp : rc.min_timestamp;
      rc.max_timestamp = std::max(rc.max_timestamp, h->max_timestamp);
    }
    rc.byte_length = obj.size() - rc.byte_offset;
    const std::string key = "ingest/" + std::to_string(next_object++);
    ASSERT_TRUE(store->put(key, obj));
    metadata::object_commit oc{key, obj.size(), {rc}};
    auto r = meta->commit_object(oc);
    ASSERT_TRUE(r) << r.message();
    ASSERT_EQ((*r)[0].status, metadata::range_status::ok);
  }

  std::shared_ptr<storage::object_store> store;
  std::shared_ptr<metadata::metadata_store> meta;
  int next_object = 0;
};

TEST_F(reader_test, indexed_ranges_all_codecs_nulls_headers_and_bounds) {
  // Offsets 0..4 plain, 5..9 gzip, 10..14 snappy in one row; 15..19 lz4, 20..24 zstd.
  commit(0, {batch(5, 1000, "a")});
  commit(0, {batch(5, 2000, "b", 1), batch(5, 3000, "c", 2)});
  commit(0, {batch(5, 4000, "d", 3)});
  commit(0, {batch(5, 5000, "e", 4)});
  commit(1, {batch(2, 9000, "p1")});
  auto r = archive_reader::open(store, meta);
  ASSERT_FALSE(r->segments_only());

  auto parts = r->list_partitions("t");
  ASSERT_TRUE(parts) << parts.message();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].high_watermark, 25);
  EXPECT_EQ((*parts)[1].high_watermark, 2);
  EXPECT_EQ(r->list_partitions("nope").code(), errc::not_found);

  auto all = read_all(*r, 0, {});
  ASSERT_EQ(all.size(), 25u);
  for (int64_t i = 0; i < 25; ++i) {
    const auto& s = all[static_cast<size_t>(i)];
    const int j = static_cast<int>(i % 5);
    EXPECT_EQ(s.offset, i);
    EXPECT_EQ(s.ts, 1000 * (i / 5 + 1) + j);
    EXPECT_EQ(s.ts_type, 0);
    if (j % 3 == 1) {
      EXPECT_FALSE(s.key);
    } else {
      EXPECT_EQ(s.key, "k" + std::to_string(j));
    }
    EXPECT_EQ(s.value,
              "v" + std::string(1, static_cast<char>('a' + i / 5)) + "-" + std::to_string(j));
    if (j % 2 == 0) {
      ASSERT_EQ(s.headers.size(), 1u);
      EXPECT_EQ(s.headers[0].first, "h" + std::to_string(j));
      EXPECT_EQ(s.headers[0].second.has_value(), j % 4 != 0);
    } else {
      EXPECT_TRUE(s.headers.empty());
    }
  }
  EXPECT_EQ(read_all(*r, 1, {}).size(), 2u);

  // Offset bounds, inclusive, inside compressed batches.
  read_range off;
  off.from_offset = 7;
  off.to_offset = 16;
  EXPECT_EQ(offsets(read_all(*r, 0, off)),
            (std::vector<int64_t>{7, 8, 9, 10, 11, 12, 13, 14, 15, 16}));

  // Time bounds, inclusive: 2003..4001 is offsets 8, 9, 10..14, 15, 16.
  const auto before = r->stats();
  read_range tr;
  tr.from_time = 2003;
  tr.to_time = 4001;
  EXPECT_EQ(offsets(read_all(*r, 0, tr)), (std::vector<int64_t>{8, 9, 10, 11, 12, 13, 14, 15, 16}));
  // The first row (max ts 1004) is never fetched: find_by_timestamp starts at the second.
  EXPECT_EQ(r->stats().ranges_fetched - before.ranges_fetched, 3u);  // rows 2, 3 and 4

  // Both bounds at once, and an empty answer past the end.
  read_range both;
  both.from_offset = 9;
  both.to_time = 3001;
  EXPECT_EQ(offsets(read_all(*r, 0, both)), (std::vector<int64_t>{9, 10, 11}));
  read_range past;
  past.from_offset = 25;
  EXPECT_TRUE(read_all(*r, 0, past).empty());

  // Stopping early is not an error.
  int n = 0;
  auto stopped = r->read("t", 0, {}, [&](const record&) { return ++n < 3; });
  EXPECT_TRUE(stopped);
  EXPECT_EQ(n, 3);
}

TEST_F(reader_test, log_append_time_and_control_batches) {
  // LogAppendTime (attribute bit 3): every record carries the batch's max timestamp.
  kafka::batch_build_options o;
  o.base_timestamp = 100;
  o.attributes = 0x8;
  o.max_timestamp = 777;
  auto lat = kafka::build_batch(o, {{std::string("a"), std::string("1"), {}, 0, {}, 0},
                                    {std::string("b"), std::string("2"), {}, 5, {}, 0}});
  // A control batch (transaction marker): skipped, but it holds an offset.
  kafka::batch_build_options c;
  c.base_timestamp = 800;
  c.attributes = 0x20 | 0x10;
  auto ctl = kafka::build_batch(c, {{std::string("\0\0\0\0", 4), std::string("x"), {}, 0, {}, 0}});
  commit(0, {lat, ctl, batch(1, 900, "z")});
  auto r = archive_reader::open(store, meta);
  auto all = read_all(*r, 0, {});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].ts, 777);
  EXPECT_EQ(all[0].ts_type, 1);
  EXPECT_EQ(all[1].ts, 777);
  EXPECT_EQ(all[2].offset, 3);
  EXPECT_EQ(all[2].ts, 900);
  read_range tr;
  tr.to_time = 776;
  EXPECT_TRUE(read_all(*r, 0, tr).empty());
}

TEST_F(reader_test, segment_only_mode_reads_and_skips_segments) {
  // Three segments of partition 0: offsets 0..9, 10..19 (with a gap after 14), 30..39.
  auto put_segment = [&](std::vector<std::pair<int64_t, std::vector<uint8_t>>> bs) {
    storage::segment_builder b("w", "t", 0, 1);  // index every batch
    for (auto& [base, bytes] : bs) ASSERT_TRUE(b.add(bytes, base));
    auto f = b.finish(1);
    ASSERT_TRUE(store->put(storage::segment_object_key("", "t", 0, f.info.base_offset), f.data));
  };
  put_segment({{0, batch(5, 1000, "a")}, {5, batch(5, 1100, "b", 4)}});
  put_segment({{10, batch(5, 2000, "c", 2)}, {17, batch(3, 2100, "d")}});
  put_segment({{30, batch(10, 3000, "e", 1)}});
  ASSERT_TRUE(store->put("topics/t/0/junk.txt", std::vector<uint8_t>{1, 2}));
  auto r = archive_reader::open(store, nullptr);
  ASSERT_TRUE(r->segments_only());
  auto parts = r->list_partitions("t");
  ASSERT_TRUE(parts) << parts.message();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].log_start_offset, 0);
  EXPECT_EQ((*parts)[0].high_watermark, 40);

  auto all = read_all(*r, 0, {});
  std::vector<int64_t> want;
  for (int64_t i = 0; i < 15; ++i) want.push_back(i);
  for (int64_t i = 17; i < 20; ++i) want.push_back(i);
  for (int64_t i = 30; i < 40; ++i) want.push_back(i);
  EXPECT_EQ(offsets(all), want);
  EXPECT_EQ(all[17].value, "vd-2");
  EXPECT_EQ(all[17].ts, 2102);

  // Offset range inside the second segment: the first segment is skipped without a request.
  auto before = r->stats();
  read_range off;
  off.from_offset = 12;
  off.to_offset = 18;
  EXPECT_EQ(offsets(read_all(*r, 0, off)), (std::vector<int64_t>{12, 13, 14, 17, 18}));
  EXPECT_EQ(r->stats().segments_skipped - before.segments_skipped, 1u);

  // Time range: the first and third segments are out by their footers.
  before = r->stats();
  read_range tr;
  tr.from_time = 2003;
  tr.to_time = 2101;
  EXPECT_EQ(offsets(read_all(*r, 0, tr)), (std::vector<int64_t>{13, 14, 17, 18}));
  EXPECT_EQ(r->stats().segments_skipped - before.segments_skipped, 2u);
  EXPECT_EQ(r->list_partitions("other").code(), errc::not_found);
}

TEST_F(reader_test, segment_larger_than_the_read_window) {
  // 24 batches of ~1 MiB: the segment is read in 8 MiB windows, batches straddle their edges.
  storage::segment_builder b("w", "t", 1, 4 << 20);
  for (int i = 0; i < 24; ++i) {
    kafka::batch_build_options o;
    o.base_timestamp = 10000 + i * 100;
    std::vector<kafka::record_spec> recs(4);
    for (int j = 0; j < 4; ++j) {
      recs[j].value = std::string(250000 + i * 1000 + j, static_cast<char>('a' + (i + j) % 26));
      recs[j].timestamp_delta = j;
    }
    ASSERT_TRUE(b.add(kafka::build_batch(o, recs), 4 * i));
  }
  auto f = b.finish(1);
  ASSERT_GT(f.data.size(), 20u << 20);
  ASSERT_TRUE(store->put(storage::segment_object_key("", "t", 1, 0), f.data));
  auto r = archive_reader::open(store, nullptr);
  auto all = read_all(*r, 1, {});
  ASSERT_EQ(all.size(), 96u);
  for (size_t k = 0; k < all.size(); ++k) {
    const int i = static_cast<int>(k / 4), j = static_cast<int>(k % 4);
    EXPECT_EQ(all[k].offset, static_cast<int64_t>(k));
    EXPECT_EQ(all[k].value->size(), static_cast<size_t>(250000 + i * 1000 + j));
    EXPECT_EQ(all[k].ts, 10000 + i * 100 + j);
  }
  // From the middle: the footer index lets the read start near offset 70, not at 0.
  const auto before = r->stats();
  read_range off;
  off.from_offset = 70;
  off.to_offset = 81;
  EXPECT_EQ(offsets(read_all(*r, 1, off)).size(), 12u);
  EXPECT_LT(r->stats().bytes_fetched - before.bytes_fetched, 16u << 20);
  read_range tr;
  tr.from_time = 11801;
  tr.to_time = 12000;
  EXPECT_EQ(offsets(read_all(*r, 1, tr)), (std::vector<int64_t>{73, 74, 75, 76, 77, 78, 79, 80}));
}

TEST_F(reader_test, rows_compacted_and_collected_during_a_read_are_read_from_the_segment) {
  commit(0, {batch(5, 1000, "a")});
  commit(0, {batch(5, 2000, "b", 4)});
  auto rows = meta->read_index("t", 0, 0, 10);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);
  auto r = archive_reader::open(store, meta);
  std::vector<int64_t> got;
  bool swapped = false;
  auto res = r->read("t", 0, {}, [&](const record& rec) {
    got.push_back(rec.offset);
    if (!swapped) {
      // What the compactor and then GC do while this export runs: both rows into one segment,
      // the second ingest object deleted.
      swapped = true;
      storage::segment_builder b("w", "t", 0);
      int64_t base = 0;
      for (const auto& e : *rows) {
        auto bytes = store->get_range(e.object_key, e.byte_offset, e.byte_length);
        EXPECT_TRUE(bytes);
        EXPECT_TRUE(b.add(*bytes, base));
        base = e.last_offset + 1;
      }
      auto f = b.finish(1);
      const auto key = storage::segment_object_key("", "t", 0, 0);
      EXPECT_TRUE(store->put(key, f.data));
      auto l = meta->acquire_lease("compact/t/0", "test", 60000);
      EXPECT_TRUE(l);
      metadata::segment_replacement rep;
      rep.topic = "t";
      rep.segment_key = key;
      rep.segment_size = f.data.size();
      rep.first_offset = 0;
      rep.last_offset = 9;
      rep.replaced = *rows;
      rep.entries.push_back({0, 9, f.info.max_timestamp, 10, key, 0, f.info.data_length});
      rep.fence = {l->name, l->epoch};
      auto sw = meta->replace_with_segment(rep);
      EXPECT_TRUE(sw) << sw.message();
      EXPECT_TRUE(store->remove((*rows)[1].object_key));
    }
    return true;
  });
  ASSERT_TRUE(res) << res.message();
  std::vector<int64_t> want;
  for (int64_t i = 0; i < 10; ++i) want.push_back(i);
  EXPECT_EQ(got, want);
}

TEST_F(reader_test, damaged_segments_give_errors_never_crashes) {
  storage::segment_builder b("w", "t", 0, 200);
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(b.add(batch(6, 1000 + 10 * i, "s", static_cast<int16_t>(i % 5)), 6 * i));
  }
  const auto good = b.finish(1).data;
  const auto key = storage::segment_object_key("", "t", 0, 0);
  std::mt19937_64 rng(12345);
  int errors = 0;
  for (int round = 0; round < 400; ++round) {
    auto bad = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f)
      bad[rng() % bad.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    if (round % 7 == 0) bad.resize(rng() % bad.size());  // truncated too
    ASSERT_TRUE(store->put(key, bad));
    auto r = archive_reader::open(store, nullptr);
    read_range range;
    if (round % 2) range.from_offset = static_cast<int64_t>(rng() % 72);
    if (round % 3 == 0) range.from_time = 1000 + static_cast<int64_t>(rng() % 120);
    size_t n = 0;
    auto res = r->read("t", 0, range, [&](const record& rec) {
      n += rec.value ? rec.value->size() : 0;
      return true;
    });
    if (!res) ++errors;
  }
  EXPECT_GT(errors, 100);  // most damage is detected (CRCs, footer checksum)
}

TEST_F(reader_test, corrupt_range_is_an_error_not_a_crash) {
  commit(0, {batch(3, 1000, "a")});
  auto e = meta->read_index("t", 0, 0, 1);
  ASSERT_TRUE(e);
  auto obj = store->get((*e)[0].object_key);
  ASSERT_TRUE(obj);
  (*obj)[(*e)[0].byte_offset + 70] ^= 0xFF;  // inside the records: CRC mismatch
  ASSERT_TRUE(store->put((*e)[0].object_key, *obj));
  auto r = archive_reader::open(store, meta);
  auto res = r->read("t", 0, {}, [](const record&) { return true; });
  ASSERT_FALSE(res);
  EXPECT_EQ(res.code(), errc::corrupt);
}

TEST(parse_time_test, epoch_ms_and_iso8601) {
  EXPECT_EQ(*parse_time("1700000000000"), 1700000000000);
  EXPECT_EQ(*parse_time("0"), 0);
  EXPECT_EQ(*parse_time("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*parse_time("2023-11-14T22:13:20Z"), 1700000000000);
  EXPECT_EQ(*parse_time("2023-11-14T22:13:20.123Z"), 1700000000123);
  EXPECT_EQ(*parse_time("2023-11-14T23:13:20.5+01:00"), 1700000000500);
  EXPECT_EQ(*parse_time("2023-11-14T17:13:20-0500"), 1700000000000);
  EXPECT_EQ(*parse_time("2023-11-14T22:13"), 1699999980000);
  EXPECT_EQ(*parse_time("2024-02-29"), 1709164800000);
  EXPECT_FALSE(parse_time(""));
  EXPECT_FALSE(parse_time("yesterday"));
  EXPECT_FALSE(parse_time("2023-13-01"));
  EXPECT_FALSE(parse_time("2023-11-14T25:00"));
  EXPECT_FALSE(parse_time("2023-11-14T22:13:20Zjunk"));
  EXPECT_FALSE(parse_time("99999999999999999999999"));
}

}  // namespace
}  // namespace sh::analytics

namespace sh::analytics {
namespace {

TEST(reader_open_test, options_are_checked_and_nothing_is_created) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("sh-reader-open-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  source_options o;
  EXPECT_EQ(archive_reader::open(o).code(), errc::invalid_argument);  // no storage.url
  o.storage_url = "file://" + (dir / "objects").string();
  EXPECT_EQ(archive_reader::open(o).code(), errc::invalid_argument);  // no metadata.url
  o.metadata_url = "sqlite://" + (dir / "missing.db").string();
  EXPECT_EQ(archive_reader::open(o).code(), errc::not_found);
  EXPECT_FALSE(std::filesystem::exists(dir / "missing.db"));
  o.segments_only = true;  // the metadata URL is not even looked at
  auto r = archive_reader::open(o);
  ASSERT_TRUE(r) << r.message();
  EXPECT_TRUE((*r)->segments_only());
  EXPECT_EQ((*r)->list_partitions("t").code(), errc::not_found);
  EXPECT_EQ((*r)->list_partitions("../x").code(), errc::invalid_argument);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sh::analytics
