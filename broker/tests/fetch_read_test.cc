// The fetch read path: reads through a started index cache see every acknowledged produce at
// once; batches come back as views into the read cache's buffers (no copy) with base offsets
// patched on the wire; the gathered Fetch body is byte-identical to the generated encoder's for
// every served version (v4-v12).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "broker_context.h"
#include "log_reader.h"
#include "sh/kafka/record_batch.h"
#include "test_batches.h"
#include "test_context.h"

namespace sh::broker {

// Defined in handlers/fetch.cc.
std::vector<uint8_t> fetch_body_gathered_for_test(const std::string& topic, int32_t partition,
                                                  partition_chunks read, int16_t version);
std::vector<uint8_t> fetch_body_generated_for_test(const std::string& topic, int32_t partition,
                                                   partition_chunks read, int16_t version);

namespace {

namespace fs = std::filesystem;

class fetch_read_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = testing::fresh_test_dir("sh-fetch-read");
    broker_config cfg;
    cfg.num_blocking_threads = 1;
    ctx = testing::make_embedded_context(dir, cfg);
    ASSERT_TRUE(ctx);
    ASSERT_TRUE(ctx->meta->create_topic("t", 2, {}));
    ctx->index->start({});
  }
  void TearDown() override {
    ctx.reset();
    fs::remove_all(dir);
  }
  // Commits one batch of `records` to partition p as the write path does (object PUT, then one
  // metadata commit; the store notifies the started index cache before returning, as in the
  // broker); returns its acknowledged base offset. The stored batch keeps baseOffset 0.
  int64_t produce(int32_t p, int records) { return produce_via(*ctx->meta, p, records); }
  int64_t produce_via(metadata::metadata_store& meta, int32_t p, int records) {
    const auto bytes = testing::make_batch(records, 1000);
    const std::string key = "objects/" + std::to_string(next_object++);
    EXPECT_TRUE(ctx->store->put(key, bytes));
    metadata::object_commit c;
    c.object_key = key;
    c.object_size = bytes.size();
    metadata::range_commit r;
    r.topic = "t";
    r.partition = p;
    r.byte_offset = 0;
    r.byte_length = bytes.size();
    r.max_timestamp = 1000 + records - 1;
    metadata::batch_commit b;
    b.offset_count = records;
    b.max_timestamp = r.max_timestamp;
    r.batches.push_back(b);
    c.ranges.push_back(r);
    auto out = meta.commit_object(c);
    EXPECT_TRUE(out && out->size() == 1);
    return out && out->size() == 1 ? (*out)[0].base_offset : -1;
  }

  fs::path dir;
  std::unique_ptr<broker_context> ctx;
  int next_object = 0;
};

TEST_F(fetch_read_test, acknowledged_batches_are_visible_at_once_and_served_without_copies) {
  int64_t expect = 0;
  for (int i = 0; i < 30; ++i) {
    const int64_t base = produce(0, 1 + i % 4);
    ASSERT_EQ(base, expect);
    expect += 1 + i % 4;
    // The ack is out: a fetch at the new batch's offset must return it (never a stale state).
    auto r = read_partition_chunks(*ctx, "t", 0, base, 1 << 20, true);
    ASSERT_EQ(r.error, kafka::error_code::none);
    ASSERT_EQ(r.high_watermark, expect);
    ASSERT_EQ(r.chunks.size(), 1u);
    EXPECT_TRUE(r.chunks[0].patch || base == 0);
    EXPECT_EQ(r.chunks[0].base_offset, base);
    // A view into the read cache's own buffer, not a copy.
    auto cached = ctx->index->read_index("t", 0, base, 1);
    ASSERT_TRUE(cached && cached->size() == 1);
    auto bytes = ctx->cache->get_range((*cached)[0].object_key, (*cached)[0].byte_offset,
                                       (*cached)[0].byte_length);
    ASSERT_TRUE(bytes);
    EXPECT_EQ(r.chunks[0].owner.get(), bytes->get());
    // Above the high watermark is out of range, at it is empty.
    EXPECT_EQ(read_partition_chunks(*ctx, "t", 0, expect + 1, 1 << 20, true).error,
              kafka::error_code::offset_out_of_range);
    EXPECT_EQ(read_partition_chunks(*ctx, "t", 0, expect, 1 << 20, true).bytes, 0u);
  }
  // The whole partition, copied and patched, walks as contiguous offsets.
  auto all = read_partition(*ctx, "t", 0, 0, 1 << 30, true);
  ASSERT_EQ(all.error, kafka::error_code::none);
  auto batches = kafka::split_batches(all.records);
  ASSERT_TRUE(batches);
  int64_t next = 0;
  for (const auto& b : *batches) {
    EXPECT_EQ(b.header.base_offset, next);
    next = b.header.last_offset() + 1;
  }
  EXPECT_EQ(next, expect);
  auto st = ctx->index->stats();
  EXPECT_GT(st.index_hits, 0u);
  EXPECT_TRUE(st.notifications_active);
}

// A commit this broker was not told about yet (another broker's, its notification in flight):
// a fetch above the cached high watermark must ask the store, never answer OFFSET_OUT_OF_RANGE
// (the client would reset its position).
TEST_F(fetch_read_test, fetch_above_a_stale_cached_watermark_asks_the_store) {
  metadata::index_cache_options opts;
  opts.state_ttl = std::chrono::minutes(1);
  opts.safety_poll_interval = std::chrono::milliseconds(0);
  ctx->index->stop();
  ctx->index = std::make_unique<metadata::index_cache>(ctx->meta, opts);
  ctx->index->start({});
  ASSERT_EQ(produce(0, 5), 0);
  ASSERT_EQ(read_partition_chunks(*ctx, "t", 0, 0, 1 << 20, true).high_watermark, 5);
  // Another store object on the same database: its commit is not notified to this cache.
  auto other = metadata::open_metadata_store((dir / "meta.db").string());
  ASSERT_TRUE(other) << other.message();
  ASSERT_EQ(produce_via(**other, 0, 3), 5);
  EXPECT_EQ(ctx->index->get_partition("t", 0)->high_watermark, 5);  // still the cached state
  auto r = read_partition_chunks(*ctx, "t", 0, 7, 1 << 20, true);
  EXPECT_EQ(r.error, kafka::error_code::none);
  EXPECT_EQ(r.high_watermark, 8);
  ASSERT_EQ(r.chunks.size(), 1u);
  EXPECT_EQ(r.chunks[0].base_offset, 5);
}

TEST_F(fetch_read_test, gathered_fetch_body_equals_the_generated_encoding) {
  for (int i = 0; i < 5; ++i) produce(1, 2 + i);
  auto r = read_partition_chunks(*ctx, "t", 1, 3, 1 << 20, true);
  ASSERT_EQ(r.error, kafka::error_code::none);
  ASSERT_GE(r.chunks.size(), 3u);
  for (int16_t v = 4; v <= 12; ++v) {
    EXPECT_EQ(fetch_body_gathered_for_test("t", 1, r, v),
              fetch_body_generated_for_test("t", 1, r, v))
        << "version " << v;
  }
  partition_chunks empty;
  empty.error = kafka::error_code::offset_out_of_range;
  for (int16_t v = 4; v <= 12; ++v) {
    EXPECT_EQ(fetch_body_gathered_for_test("t", 1, empty, v),
              fetch_body_generated_for_test("t", 1, empty, v))
        << "version " << v;
  }
}

}  // namespace
}  // namespace sh::broker
