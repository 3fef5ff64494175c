// One compaction pass against the real embedded stores: data produced through the ingest writer,
// compacted into a segment, read back byte-identical through the fetch path; ingest objects are
// deleted only after the grace period.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <set>

#include "broker_context.h"
#include "compaction/compactor.h"
#include "ingest_writer.h"
#include "log_reader.h"
#include "sh/kafka/record_batch.h"
#include "sh/storage/segment.h"
#include "test_batches.h"
#include "test_context.h"

namespace sh::broker {
namespace {

namespace fs = std::filesystem;

using testing::make_batch;

append_batch to_append(int32_t p, const std::vector<uint8_t>& bytes, int32_t count, int64_t ts) {
  append_batch a;
  a.topic = "t";
  a.partition = p;
  a.bytes = bytes;
  a.offset_count = count;
  a.first_timestamp = ts;
  a.max_timestamp = ts + count - 1;
  return a;
}

class compaction_pass_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = testing::fresh_test_dir("sh-compaction");
    broker_config cfg;
    cfg.num_blocking_threads = 1;
    ctx = testing::make_embedded_context(dir, cfg);
    ASSERT_TRUE(ctx);
    ASSERT_TRUE(ctx->meta->create_topic("t", 2, {}));
  }
  void TearDown() override {
    ctx.reset();
    fs::remove_all(dir);
  }

  void produce(int flushes, int64_t base_ts = 1000) {
    ingest_writer w(ctx->store, ctx->meta, "test-writer", 1 << 20, std::chrono::milliseconds(1),
                    {});
    w.start();
    for (int i = 0; i < flushes; ++i) {
      std::promise<std::vector<append_outcome>> p;
      auto f = p.get_future();
      int64_t ts = base_ts + i * 10;
      w.append({to_append(0, make_batch(3, ts), 3, ts), to_append(1, make_batch(2, ts), 2, ts),
                to_append(0, make_batch(4, ts + 5), 4, ts + 5)},
               [&p](std::vector<append_outcome> o) { p.set_value(std::move(o)); });
      for (const auto& o : f.get()) ASSERT_EQ(o.error, kafka::error_code::none);
    }
    w.stop();
  }

  std::vector<uint8_t> read(int32_t partition, int64_t offset) {
    auto r = read_partition(*ctx, "t", partition, offset, 1 << 30, true);
    EXPECT_EQ(r.error, kafka::error_code::none);
    return r.records;
  }

  metadata::lease_fence lease(int32_t partition) {
    auto l = ctx->meta->acquire_lease("compact/t/" + std::to_string(partition), "me", 60000);
    EXPECT_TRUE(l) << l.message();
    return l ? metadata::lease_fence{l->name, l->epoch} : metadata::lease_fence{};
  }

  fs::path dir;
  std::unique_ptr<broker_context> ctx;
};

TEST_F(compaction_pass_test, segment_reads_identical_and_gc_waits_for_grace) {
  produce(6);  // partition 0: offsets 0..41 in 6 rows, one per ingest object
  auto rows = ctx->meta->read_index("t", 0, 0, 100);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 6u);  // one row per (object, partition)
  std::set<std::string> ingest_keys;
  for (const auto& e : *rows) ingest_keys.insert(e.object_key);
  ASSERT_EQ(ingest_keys.size(), 6u);
  std::vector<std::vector<uint8_t>> before;
  for (int64_t off : {0, 3, 5, 20, 41}) before.push_back(read(0, off));
  auto before_p1 = read(1, 0);

  compaction::compaction_options opts;
  opts.writer_id = "test";
  opts.prefix = "arch";
  opts.segment_ms = 600000;
  opts.now_ms = 1000;
  opts.segment_bytes = 1 << 30;
  auto none = compaction::compact_partition_once(*ctx->meta, *ctx->store, "t", 0, lease(0), opts);
  ASSERT_TRUE(none) << none.message();
  EXPECT_FALSE(none->compacted);  // neither big nor old enough yet

  opts.segment_bytes = 1;  // tiny: the run ends as soon as it reaches one row
  auto one = compaction::compact_partition_once(*ctx->meta, *ctx->store, "t", 0, lease(0), opts);
  ASSERT_TRUE(one) << one.message();
  ASSERT_TRUE(one->compacted);
  EXPECT_EQ(one->first_offset, 0);
  EXPECT_EQ(one->last_offset, 6);
  // Old enough by segment.ms: the rest in one segment, several index rows into it.
  opts.segment_bytes = 1 << 30;
  opts.segment_ms = 1;
  opts.now_ms = 1'000'000;
  opts.index_row_bytes = 600;
  auto rest = compaction::compact_partition_once(*ctx->meta, *ctx->store, "t", 0, lease(0), opts);
  ASSERT_TRUE(rest) << rest.message();
  ASSERT_TRUE(rest->compacted);
  EXPECT_EQ(rest->first_offset, 7);
  EXPECT_EQ(rest->last_offset, 41);
  EXPECT_EQ(rest->segment_key, storage::segment_object_key("arch", "t", 0, 7));
  auto again = compaction::compact_partition_once(*ctx->meta, *ctx->store, "t", 0, lease(0), opts);
  ASSERT_TRUE(again) << again.message();
  EXPECT_FALSE(again->compacted);

  auto after_rows = ctx->meta->read_index("t", 0, 0, 100);
  ASSERT_TRUE(after_rows);
  EXPECT_GT(after_rows->size(), 2u);
  for (const auto& e : *after_rows) EXPECT_EQ(e.object_key.substr(e.object_key.size() - 4), ".seg");
  size_t i = 0;
  for (int64_t off : {0, 3, 5, 20, 41}) EXPECT_EQ(read(0, off), before[i++]) << "offset " << off;

  // The segment parses with storage's reader and holds real offsets.
  auto seg = ctx->store->get(rest->segment_key);
  ASSERT_TRUE(seg);
  auto info = storage::parse_segment_footer(*seg, seg->size());
  ASSERT_TRUE(info) << info.message();
  EXPECT_EQ(info->base_offset, 7);
  EXPECT_EQ(info->last_offset, 41);
  EXPECT_EQ(info->record_count, 35);
  EXPECT_EQ(info->topic, "t");
  ASSERT_LE(info->data_length, seg->size());
  auto ok =
      storage::verify_segment_data(std::span<const uint8_t>(seg->data(), info->data_length), *info);
  ASSERT_TRUE(ok) << ok.message();
  EXPECT_EQ(info->batch_count, 10u);  // two batches per produced row

  // Partition 1 still references every ingest object: nothing to collect.
  auto gc = compaction::collect_garbage(*ctx->meta, *ctx->store, 10'000'000'000'000, 300000);
  ASSERT_TRUE(gc) << gc.message();
  EXPECT_EQ(*gc, 0u);
  auto p1 = compaction::compact_partition_once(*ctx->meta, *ctx->store, "t", 1, lease(1), opts);
  ASSERT_TRUE(p1 && p1->compacted) << p1.message();
  EXPECT_EQ(read(1, 0), before_p1);

  // Unreferenced now, but within the grace period (the store stamps wall-clock time).
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  gc = compaction::collect_garbage(*ctx->meta, *ctx->store, now, 300000);
  ASSERT_TRUE(gc) << gc.message();
  EXPECT_EQ(*gc, 0u);
  for (const auto& key : ingest_keys) EXPECT_TRUE(ctx->store->head(key)) << key;
  gc = compaction::collect_garbage(*ctx->meta, *ctx->store, now + 600000, 300000);
  ASSERT_TRUE(gc) << gc.message();
  EXPECT_EQ(*gc, ingest_keys.size());
  for (const auto& key : ingest_keys) EXPECT_FALSE(ctx->store->head(key)) << key;
  EXPECT_TRUE(ctx->store->head(rest->segment_key));
  i = 0;
  for (int64_t off : {0, 3, 5, 20, 41}) EXPECT_EQ(read(0, off), before[i++]) << "offset " << off;
  EXPECT_EQ(read(1, 0), before_p1);
}

TEST_F(compaction_pass_test, background_compactor_uses_topic_configs_and_leases) {
  // Record times now: segment.ms (by record timestamp, like Kafka's roll) is not yet due.
  produce(3, std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count());
  auto before = read(0, 0);
  auto before_p1 = read(1, 0);
  // Another broker holds partition 1's compaction lease: this one leaves it alone.
  ASSERT_TRUE(ctx->meta->acquire_lease("compact/t/1", "other-broker", 60000));
  compaction::compactor idle(ctx->meta, ctx->store,
                             compaction::make_compactor_options(broker_config{}, "me"));
  idle.run_pass();  // default segment.bytes / segment.ms: nothing is due
  auto rows = ctx->meta->read_index("t", 0, 0, 100);
  ASSERT_TRUE(rows);
  for (const auto& e : *rows) EXPECT_NE(e.object_key.substr(e.object_key.size() - 4), ".seg");

  ASSERT_TRUE(ctx->meta->set_topic_configs("t", {{"segment.bytes", "1"}}));
  auto options = compaction::make_compactor_options(broker_config{}, "me");
  // The broker drops its index cache's rows of a partition whose rows were swapped.
  std::vector<std::pair<std::string, int32_t>> changed;
  options.on_partition_changed = [&](const std::string& topic, int32_t partition) {
    changed.emplace_back(topic, partition);
  };
  compaction::compactor c(ctx->meta, ctx->store, std::move(options));
  c.start();
  c.run_pass();
  c.stop();
  rows = ctx->meta->read_index("t", 0, 0, 100);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 3u);  // one segment per ingest row (segment.bytes = 1)
  ASSERT_FALSE(changed.empty());
  for (const auto& [topic, partition] : changed) {
    EXPECT_EQ(topic, "t");
    EXPECT_EQ(partition, 0);  // partition 1 belongs to the other broker's compactor
  }
  for (const auto& e : *rows) EXPECT_EQ(e.object_key.substr(e.object_key.size() - 4), ".seg");
  auto p1 = ctx->meta->read_index("t", 1, 0, 100);
  ASSERT_TRUE(p1);
  for (const auto& e : *p1) EXPECT_NE(e.object_key.substr(e.object_key.size() - 4), ".seg");
  EXPECT_EQ(read(0, 0), before);
  EXPECT_EQ(read(1, 0), before_p1);
}

}  // namespace
}  // namespace sh::broker
