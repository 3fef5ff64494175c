// Compaction, retention, re-compression, object GC and the orphan sweep on both backends:
// SQLite + a local directory, and PostgreSQL + S3 (the test services; skipped without them).
// Data goes in through the ingest writer and comes out through the fetch path (what a Kafka
// consumer sees) and through the segment reader (what a reader with only the bucket sees).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include "broker_context.h"
#include "compaction/compactor.h"
#include "ingest_writer.h"
#include "log_reader.h"
#include "sh/kafka/record_batch.h"
#include "sh/storage/segment.h"

namespace sh::broker {
namespace {

namespace fs = std::filesystem;

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What a consumer sees of one record.
struct record {
  int64_t offset = 0;
  int64_t timestamp = 0;
  std::optional<std::string> key, value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
  bool operator==(const record&) const = default;
};

std::optional<std::string> str(const std::optional<std::span<const uint8_t>>& b) {
  if (!b) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(b->data()), b->size());
}

// Decodes whole batches (CRC checked); codecs seen are added to `codecs`.
std::vector<record> decode(std::span<const uint8_t> bytes, std::set<int>* codecs = nullptr) {
  std::vector<record> out;
  auto batches = kafka::split_batches(bytes);
  EXPECT_TRUE(batches) << batches.message();
  if (!batches) return out;
  for (const auto& b : *batches) {
    if (codecs) codecs->insert(b.header.compression_bits());
    auto ok = kafka::for_each_record(b, [&](const kafka::record_view& r) {
      record x;
      x.offset = b.header.base_offset + r.offset_delta;
      x.timestamp = b.header.base_timestamp + r.timestamp_delta;
      x.key = str(r.key);
      x.value = str(r.value);
      for (const auto& h : r.headers) x.headers.emplace_back(std::string(h.key), str(h.value));
      out.push_back(std::move(x));
    });
    EXPECT_TRUE(ok) << ok.message();
  }
  return out;
}

// A batch of `n` records with varied content: keys (some null), values of varied size (some
// null), headers (some with null values), in codec `codec`.
std::vector<uint8_t> varied_batch(int n, int64_t ts, int codec, int seed) {
  kafka::batch_build_options o;
  o.base_timestamp = ts;
  o.attributes = static_cast<int16_t>(codec);
  std::vector<kafka::record_spec> recs;
  for (int i = 0; i < n; ++i) {
    kafka::record_spec r;
    r.timestamp_delta = i;
    if ((seed + i) % 5 != 0) r.key = "key-" + std::to_string(seed) + "-" + std::to_string(i);
    if ((seed + i) % 7 != 3) {
      r.value = std::string(static_cast<size_t>(50 + (seed * 31 + i * 17) % 300),
                            static_cast<char>('a' + (seed + i) % 26));
    }
    if (i % 2 == 0) r.headers.push_back({"h", std::string("v") + std::to_string(i)});
    if (i % 3 == 0) r.headers.push_back({"null-header", std::nullopt});
    recs.push_back(std::move(r));
  }
  return kafka::build_batch(o, recs);
}

class compaction_retention_test : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    std::string unique = std::to_string(::getpid()) + "_" + std::to_string(++counter);
    dir = fs::temp_directory_path() / ("sh-cr-" + unique);
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::shared_ptr<storage::object_store> store;
    std::shared_ptr<metadata::metadata_store> meta;
    if (GetParam()) {
      const char* pg = std::getenv("PG_URL");
      const char* endpoint = std::getenv("S3_ENDPOINT");
      if (!pg || !*pg || !endpoint || !*endpoint || !std::getenv("S3_ACCESS_KEY")) {
        GTEST_SKIP() << "PG_URL / S3_* not set (tests/services/test-services.sh)";
      }
      schema = "sh_cr_" + unique;
      std::string cmd =
          "psql '" + std::string(pg) + "' -qAt -c 'CREATE SCHEMA " + schema + "' > /dev/null";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
      pg_url = pg;
      auto m = metadata::open_metadata_store(pg_url + "?options=-csearch_path%3D" + schema);
      ASSERT_TRUE(m) << m.message();
      meta = std::move(*m);
      storage::s3_options s3;
      s3.endpoint = endpoint;
      s3.region = std::getenv("S3_REGION") ? std::getenv("S3_REGION") : "us-east-1";
      s3.access_key = std::getenv("S3_ACCESS_KEY");
      s3.secret_key = std::getenv("S3_SECRET_KEY") ? std::getenv("S3_SECRET_KEY") : "";
      ASSERT_TRUE(storage::s3_create_bucket("sh-compaction-test", s3));
      auto s = storage::open_s3_store("sh-compaction-test", "run-" + unique, s3);
      ASSERT_TRUE(s) << s.message();
      store = std::move(*s);
    } else {
      auto s = storage::open_object_store((dir / "objects").string());
      ASSERT_TRUE(s) << s.message();
      store = std::move(*s);
      auto m = metadata::open_metadata_store((dir / "meta.db").string());
      ASSERT_TRUE(m) << m.message();
      meta = std::move(*m);
    }
    broker_config cfg;
    cfg.num_blocking_threads = 2;
    ctx = std::make_unique<broker_context>(cfg, store, meta);
  }

  void TearDown() override {
    ctx.reset();
    if (!schema.empty()) {
      std::string cmd = "psql '" + pg_url + "' -qAt -c 'DROP SCHEMA IF EXISTS " + schema +
                        " CASCADE' > /dev/null 2>&1";
      (void)std::system(cmd.c_str());
    }
    fs::remove_all(dir);
  }

  // The compactor of a broker with these extra keys (short intervals for tests).
  compaction::compactor_options options(std::map<std::string, std::string> keys,
                                        const std::string& owner = "me") {
    broker_config cfg;
    cfg.raw = std::move(keys);
    return compaction::make_compactor_options(cfg, owner);
  }

  // `flushes` ingest objects; each holds, per partition of `partitions`, two batches (one of
  // them compressed with codec (i % 4) + 1 when `mixed`).
  void produce(const std::string& topic, int partitions, int flushes, int64_t ts,
               bool mixed = true) {
    ingest_writer w(ctx->store, ctx->meta, "writer-" + std::to_string(++_writers), 1 << 20,
                    std::chrono::milliseconds(1), {});
    w.start();
    for (int i = 0; i < flushes; ++i) {
      std::vector<std::vector<uint8_t>> keep;
      std::vector<append_batch> batches;
      for (int p = 0; p < partitions; ++p) {
        for (int j = 0; j < 2; ++j) {
          int codec = mixed && j == 1 ? (i % 4) + 1 : 0;
          keep.push_back(varied_batch(5 + (i + j) % 4, ts + i * 10, codec, i * 7 + j + p));
        }
      }
      size_t k = 0;
      for (int p = 0; p < partitions; ++p) {
        for (int j = 0; j < 2; ++j, ++k) {
          auto h = kafka::parse_batch_header(keep[k]);
          append_batch a;
          a.topic = topic;
          a.partition = p;
          a.bytes = keep[k];
          a.offset_count = h->last_offset_delta + 1;
          a.first_timestamp = h->base_timestamp;
          a.max_timestamp = h->max_timestamp;
          batches.push_back(a);
        }
      }
      std::promise<std::vector<append_outcome>> pr;
      auto f = pr.get_future();
      w.append(batches, [&pr](std::vector<append_outcome> o) { pr.set_value(std::move(o)); });
      for (const auto& o : f.get()) ASSERT_EQ(o.error, kafka::error_code::none);
    }
    w.stop();
  }

  // Everything from `from` to the high watermark through the fetch path, as raw bytes.
  std::vector<uint8_t> fetch_all(const std::string& topic, int32_t p, int64_t from = -1) {
    auto state = ctx->meta->get_partition(topic, p);
    EXPECT_TRUE(state) << state.message();
    if (!state) return {};
    int64_t offset = from >= 0 ? from : state->log_start_offset;
    std::vector<uint8_t> out;
    while (offset < state->high_watermark) {
      auto r = read_partition(*ctx, topic, p, offset, 1 << 20, true);
      EXPECT_EQ(r.error, kafka::error_code::none) << "offset " << offset;
      if (r.error != kafka::error_code::none || r.records.empty()) break;
      auto batches = kafka::split_batches(r.records);
      EXPECT_TRUE(batches && !batches->empty());
      if (!batches || batches->empty()) break;
      out.insert(out.end(), r.records.begin(), r.records.end());
      offset = batches->back().header.last_offset() + 1;
    }
    return out;
  }

  std::vector<std::string> keys_under(const std::string& family) {
    auto l = ctx->store->list(family);
    EXPECT_TRUE(l) << l.message();
    std::vector<std::string> out;
    if (l) {
      for (const auto& o : *l) out.push_back(o.key);
    }
    return out;
  }

  // Records of every segment of topic-partition, read from the bucket alone (footer parsed,
  // data CRC verified), in offset order; codecs seen go to `codecs`.
  std::vector<record> segment_records(const std::string& topic, int32_t p,
                                      std::set<int>* codecs = nullptr, size_t* segments = nullptr) {
    std::vector<record> out;
    size_t n = 0;
    for (const auto& key : keys_under("topics/" + topic + "/" + std::to_string(p) + "/")) {
      auto seg = ctx->store->get(key);
      EXPECT_TRUE(seg) << seg.message();
      if (!seg) continue;
      auto info = storage::parse_segment_footer(*seg, seg->size());
      EXPECT_TRUE(info) << key << ": " << info.message();
      if (!info) continue;
      auto data = std::span<const uint8_t>(seg->data(), info->data_length);
      EXPECT_TRUE(storage::verify_segment_data(data, *info)) << key;
      auto recs = decode(data, codecs);
      EXPECT_FALSE(recs.empty());
      if (!recs.empty()) {
        EXPECT_EQ(recs.front().offset, info->base_offset) << key;
        EXPECT_EQ(recs.back().offset, info->last_offset) << key;
      }
      out.insert(out.end(), recs.begin(), recs.end());
      ++n;
    }
    if (segments) *segments = n;
    return out;
  }

  bool all_rows_in_segments(const std::string& topic, int32_t p) {
    auto rows = ctx->meta->read_index(topic, p, 0, 100000);
    EXPECT_TRUE(rows) << rows.message();
    if (!rows || rows->empty()) return false;
    for (const auto& e : *rows) {
      if (e.object_key.size() < 4 || e.object_key.substr(e.object_key.size() - 4) != ".seg") {
        return false;
      }
    }
    return true;
  }

  // Every object an index row references exists in the bucket.
  void expect_referenced_objects_exist(const std::string& topic, int32_t partitions) {
    for (int32_t p = 0; p < partitions; ++p) {
      auto rows = ctx->meta->read_index(topic, p, 0, 100000);
      ASSERT_TRUE(rows) << rows.message();
      for (const auto& e : *rows) EXPECT_TRUE(ctx->store->head(e.object_key)) << e.object_key;
    }
  }

  fs::path dir;
  std::string schema, pg_url;
  std::unique_ptr<broker_context> ctx;
  int _writers = 0;
};

TEST_P(compaction_retention_test, several_segments_read_identical_and_ingest_objects_collected) {
  // Record times an hour ago: every run is old enough by segment.ms, so everything compacts.
  const int64_t ts = wall_ms() - 3600000;
  ASSERT_TRUE(ctx->meta->create_topic("t", 2, {{"segment.bytes", "3000"}}));
  produce("t", 2, 12, ts);
  auto ingest = keys_under("ingest/");
  ASSERT_EQ(ingest.size(), 12u);
  std::vector<std::vector<uint8_t>> before = {fetch_all("t", 0), fetch_all("t", 1)};
  auto records0 = decode(before[0]);
  ASSERT_GT(records0.size(), 100u);

  compaction::compactor c(ctx->meta, ctx->store, options({{"object.gc.grace.ms", "3000"}}));
  c.run_pass();
  for (int32_t p = 0; p < 2; ++p) {
    EXPECT_TRUE(all_rows_in_segments("t", p)) << p;
    // Byte-identical through the fetch path (no re-compression configured).
    EXPECT_EQ(fetch_all("t", p), before[p]) << p;
    size_t segments = 0;
    std::set<int> codecs;
    EXPECT_EQ(segment_records("t", p, &codecs, &segments), decode(before[p])) << p;
    EXPECT_GE(segments, 3u) << "segment.bytes=3000 should cut several segments";
    EXPECT_GT(codecs.size(), 1u);  // the producers' codecs are kept
  }
  // Within the grace period the ingest objects stay (a fetch may still read them).
  for (const auto& k : ingest) EXPECT_TRUE(ctx->store->head(k)) << k;
  std::this_thread::sleep_for(std::chrono::milliseconds(3200));
  c.run_pass();
  EXPECT_TRUE(keys_under("ingest/").empty());
  for (int32_t p = 0; p < 2; ++p) EXPECT_EQ(fetch_all("t", p), before[p]) << p;
  expect_referenced_objects_exist("t", 2);
}

TEST_P(compaction_retention_test, retention_removes_oldest_segments_and_moves_log_start) {
  const int64_t now = wall_ms();
  const std::map<std::string, std::string> base = {{"segment.bytes", "2500"}, {"segment.ms", "1"}};
  ASSERT_TRUE(ctx->meta->create_topic("r", 1, base));
  produce("r", 1, 10, now - 7200000);  // two hours old
  auto old_hwm = ctx->meta->get_partition("r", 0);
  ASSERT_TRUE(old_hwm);
  produce("r", 1, 10, now);
  auto all = decode(fetch_all("r", 0));
  compaction::compactor c(ctx->meta, ctx->store, options({{"object.gc.grace.ms", "0"}}));
  c.run_pass();  // retention -1 (the default): everything compacted, nothing removed
  ASSERT_TRUE(all_rows_in_segments("r", 0));
  auto state = ctx->meta->get_partition("r", 0);
  ASSERT_TRUE(state);
  EXPECT_EQ(state->log_start_offset, 0);
  auto segments_before = keys_under("topics/r/0/");
  ASSERT_GE(segments_before.size(), 4u);

  // retention.ms one hour: the two-hour-old segments go; a segment mixing old and new records
  // stays whole (Kafka deletes by a segment's largest timestamp).
  auto with_ms = base;
  with_ms["retention.ms"] = "3600000";
  ASSERT_TRUE(ctx->meta->set_topic_configs("r", with_ms));
  c.run_pass();
  state = ctx->meta->get_partition("r", 0);
  ASSERT_TRUE(state);
  EXPECT_GT(state->log_start_offset, 0);
  EXPECT_LE(state->log_start_offset, old_hwm->high_watermark);
  auto rows = ctx->meta->read_index("r", 0, 0, 1000);
  ASSERT_TRUE(rows && !rows->empty());
  EXPECT_EQ(rows->front().base_offset, state->log_start_offset);  // whole segments removed
  // Every record still there is exactly what was produced from the new log start.
  auto kept = decode(fetch_all("r", 0));
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept.front().offset, state->log_start_offset);
  EXPECT_EQ(kept,
            std::vector<record>(all.end() - static_cast<std::ptrdiff_t>(kept.size()), all.end()));
  // Below the log start is out of range, as for a Kafka consumer.
  auto below = read_partition(*ctx, "r", 0, 0, 1 << 20, true);
  EXPECT_EQ(below.error, kafka::error_code::offset_out_of_range);
  // The removed segments' objects are collected (grace 0 here) by the next pass.
  c.run_pass();
  auto segments_after = keys_under("topics/r/0/");
  EXPECT_LT(segments_after.size(), segments_before.size());
  expect_referenced_objects_exist("r", 1);

  // retention.bytes: the oldest segments go while the rest still holds at least that much.
  uint64_t total = 0;
  rows = ctx->meta->read_index("r", 0, 0, 1000);
  for (const auto& e : *rows) total += e.byte_length;
  auto with_bytes = base;
  with_bytes["retention.bytes"] = std::to_string(total / 2);
  ASSERT_TRUE(ctx->meta->set_topic_configs("r", with_bytes));
  int64_t start_before = state->log_start_offset;
  c.run_pass();
  state = ctx->meta->get_partition("r", 0);
  ASSERT_TRUE(state);
  EXPECT_GT(state->log_start_offset, start_before);
  rows = ctx->meta->read_index("r", 0, 0, 1000);
  ASSERT_TRUE(rows && !rows->empty());
  uint64_t left = 0;
  std::map<std::string, uint64_t> per_segment;
  for (const auto& e : *rows) {
    left += e.byte_length;
    per_segment[e.object_key] += e.byte_length;
  }
  EXPECT_GE(left, total / 2);
  // Removing one more (the oldest) segment would have gone below retention.bytes.
  EXPECT_LT(left - per_segment[rows->front().object_key], total / 2);
  EXPECT_EQ(decode(fetch_all("r", 0)).front().offset, state->log_start_offset);
}

TEST_P(compaction_retention_test, retention_of_uncompacted_ranges_moves_log_start) {
  const int64_t now = wall_ms();
  // Segments would never be due (huge size and age): retention works on committed ranges.
  ASSERT_TRUE(ctx->meta->create_topic(
      "u", 1, {{"segment.bytes", "1000000000"}, {"segment.ms", "999999999999"}}));
  produce("u", 1, 4, now - 7200000);
  auto old_state = ctx->meta->get_partition("u", 0);
  ASSERT_TRUE(old_state);
  produce("u", 1, 3, now);
  ASSERT_TRUE(ctx->meta->set_topic_configs("u", {{"segment.bytes", "1000000000"},
                                                 {"segment.ms", "999999999999"},
                                                 {"retention.ms", "3600000"}}));
  compaction::compactor c(ctx->meta, ctx->store, options({{"object.gc.grace.ms", "0"}}));
  c.run_pass();
  auto state = ctx->meta->get_partition("u", 0);
  ASSERT_TRUE(state);
  EXPECT_EQ(state->log_start_offset, old_state->high_watermark);
  c.run_pass();
  EXPECT_EQ(keys_under("ingest/").size(), 3u);  // the old ranges' objects were collected
}

TEST_P(compaction_retention_test, crash_between_put_and_swap_loses_nothing_and_orphans_go) {
  const int64_t ts = wall_ms() - 3600000;
  ASSERT_TRUE(ctx->meta->create_topic("k", 1, {{"segment.bytes", "2000"}}));
  produce("k", 1, 8, ts);
  auto before = fetch_all("k", 0);
  // A compactor "crashes" right after its segment PUT (lease with a 1 ms TTL: it expires as a
  // dead broker's would).
  auto lease = ctx->meta->acquire_lease("compact/k/0", "crashed", 1);
  ASSERT_TRUE(lease);
  compaction::compaction_options o;
  o.writer_id = "crashed";
  o.segment_bytes = 2000;
  o.now_ms = wall_ms();
  o.before_swap = [](const std::string&) { return false; };
  auto crashed = compaction::compact_partition_once(*ctx->meta, *ctx->store, "k", 0,
                                                    {lease->name, lease->epoch}, o);
  ASSERT_TRUE(crashed) << crashed.message();
  ASSERT_FALSE(crashed->compacted);
  ASSERT_TRUE(ctx->store->head(crashed->segment_key));  // the orphan segment
  // And a broker that died between an ingest PUT and its commit.
  const std::string orphan_ingest = "ingest/dead-writer/00000000000000000001.ing";
  std::vector<uint8_t> junk(100, 7);
  ASSERT_TRUE(ctx->store->put(orphan_ingest, junk));
  EXPECT_EQ(fetch_all("k", 0), before);  // nothing changed for readers
  // The first rows are deleted meanwhile, so the restarted compactor's first segment starts
  // elsewhere and the crashed one stays an orphan.
  auto rows = ctx->meta->read_index("k", 0, 0, 100);
  ASSERT_TRUE(rows && rows->size() > 2);
  int64_t cut = (*rows)[1].base_offset;
  ASSERT_TRUE(ctx->meta->delete_records("k", 0, cut));
  before = fetch_all("k", 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));

  // The restart: a new process (owner), sweeping every pass with a short grace.
  compaction::compactor c(
      ctx->meta, ctx->store,
      options({{"object.gc.grace.ms", "400"}, {"object.sweep.interval.ms", "1"}}, "restarted"));
  c.run_pass();  // compacts; the sweep sees the orphans for the first time
  EXPECT_TRUE(all_rows_in_segments("k", 0));
  EXPECT_EQ(fetch_all("k", 0), before);
  EXPECT_TRUE(ctx->store->head(crashed->segment_key));  // not yet: within the grace period
  EXPECT_TRUE(ctx->store->head(orphan_ingest));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  c.run_pass();
  EXPECT_FALSE(ctx->store->head(crashed->segment_key)) << "orphan segment not swept";
  EXPECT_FALSE(ctx->store->head(orphan_ingest)) << "orphan ingest object not swept";
  expect_referenced_objects_exist("k", 1);
  EXPECT_EQ(fetch_all("k", 0), before);
  EXPECT_EQ(segment_records("k", 0), decode(before));
  // Nothing registered was touched: every object left is known to the store.
  for (const auto& family : {"ingest/", "topics/"}) {
    auto keys = keys_under(family);
    auto known = ctx->meta->registered_objects(keys);
    ASSERT_TRUE(known);
    EXPECT_EQ(known->size(), keys.size()) << family;
  }
}

TEST_P(compaction_retention_test, recompression_to_zstd_keeps_records_identical) {
  const int64_t ts = wall_ms() - 3600000;
  ASSERT_TRUE(ctx->meta->create_topic(
      "z", 1, {{"segment.bytes", "4000"}, {"archive.compression.type", "zstd"}}));
  ASSERT_TRUE(ctx->meta->create_topic("l", 1, {{"compression.type", "lz4"}}));
  produce("z", 1, 10, ts);
  produce("l", 1, 3, ts);
  std::set<int> codecs_before;
  auto before = decode(fetch_all("z", 0), &codecs_before);
  EXPECT_GT(codecs_before.size(), 2u);
  auto before_l = decode(fetch_all("l", 0));
  compaction::compactor c(ctx->meta, ctx->store, options({}));
  c.run_pass();
  ASSERT_TRUE(all_rows_in_segments("z", 0));
  std::set<int> codecs_after;
  EXPECT_EQ(decode(fetch_all("z", 0), &codecs_after), before);
  EXPECT_EQ(codecs_after, std::set<int>{4});
  std::set<int> seg_codecs;
  EXPECT_EQ(segment_records("z", 0, &seg_codecs), before);
  EXPECT_EQ(seg_codecs, std::set<int>{4});
  // compression.type=lz4 (no archive codec): segments in lz4.
  ASSERT_TRUE(all_rows_in_segments("l", 0));
  std::set<int> codecs_l;
  EXPECT_EQ(decode(fetch_all("l", 0), &codecs_l), before_l);
  EXPECT_EQ(codecs_l, std::set<int>{3});
}

TEST_P(compaction_retention_test, fetches_identical_before_during_and_after_compaction) {
  const int64_t ts = wall_ms() - 3600000;
  ASSERT_TRUE(ctx->meta->create_topic("f", 1, {{"segment.bytes", "1500"}}));
  produce("f", 1, 16, ts);
  const auto before = fetch_all("f", 0);
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, mismatches{0};
  std::thread reader([&] {
    while (!done.load()) {
      if (fetch_all("f", 0) != before) ++mismatches;
      ++reads;
    }
  });
  // Several passes, segments cut small, ingest objects collected after a short grace while the
  // reader runs: every read must return the same bytes.
  compaction::compactor c(ctx->meta, ctx->store, options({{"object.gc.grace.ms", "300"}}));
  for (int i = 0; i < 3; ++i) {
    c.run_pass();
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  c.run_pass();  // collects the ingest objects
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  done = true;
  reader.join();
  EXPECT_GT(reads.load(), 3);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_TRUE(all_rows_in_segments("f", 0));
  EXPECT_TRUE(keys_under("ingest/").empty());
  EXPECT_EQ(fetch_all("f", 0), before);
}

TEST_P(compaction_retention_test, delete_topic_removes_every_object_eventually) {
  const int64_t ts = wall_ms() - 3600000;
  ASSERT_TRUE(ctx->meta->create_topic("d", 2, {{"segment.bytes", "2000"}}));
  produce("d", 2, 6, ts);
  compaction::compactor c(ctx->meta, ctx->store, options({{"object.gc.grace.ms", "0"}}));
  c.run_pass();
  ASSERT_FALSE(keys_under("topics/d/").empty());
  produce("d", 2, 2, ts);  // some data still in ingest objects
  ASSERT_FALSE(keys_under("ingest/").empty());
  ASSERT_TRUE(ctx->meta->delete_topic("d"));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  c.run_pass();
  EXPECT_TRUE(keys_under("topics/").empty());
  EXPECT_TRUE(keys_under("ingest/").empty());
}

TEST_P(compaction_retention_test, clean_stop_hands_partitions_over_at_once) {
  ASSERT_TRUE(ctx->meta->create_topic("s", 2, {}));
  compaction::compactor c(ctx->meta, ctx->store, options({}, "first"));
  c.run_pass();
  for (const char* name : {"compact/s/0", "compact/s/1", "sweep/objects"}) {
    auto l = ctx->meta->acquire_lease(name, "second", 60000);
    ASSERT_TRUE(l) << l.message();
    EXPECT_EQ(l->owner, "first") << name;  // held (TTL 60 s)
  }
  c.stop();
  for (const char* name : {"compact/s/0", "compact/s/1", "sweep/objects"}) {
    auto l = ctx->meta->acquire_lease(name, "second", 60000);
    ASSERT_TRUE(l) << l.message();
    EXPECT_EQ(l->owner, "second") << name;  // released by the clean stop
  }
}

INSTANTIATE_TEST_SUITE_P(backends, compaction_retention_test, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("postgres_s3")
                                             : std::string("sqlite_local");
                         });

}  // namespace
}  // namespace sh::broker
