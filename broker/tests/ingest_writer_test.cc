// The write path against the real embedded stores: appends become one ingest object per flush,
// committed in one transaction, with offsets assigned in append order.
#include "ingest_writer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>

#include "sh/kafka/record_batch.h"
#include "test_batches.h"

namespace sh::broker {
namespace {

namespace fs = std::filesystem;

using testing::make_batch;

class ingest_writer_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("sh-ingest-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto s = storage::open_object_store((dir / "objects").string());
    ASSERT_TRUE(s) << s.message();
    store = std::move(*s);
    auto m = metadata::open_metadata_store((dir / "meta.db").string());
    ASSERT_TRUE(m) << m.message();
    meta = std::move(*m);
    ASSERT_TRUE(meta->create_topic("t", 2, {}));
  }
  void TearDown() override { fs::remove_all(dir); }

  std::vector<append_outcome> append_and_wait(ingest_writer& w, std::vector<append_batch> b) {
    std::promise<std::vector<append_outcome>> p;
    auto f = p.get_future();
    w.append(b, [&p](std::vector<append_outcome> o) { p.set_value(std::move(o)); });
    return f.get();
  }

  fs::path dir;
  std::shared_ptr<storage::object_store> store;
  std::shared_ptr<metadata::metadata_store> meta;
};

append_batch to_append(const std::string& topic, int32_t p, const std::vector<uint8_t>& bytes,
                       int32_t count) {
  append_batch a;
  a.topic = topic;
  a.partition = p;
  a.bytes = bytes;
  a.offset_count = count;
  a.first_timestamp = 1000;
  a.max_timestamp = 1000 + count - 1;
  return a;
}

TEST_F(ingest_writer_test, offsets_follow_append_order_across_flushes) {
  int commits = 0;
  ingest_writer w(store, meta, "test-writer", 1 << 20, std::chrono::milliseconds(1),
                  [&] { ++commits; });
  w.start();
  auto b3 = make_batch(3, 1000);
  auto b5 = make_batch(5, 2000);
  auto o1 = append_and_wait(
      w, {to_append("t", 0, b3, 3), to_append("t", 1, b5, 5), to_append("t", 0, b5, 5)});
  ASSERT_EQ(o1.size(), 3u);
  EXPECT_EQ(o1[0].base_offset, 0);
  EXPECT_EQ(o1[1].base_offset, 0);
  EXPECT_EQ(o1[2].base_offset, 3);  // after the first batch of partition 0
  auto o2 = append_and_wait(w, {to_append("t", 0, b3, 3)});
  EXPECT_EQ(o2[0].error, kafka::error_code::none);
  EXPECT_EQ(o2[0].base_offset, 8);
  w.stop();
  EXPECT_GE(commits, 2);

  auto st = meta->get_partition("t", 0);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->high_watermark, 11);
  auto idx = meta->read_index("t", 0, 0, 100);
  ASSERT_TRUE(idx);
  ASSERT_EQ(idx->size(), 2u);  // one entry per (object, partition) range
  auto bytes = store->get_range((*idx)[0].object_key, (*idx)[0].byte_offset, (*idx)[0].byte_length);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(bytes->size(), b3.size() + b5.size());
}

TEST_F(ingest_writer_test, unknown_partition_fails_only_that_batch) {
  ingest_writer w(store, meta, "test-writer", 1 << 20, std::chrono::milliseconds(1), {});
  w.start();
  auto b = make_batch(2, 1);
  auto o = append_and_wait(w, {to_append("t", 0, b, 2), to_append("t", 7, b, 2)});
  EXPECT_EQ(o[0].error, kafka::error_code::none);
  EXPECT_EQ(o[1].error, kafka::error_code::unknown_topic_or_partition);
}

TEST_F(ingest_writer_test, stop_commits_what_is_buffered) {
  // A long interval: only stop() can flush it.
  ingest_writer w(store, meta, "test-writer", 1 << 30, std::chrono::hours(1), {});
  w.start();
  auto b = make_batch(4, 1);
  std::promise<std::vector<append_outcome>> p;
  w.append({to_append("t", 1, b, 4)},
           [&p](std::vector<append_outcome> o) { p.set_value(std::move(o)); });
  w.stop();
  auto o = p.get_future().get();
  EXPECT_EQ(o[0].error, kafka::error_code::none);
  EXPECT_EQ(meta->get_partition("t", 1)->high_watermark, 4);
}

TEST_F(ingest_writer_test, flush_bytes_triggers_flush_before_interval) {
  ingest_writer w(store, meta, "test-writer", 100, std::chrono::hours(1), {});
  w.start();
  auto b = make_batch(4, 1);  // > 100 bytes
  auto o = append_and_wait(w, {to_append("t", 1, b, 4)});
  EXPECT_EQ(o[0].base_offset, 0);
}

TEST_F(ingest_writer_test, idempotent_duplicate_gets_original_offsets_beside_plain_batches) {
  ingest_writer w(store, meta, "test-writer", 1 << 20, std::chrono::milliseconds(1), {});
  w.start();
  auto id = meta->init_producer_id("");
  ASSERT_TRUE(id);
  auto plain = make_batch(2, 1);
  auto idem = make_batch(3, 1);
  auto as_idempotent = [&](int32_t seq) {
    auto a = to_append("t", 0, idem, 3);
    a.producer_id = id->producer_id;
    a.producer_epoch = id->producer_epoch;
    a.base_sequence = seq;
    return a;
  };
  // One object: plain, idempotent, plain -> three ranges of one partition.
  auto o1 = append_and_wait(
      w, {to_append("t", 0, plain, 2), as_idempotent(0), to_append("t", 0, plain, 2)});
  EXPECT_EQ(o1[0].base_offset, 0);
  EXPECT_EQ(o1[1].base_offset, 2);
  EXPECT_EQ(o1[2].base_offset, 5);
  // A retry of the idempotent batch beside a new plain batch: original offsets, nothing
  // appended twice.
  auto o2 = append_and_wait(w, {to_append("t", 0, plain, 2), as_idempotent(0)});
  EXPECT_EQ(o2[0].error, kafka::error_code::none);
  EXPECT_EQ(o2[0].base_offset, 7);
  EXPECT_EQ(o2[1].error, kafka::error_code::none);
  EXPECT_EQ(o2[1].base_offset, 2);
  // A gap in sequence numbers is refused.
  auto o3 = append_and_wait(w, {as_idempotent(7)});
  EXPECT_EQ(o3[0].error, kafka::error_code::out_of_order_sequence_number);
  EXPECT_EQ(meta->get_partition("t", 0)->high_watermark, 9);
}

}  // namespace
}  // namespace sh::broker
