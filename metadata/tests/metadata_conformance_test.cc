// Conformance suite: every metadata_store implementation must pass these tests unchanged.
// Parameterized over the harness factories in store_harness.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include "sh/metadata/metadata_store.h"
#include "store_harness.h"

namespace sh::metadata::testing {
namespace {

// prefix + number (appends: GCC 12 reports a false -Wrestrict for "literal" + std::string).
std::string numbered(std::string prefix, int64_t n) {
  prefix.append(std::to_string(n));
  return prefix;
}

batch_commit batch(int32_t count, int64_t max_ts = -1) {
  batch_commit b;
  b.offset_count = count;
  b.max_timestamp = max_ts;
  return b;
}

range_commit range(std::string topic, int32_t partition, uint64_t byte_offset, uint64_t byte_length,
                   std::vector<batch_commit> batches) {
  range_commit r;
  r.topic = std::move(topic);
  r.partition = partition;
  r.byte_offset = byte_offset;
  r.byte_length = byte_length;
  r.batches = std::move(batches);
  return r;
}

object_commit object(std::string key, uint64_t size, std::vector<range_commit> ranges) {
  object_commit c;
  c.object_key = std::move(key);
  c.object_size = size;
  c.ranges = std::move(ranges);
  return c;
}

class conformance : public ::testing::TestWithParam<harness_factory> {
 protected:
  void SetUp() override {
    _harness = GetParam().make();
    if (auto why = _harness->skip_reason(); !why.empty()) GTEST_SKIP() << why;
    reopen();
  }

  void reopen() {
    _store.reset();
    auto opened = _harness->open();
    ASSERT_TRUE(opened) << opened.message();
    _store = std::move(*opened);
  }

  metadata_store& store() { return *_store; }

  void create(const std::string& name, int32_t partitions) {
    auto t = store().create_topic(name, partitions, {});
    ASSERT_TRUE(t) << t.message();
  }

  std::vector<range_outcome> commit_ok(const object_commit& c) {
    auto r = store().commit_object(c);
    EXPECT_TRUE(r) << r.message();
    return r ? *r : std::vector<range_outcome>{};
  }

  int64_t hwm(const std::string& topic, int32_t partition) {
    auto p = store().get_partition(topic, partition);
    EXPECT_TRUE(p) << p.message();
    return p ? p->high_watermark : -1;
  }

  std::unique_ptr<store_harness> _harness;
  std::unique_ptr<metadata_store> _store;
};

void expect_ok(const range_outcome& o, int64_t base, int64_t last) {
  EXPECT_EQ(o.status, range_status::ok) << to_string(o.status);
  EXPECT_EQ(o.base_offset, base);
  EXPECT_EQ(o.last_offset, last);
}

// ---- topics ------------------------------------------------------------------------------

TEST_P(conformance, create_and_get_topic) {
  std::map<std::string, std::string> configs{{"retention.ms", "-1"}, {"cleanup.policy", "delete"}};
  auto created = store().create_topic("orders", 3, configs);
  ASSERT_TRUE(created) << created.message();
  EXPECT_EQ(created->name, "orders");
  EXPECT_EQ(created->partition_count, 3);
  EXPECT_EQ(created->configs, configs);
  EXPECT_GT(created->created_at_ms, 1600000000000);
  EXPECT_EQ(created->id[6] >> 4, 4) << "UUID version 4";
  EXPECT_EQ(created->id[8] >> 6, 2) << "RFC 4122 variant";

  auto got = store().get_topic("orders");
  ASSERT_TRUE(got) << got.message();
  ASSERT_TRUE(got->has_value());
  const topic_info& t = **got;
  EXPECT_EQ(t.name, "orders");
  EXPECT_EQ(t.id, created->id);
  EXPECT_EQ(t.partition_count, 3);
  EXPECT_EQ(t.configs, configs);
  EXPECT_EQ(t.created_at_ms, created->created_at_ms);

  auto missing = store().get_topic("nope");
  ASSERT_TRUE(missing) << missing.message();
  EXPECT_FALSE(missing->has_value());
}

TEST_P(conformance, duplicate_topic_is_refused) {
  create("dup", 1);
  auto again = store().create_topic("dup", 5, {{"a", "b"}});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.code(), errc::already_exists);
  auto t = store().get_topic("dup");
  ASSERT_TRUE(t && t->has_value());
  EXPECT_EQ((*t)->partition_count, 1);
  EXPECT_TRUE((*t)->configs.empty());
  auto all = store().list_topics();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 1u);
}

TEST_P(conformance, invalid_topics_are_refused) {
  for (std::string bad : {std::string(), std::string("."), std::string(".."), std::string("a b"),
                          std::string("a/b"), std::string("t\xc3\xbc"), std::string("a\0b", 3),
                          std::string(250, 'x'), std::string("a,b")}) {
    auto r = store().create_topic(bad, 1, {});
    ASSERT_FALSE(r) << "accepted '" << bad << "'";
    EXPECT_EQ(r.code(), errc::invalid_argument);
  }
  for (int32_t partitions : {0, -1, max_partition_count + 1}) {
    auto r = store().create_topic("p", partitions, {});
    ASSERT_FALSE(r) << partitions;
    EXPECT_EQ(r.code(), errc::invalid_argument);
  }
  auto empty_config = store().create_topic("p", 1, {{"", "x"}});
  ASSERT_FALSE(empty_config);
  EXPECT_EQ(empty_config.code(), errc::invalid_argument);

  auto all = store().list_topics();
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty());

  // The boundaries themselves are fine.
  create(std::string(249, 'x'), 1);
  create("Az09._-", 1);
  create("...", 1);
}

TEST_P(conformance, max_partition_count_is_accepted) {
  create("wide", max_partition_count);
  EXPECT_EQ(hwm("wide", max_partition_count - 1), 0);
  auto beyond = store().get_partition("wide", max_partition_count);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.code(), errc::not_found);
}

TEST_P(conformance, list_topics_is_ordered_and_complete) {
  auto none = store().list_topics();
  ASSERT_TRUE(none) << none.message();
  EXPECT_TRUE(none->empty());

  ASSERT_TRUE(store().create_topic("zeta", 2, {{"x", "1"}}));
  ASSERT_TRUE(store().create_topic("alpha", 1, {}));
  ASSERT_TRUE(store().create_topic("mid", 4, {{"a", "1"}, {"b", "2"}}));
  auto all = store().list_topics();
  ASSERT_TRUE(all) << all.message();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].name, "alpha");
  EXPECT_EQ((*all)[1].name, "mid");
  EXPECT_EQ((*all)[2].name, "zeta");
  EXPECT_EQ((*all)[1].partition_count, 4);
  EXPECT_EQ((*all)[1].configs, (std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ((*all)[2].configs, (std::map<std::string, std::string>{{"x", "1"}}));
  EXPECT_TRUE((*all)[0].configs.empty());
  std::set<topic_id> ids;
  for (const auto& t : *all) ids.insert(t.id);
  EXPECT_EQ(ids.size(), 3u) << "topic ids are unique";
}

TEST_P(conformance, new_partitions_are_empty) {
  create("t", 3);
  for (int32_t p = 0; p < 3; ++p) {
    auto s = store().get_partition("t", p);
    ASSERT_TRUE(s) << s.message();
    EXPECT_EQ(s->log_start_offset, 0);
    EXPECT_EQ(s->high_watermark, 0);
  }
  for (auto [topic, partition] : {std::pair<std::string, int32_t>{"t", 3}, {"t", -1}, {"u", 0}}) {
    auto s = store().get_partition(topic, partition);
    ASSERT_FALSE(s) << topic << "-" << partition;
    EXPECT_EQ(s.code(), errc::not_found);
  }
}

// ---- commits -----------------------------------------------------------------------------

TEST_P(conformance, commit_assigns_contiguous_offsets) {
  create("a", 2);
  create("b", 1);
  auto first =
      commit_ok(object("obj-1", 1000,
                       {range("a", 0, 0, 100, {batch(3), batch(2)}),
                        range("b", 0, 100, 50, {batch(1)}), range("a", 1, 150, 200, {batch(4)})}));
  ASSERT_EQ(first.size(), 3u);
  expect_ok(first[0], 0, 4);
  expect_ok(first[1], 0, 0);
  expect_ok(first[2], 0, 3);

  auto second = commit_ok(object("obj-2", 10, {range("a", 0, 0, 10, {batch(1)})}));
  ASSERT_EQ(second.size(), 1u);
  expect_ok(second[0], 5, 5);

  auto third = commit_ok(
      object("obj-3", 10, {range("b", 0, 0, 5, {batch(7)}), range("a", 1, 5, 5, {batch(2)})}));
  ASSERT_EQ(third.size(), 2u);
  expect_ok(third[0], 1, 7);
  expect_ok(third[1], 4, 5);

  EXPECT_EQ(hwm("a", 0), 6);
  EXPECT_EQ(hwm("a", 1), 6);
  EXPECT_EQ(hwm("b", 0), 8);
}

TEST_P(conformance, outcomes_follow_request_order) {
  create("a", 1);
  create("b", 2);
  // Requested in the reverse of the lock order, with two ranges of a-0.
  auto out =
      commit_ok(object("obj", 100,
                       {range("b", 1, 0, 10, {batch(1)}), range("a", 0, 10, 10, {batch(2)}),
                        range("b", 0, 20, 10, {batch(3)}), range("a", 0, 30, 10, {batch(4)})}));
  ASSERT_EQ(out.size(), 4u);
  expect_ok(out[0], 0, 0);
  expect_ok(out[1], 0, 1);  // first a-0 range in the request gets the lower offsets
  expect_ok(out[2], 0, 2);
  expect_ok(out[3], 2, 5);
  EXPECT_EQ(hwm("a", 0), 6);
}

TEST_P(conformance, unknown_topic_or_partition_does_not_block_others) {
  create("a", 2);
  auto out =
      commit_ok(object("obj", 100,
                       {range("nope", 0, 0, 10, {batch(1)}), range("a", 2, 10, 10, {batch(1)}),
                        range("a", -1, 20, 10, {batch(1)}), range("a", 1, 30, 10, {batch(5)}),
                        range("bad name!", 0, 40, 10, {batch(1)})}));
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0].status, range_status::unknown_topic_or_partition);
  EXPECT_EQ(out[1].status, range_status::unknown_topic_or_partition);
  EXPECT_EQ(out[2].status, range_status::unknown_topic_or_partition);
  expect_ok(out[3], 0, 4);
  EXPECT_EQ(out[4].status, range_status::unknown_topic_or_partition);
  EXPECT_EQ(out[0].base_offset, -1);
  EXPECT_EQ(hwm("a", 1), 5);
  EXPECT_EQ(hwm("a", 0), 0);

  // A commit where nothing is known still succeeds (the object is registered, unreferenced).
  auto none = commit_ok(object("obj-none", 10, {range("nope", 0, 0, 10, {batch(1)})}));
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].status, range_status::unknown_topic_or_partition);
  // An object without ranges too.
  EXPECT_TRUE(commit_ok(object("obj-empty", 0, {})).empty());
}

TEST_P(conformance, malformed_commits_are_refused_whole) {
  create("a", 1);
  std::vector<object_commit> bad = {
      object("", 10, {range("a", 0, 0, 10, {batch(1)})}),
      object(std::string(max_object_key_length + 1, 'k'), 10, {range("a", 0, 0, 10, {batch(1)})}),
      object("k", 10, {range("a", 0, 5, 6, {batch(1)})}),             // past the end
      object("k", 10, {range("a", 0, 0, 0, {batch(1)})}),             // empty range
      object("k", 10, {range("a", 0, UINT64_MAX, 2, {batch(1)})}),    // offset overflow
      object("k", 10, {range("a", 0, 1, UINT64_MAX, {batch(1)})}),    // length overflow
      object("k", 10, {range("a", 0, 0, 10, {})}),                    // no batches
      object("k", 10, {range("a", 0, 0, 10, {batch(1), batch(0)})}),  // empty batch
      object("k", 10, {range("a", 0, 0, 10, {batch(-3)})}),
      object("k", UINT64_MAX, {range("a", 0, 0, 10, {batch(1)})}),  // size beyond int64
      // A good range before a bad one must not be committed either.
      object("k", 10, {range("a", 0, 0, 5, {batch(1)}), range("a", 0, 5, 6, {batch(1)})}),
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    auto r = store().commit_object(bad[i]);
    ASSERT_FALSE(r) << "case " << i;
    EXPECT_EQ(r.code(), errc::invalid_argument) << "case " << i << ": " << r.message();
  }
  EXPECT_EQ(hwm("a", 0), 0);
  // The key "k" was never registered.
  auto ok = commit_ok(object("k", 10, {range("a", 0, 0, 10, {batch(2)})}));
  ASSERT_EQ(ok.size(), 1u);
  expect_ok(ok[0], 0, 1);
}

TEST_P(conformance, retried_commit_returns_recorded_outcomes) {
  create("a", 2);
  auto c = object("obj-retry", 100,
                  {range("a", 1, 0, 10, {batch(2)}), range("zz", 0, 10, 10, {batch(1)}),
                   range("a", 0, 20, 10, {batch(3)})});
  commit_ok(object("before", 10, {range("a", 0, 0, 10, {batch(4)})}));
  auto first = commit_ok(c);
  auto again = commit_ok(c);
  ASSERT_EQ(first.size(), 3u);
  ASSERT_EQ(again.size(), 3u);
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(again[i].status, first[i].status) << i;
    EXPECT_EQ(again[i].base_offset, first[i].base_offset) << i;
    EXPECT_EQ(again[i].last_offset, first[i].last_offset) << i;
  }
  expect_ok(again[0], 0, 1);
  EXPECT_EQ(again[1].status, range_status::unknown_topic_or_partition);
  expect_ok(again[2], 4, 6);
  EXPECT_EQ(hwm("a", 0), 7);
  EXPECT_EQ(hwm("a", 1), 2);

  auto other_size = c;
  other_size.object_size = 101;
  auto r = store().commit_object(other_size);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::conflict);
  EXPECT_EQ(hwm("a", 0), 7);
}

// ---- idempotent producers -------------------------------------------------------------------

batch_commit idem(int64_t pid, int16_t epoch, int32_t seq, int32_t count) {
  batch_commit b;
  b.offset_count = count;
  b.producer_id = pid;
  b.producer_epoch = epoch;
  b.base_sequence = seq;
  return b;
}

// One object with one range per batch, all for partition p of topic "i".
object_commit idem_object(const std::string& key, int32_t p, std::vector<batch_commit> batches) {
  object_commit c;
  c.object_key = key;
  c.object_size = 10 * batches.size();
  for (size_t k = 0; k < batches.size(); ++k) {
    c.ranges.push_back(range("i", p, 10 * k, 10, {batches[k]}));
  }
  return c;
}

void expect_status(const range_outcome& o, range_status s) {
  EXPECT_EQ(o.status, s) << to_string(o.status) << " != " << to_string(s);
}

TEST_P(conformance, idempotent_batches_in_sequence_are_accepted) {
  create("i", 2);
  auto a = commit_ok(idem_object("a", 0, {idem(7, 0, 0, 3), idem(7, 0, 3, 2)}));
  ASSERT_EQ(a.size(), 2u);
  expect_ok(a[0], 0, 2);
  expect_ok(a[1], 3, 4);
  // Non-idempotent batches mix freely; another producer has its own sequence.
  auto b =
      commit_ok(object("b", 30,
                       {range("i", 0, 0, 10, {batch(1)}), range("i", 0, 10, 10, {idem(8, 0, 0, 1)}),
                        range("i", 0, 20, 10, {idem(7, 0, 5, 1)})}));
  ASSERT_EQ(b.size(), 3u);
  expect_ok(b[0], 5, 5);
  expect_ok(b[1], 6, 6);
  expect_ok(b[2], 7, 7);
  // Sequences are per partition.
  auto c = commit_ok(idem_object("c", 1, {idem(7, 0, 0, 1)}));
  expect_ok(c[0], 0, 0);
  // A producer without state may start anywhere (its state may have expired).
  auto d = commit_ok(idem_object("d", 1, {idem(9, 3, 1000, 2)}));
  expect_ok(d[0], 1, 2);
  // Several batches of one producer in one range are checked one after the other.
  auto e = commit_ok(
      object("e", 10, {range("i", 1, 0, 10, {idem(9, 3, 1002, 1), idem(9, 3, 1003, 4)})}));
  expect_ok(e[0], 3, 7);
  auto e_gap = commit_ok(
      object("e2", 10, {range("i", 1, 0, 10, {idem(9, 3, 1008, 1), idem(9, 3, 1010, 1)})}));
  expect_status(e_gap[0], range_status::out_of_order_sequence);
}

TEST_P(conformance, duplicate_batches_get_their_original_offsets) {
  create("i", 1);
  commit_ok(idem_object("a", 0, {idem(7, 0, 0, 3), idem(7, 0, 3, 2)}));
  commit_ok(object("x", 10, {range("i", 0, 0, 10, {batch(4)})}));  // offsets 5..8
  auto dup = commit_ok(idem_object("retry", 0, {idem(7, 0, 0, 3), idem(7, 0, 3, 2)}));
  ASSERT_EQ(dup.size(), 2u);
  EXPECT_EQ(dup[0].status, range_status::duplicate_sequence);
  EXPECT_EQ(dup[0].base_offset, 0);
  EXPECT_EQ(dup[0].last_offset, 2);
  EXPECT_EQ(dup[1].status, range_status::duplicate_sequence);
  EXPECT_EQ(dup[1].base_offset, 3);
  EXPECT_EQ(dup[1].last_offset, 4);
  EXPECT_EQ(hwm("i", 0), 9) << "duplicates add nothing";
  auto idx = store().read_index("i", 0, 0, 100);
  ASSERT_TRUE(idx);
  EXPECT_EQ(idx->size(), 3u);
  // The same batch twice in one commit: the second is a duplicate of the first.
  auto twice = commit_ok(idem_object("twice", 0, {idem(7, 0, 5, 1), idem(7, 0, 5, 1)}));
  expect_ok(twice[0], 9, 9);
  EXPECT_EQ(twice[1].status, range_status::duplicate_sequence);
  EXPECT_EQ(twice[1].base_offset, 9);
  // A retried object replays the same answers.
  auto replay = commit_ok(idem_object("retry", 0, {idem(7, 0, 0, 3), idem(7, 0, 3, 2)}));
  ASSERT_EQ(replay.size(), 2u);
  EXPECT_EQ(replay[0].status, range_status::duplicate_sequence);
  EXPECT_EQ(replay[0].base_offset, 0);
  EXPECT_EQ(replay[1].base_offset, 3);
}

TEST_P(conformance, only_the_last_five_batches_are_remembered) {
  create("i", 1);
  for (int32_t seq = 0; seq < 6; ++seq) {
    auto out = commit_ok(idem_object(numbered("o", seq), 0, {idem(7, 0, seq, 1)}));
    expect_ok(out[0], seq, seq);
  }
  auto oldest = commit_ok(idem_object("old", 0, {idem(7, 0, 0, 1)}));
  expect_status(oldest[0], range_status::out_of_order_sequence);
  auto kept = commit_ok(idem_object("kept", 0, {idem(7, 0, 1, 1)}));
  EXPECT_EQ(kept[0].status, range_status::duplicate_sequence);
  EXPECT_EQ(kept[0].base_offset, 1);
}

TEST_P(conformance, sequence_gaps_are_out_of_order) {
  create("i", 1);
  commit_ok(idem_object("a", 0, {idem(7, 0, 0, 2)}));
  // Sequence 2 is next; 4 leaves a gap. Other ranges of the commit still go through.
  auto out = commit_ok(object(
      "b", 20, {range("i", 0, 0, 10, {idem(7, 0, 4, 1)}), range("i", 0, 10, 10, {batch(1)})}));
  ASSERT_EQ(out.size(), 2u);
  expect_status(out[0], range_status::out_of_order_sequence);
  EXPECT_EQ(out[0].base_offset, -1);
  expect_ok(out[1], 2, 2);
  // Overlapping but not identical to a retained batch: also out of order.
  auto overlap = commit_ok(idem_object("c", 0, {idem(7, 0, 1, 1)}));
  expect_status(overlap[0], range_status::out_of_order_sequence);
  auto next = commit_ok(idem_object("d", 0, {idem(7, 0, 2, 1)}));
  expect_ok(next[0], 3, 3);
  EXPECT_EQ(hwm("i", 0), 4);
}

TEST_P(conformance, producer_epochs_fence_and_reset) {
  create("i", 1);
  commit_ok(idem_object("a", 0, {idem(7, 2, 0, 1), idem(7, 2, 1, 1)}));
  auto stale = commit_ok(idem_object("b", 0, {idem(7, 1, 2, 1)}));
  expect_status(stale[0], range_status::invalid_producer_epoch);
  auto bad_new = commit_ok(idem_object("c", 0, {idem(7, 3, 5, 1)}));
  expect_status(bad_new[0], range_status::out_of_order_sequence);  // a new epoch starts at 0
  auto bumped = commit_ok(idem_object("d", 0, {idem(7, 3, 0, 1)}));
  expect_ok(bumped[0], 2, 2);
  auto old_epoch = commit_ok(idem_object("e", 0, {idem(7, 2, 2, 1)}));
  expect_status(old_epoch[0], range_status::invalid_producer_epoch);
  auto next = commit_ok(idem_object("f", 0, {idem(7, 3, 1, 1)}));
  expect_ok(next[0], 3, 3);
}

TEST_P(conformance, sequences_wrap_at_int32_max) {
  create("i", 1);
  constexpr int32_t max = std::numeric_limits<int32_t>::max();
  auto a = commit_ok(idem_object("a", 0, {idem(7, 0, max - 2, 2)}));  // max-2, max-1
  expect_ok(a[0], 0, 1);
  auto b = commit_ok(idem_object("b", 0, {idem(7, 0, max, 2)}));  // max, 0
  expect_ok(b[0], 2, 3);
  auto c = commit_ok(idem_object("c", 0, {idem(7, 0, 1, 1)}));
  expect_ok(c[0], 4, 4);
  auto dup = commit_ok(idem_object("dup", 0, {idem(7, 0, max, 2)}));
  EXPECT_EQ(dup[0].status, range_status::duplicate_sequence);
  EXPECT_EQ(dup[0].base_offset, 2);
}

TEST_P(conformance, producer_state_survives_reopen) {
  create("i", 1);
  commit_ok(idem_object("a", 0, {idem(7, 0, 0, 3)}));
  reopen();
  auto dup = commit_ok(idem_object("b", 0, {idem(7, 0, 0, 3)}));
  EXPECT_EQ(dup[0].status, range_status::duplicate_sequence);
  auto gap = commit_ok(idem_object("c", 0, {idem(7, 0, 5, 1)}));
  expect_status(gap[0], range_status::out_of_order_sequence);
  auto next = commit_ok(idem_object("d", 0, {idem(7, 0, 3, 1)}));
  expect_ok(next[0], 3, 3);
}

TEST_P(conformance, idempotent_batches_need_epoch_and_sequence) {
  create("i", 1);
  for (auto b : {idem(7, -1, 0, 1), idem(7, 0, -1, 1)}) {
    auto r = store().commit_object(idem_object("bad", 0, {b}));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.code(), errc::invalid_argument);
  }
}

// ---- mirror writes ---------------------------------------------------------------------------

mirror_range mrange(std::string topic, int32_t partition, uint64_t byte_offset, int64_t base,
                    int64_t last, std::vector<batch_commit> batches) {
  return mirror_range{range(std::move(topic), partition, byte_offset, 10, std::move(batches)), base,
                      last};
}

mirror_checkpoint checkpoint(std::string source_topic, int32_t source_partition, std::string topic,
                             int32_t partition, int64_t next) {
  mirror_checkpoint c;
  c.mirror_name = "src";
  c.source_topic = std::move(source_topic);
  c.source_partition = source_partition;
  c.topic = std::move(topic);
  c.partition = partition;
  c.next_source_offset = next;
  return c;
}

mirror_commit mobject(std::string key, std::vector<mirror_range> ranges,
                      std::vector<mirror_checkpoint> checkpoints) {
  mirror_commit c;
  c.object_key = std::move(key);
  c.object_size = 1000;
  c.ranges = std::move(ranges);
  c.checkpoints = std::move(checkpoints);
  return c;
}

TEST_P(conformance, mirror_commit_keeps_source_offsets) {
  create("m", 2);
  // The source starts at 100 (retention), has a gap at 105..109 (compaction), and partition 1 is
  // mirrored from offset 0.
  auto r = store().commit_mirror_object(
      mobject("mo1",
              {mrange("m", 0, 0, 100, 104, {batch(2, 50), batch(3, 60)}),
               mrange("m", 0, 10, 110, 119, {batch(4), batch(1)}),  // gaps inside the range too
               mrange("m", 1, 20, 0, 0, {batch(1)})},
              {checkpoint("orders", 0, "m", 0, 120), checkpoint("orders", 1, "m", 1, 1)}));
  ASSERT_TRUE(r) << r.message();
  auto p0 = store().get_partition("m", 0);
  ASSERT_TRUE(p0);
  EXPECT_EQ(p0->log_start_offset, 100) << "an empty log starts where the source starts";
  EXPECT_EQ(p0->high_watermark, 120);
  EXPECT_EQ(hwm("m", 1), 1);
  auto idx = store().read_index("m", 0, 0, 10);
  ASSERT_TRUE(idx);
  ASSERT_EQ(idx->size(), 2u);
  EXPECT_EQ((*idx)[0].base_offset, 100);
  EXPECT_EQ((*idx)[0].last_offset, 104);
  EXPECT_EQ((*idx)[0].record_count, 5);
  EXPECT_EQ((*idx)[0].max_timestamp, 60);
  EXPECT_EQ((*idx)[1].base_offset, 110);
  EXPECT_EQ((*idx)[1].last_offset, 119);
  EXPECT_EQ((*idx)[1].record_count, 5);
  auto from_gap = store().read_index("m", 0, 106, 10);
  ASSERT_TRUE(from_gap);
  ASSERT_EQ(from_gap->size(), 1u);
  EXPECT_EQ((*from_gap)[0].base_offset, 110);

  auto cp = store().get_mirror_checkpoint("src", "orders", 0);
  ASSERT_TRUE(cp) << cp.message();
  ASSERT_TRUE(cp->has_value());
  EXPECT_EQ((*cp)->topic, "m");
  EXPECT_EQ((*cp)->partition, 0);
  EXPECT_EQ((*cp)->next_source_offset, 120);
  EXPECT_GT((*cp)->updated_at_ms, 0);

  // A checkpoint alone moves the high watermark over the source's trailing gap
  // (e.g. transaction markers), and the next data continues after it.
  ASSERT_TRUE(
      store().commit_mirror_object(mobject("mo2", {}, {checkpoint("orders", 0, "m", 0, 125)})));
  EXPECT_EQ(hwm("m", 0), 125);
  ASSERT_TRUE(store().commit_mirror_object(mobject("mo3", {mrange("m", 0, 0, 125, 126, {batch(2)})},
                                                   {checkpoint("orders", 0, "m", 0, 127)})));
  EXPECT_EQ(hwm("m", 0), 127);
  // Produced data continues after mirrored data.
  auto produced = commit_ok(object("po", 10, {range("m", 0, 0, 10, {batch(3)})}));
  expect_ok(produced[0], 127, 129);
  auto p0_after = store().get_partition("m", 0);
  ASSERT_TRUE(p0_after);
  EXPECT_EQ(p0_after->log_start_offset, 100);

  auto all = store().list_mirror_checkpoints("src");
  ASSERT_TRUE(all) << all.message();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].source_partition, 0);
  EXPECT_EQ((*all)[0].next_source_offset, 127);
  EXPECT_EQ((*all)[1].source_partition, 1);
  auto none = store().list_mirror_checkpoints("other");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  auto missing = store().get_mirror_checkpoint("src", "orders", 7);
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_P(conformance, checkpoint_only_mirror_commit_moves_only_the_checkpoint) {
  create("m", 1);
  ASSERT_TRUE(store().commit_mirror_object(
      mobject("a", {mrange("m", 0, 0, 0, 9, {batch(10)})}, {checkpoint("s", 0, "m", 0, 10)})));
  // The source's partition ends with two transaction markers (offsets 10 and 11).
  auto only = mobject("", {}, {checkpoint("s", 0, "m", 0, 12)});
  only.object_size = 0;
  auto r = store().commit_mirror_object(only);
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(hwm("m", 0), 10) << "the log still ends with its last record";
  auto cp = store().get_mirror_checkpoint("src", "s", 0);
  ASSERT_TRUE(cp && cp->has_value());
  EXPECT_EQ((*cp)->next_source_offset, 12);
  auto registered = store().registered_objects({"", "a"});
  ASSERT_TRUE(registered) << registered.message();
  EXPECT_EQ(*registered, std::vector<std::string>{"a"})
      << "a checkpoint-only commit registers no object";
  // A retry is harmless; the next data continues after the gap.
  ASSERT_TRUE(store().commit_mirror_object(only));
  ASSERT_TRUE(store().commit_mirror_object(
      mobject("b", {mrange("m", 0, 0, 12, 13, {batch(2)})}, {checkpoint("s", 0, "m", 0, 14)})));
  EXPECT_EQ(hwm("m", 0), 14);
  // A zombie's stale checkpoint (behind what was written since) is refused, changing nothing.
  auto stale = mobject("", {}, {checkpoint("s", 0, "m", 0, 12)});
  stale.object_size = 0;
  auto behind = store().commit_mirror_object(stale);
  ASSERT_FALSE(behind);
  EXPECT_EQ(behind.code(), errc::conflict) << behind.message();
  cp = store().get_mirror_checkpoint("src", "s", 0);
  ASSERT_TRUE(cp && cp->has_value());
  EXPECT_EQ((*cp)->next_source_offset, 14);
  // Malformed: ranges, a size or no checkpoints without an object key.
  auto with_range = mobject("", {mrange("m", 0, 0, 14, 14, {batch(1)})}, {});
  with_range.object_size = 0;
  auto sized = mobject("", {}, {checkpoint("s", 0, "m", 0, 20)});
  auto empty = mobject("", {}, {});
  empty.object_size = 0;
  for (const auto& bad : {with_range, sized, empty}) {
    auto b = store().commit_mirror_object(bad);
    ASSERT_FALSE(b);
    EXPECT_EQ(b.code(), errc::invalid_argument) << b.message();
  }
  EXPECT_EQ(hwm("m", 0), 14);
}

TEST_P(conformance, mirror_commit_is_all_or_nothing) {
  create("m", 1);
  ASSERT_TRUE(store().commit_mirror_object(
      mobject("a", {mrange("m", 0, 0, 10, 19, {batch(10)})}, {checkpoint("s", 0, "m", 0, 20)})));
  // Overlap with what is there: refused, and the good range and checkpoint are not committed.
  auto overlap = store().commit_mirror_object(
      mobject("b", {mrange("m", 0, 0, 20, 29, {batch(10)}), mrange("m", 0, 10, 25, 30, {batch(1)})},
              {checkpoint("s", 0, "m", 0, 31)}));
  ASSERT_FALSE(overlap);
  EXPECT_EQ(overlap.code(), errc::conflict) << overlap.message();
  auto below =
      store().commit_mirror_object(mobject("c", {mrange("m", 0, 0, 15, 16, {batch(1)})}, {}));
  ASSERT_FALSE(below);
  EXPECT_EQ(below.code(), errc::conflict);
  auto unknown = store().commit_mirror_object(mobject(
      "d", {mrange("m", 0, 0, 20, 20, {batch(1)}), mrange("nope", 0, 10, 0, 0, {batch(1)})}, {}));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.code(), errc::not_found);
  auto unknown_cp = store().commit_mirror_object(
      mobject("e", {mrange("m", 0, 0, 20, 20, {batch(1)})}, {checkpoint("s", 0, "m", 3, 21)}));
  ASSERT_FALSE(unknown_cp);
  EXPECT_EQ(unknown_cp.code(), errc::not_found);
  EXPECT_EQ(hwm("m", 0), 20);
  auto cp = store().get_mirror_checkpoint("src", "s", 0);
  ASSERT_TRUE(cp && cp->has_value());
  EXPECT_EQ((*cp)->next_source_offset, 20);

  // The refused keys were not registered.
  ASSERT_TRUE(store().commit_mirror_object(
      mobject("b", {mrange("m", 0, 0, 20, 29, {batch(10)})}, {checkpoint("s", 0, "m", 0, 30)})));
  EXPECT_EQ(hwm("m", 0), 30);
}

TEST_P(conformance, retried_mirror_commit_succeeds_once) {
  create("m", 1);
  auto c = mobject("a", {mrange("m", 0, 0, 0, 9, {batch(10)})}, {checkpoint("s", 0, "m", 0, 10)});
  ASSERT_TRUE(store().commit_mirror_object(c));
  auto again = store().commit_mirror_object(c);
  ASSERT_TRUE(again) << again.message();
  EXPECT_EQ(hwm("m", 0), 10);
  auto idx = store().read_index("m", 0, 0, 10);
  ASSERT_TRUE(idx);
  EXPECT_EQ(idx->size(), 1u);
  auto different = mobject("a", {mrange("m", 0, 0, 10, 19, {batch(10)})}, {});
  auto r = store().commit_mirror_object(different);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::conflict);
}

TEST_P(conformance, mirror_commit_is_fenced_by_its_lease) {
  create("m", 1);
  auto a = store().acquire_lease("mirror:src/s-0", "bridge-a", 60000);
  ASSERT_TRUE(a);
  auto c1 = mobject("a", {mrange("m", 0, 0, 0, 4, {batch(5)})}, {checkpoint("s", 0, "m", 0, 5)});
  c1.fence = lease_fence{"mirror:src/s-0", a->epoch};
  ASSERT_TRUE(store().commit_mirror_object(c1));

  // bridge-b takes over; bridge-a's next write is refused and changes nothing.
  ASSERT_TRUE(store().release_lease("mirror:src/s-0", "bridge-a", a->epoch));
  auto b = store().acquire_lease("mirror:src/s-0", "bridge-b", 60000);
  ASSERT_TRUE(b);
  ASSERT_EQ(b->owner, "bridge-b");
  auto zombie =
      mobject("z", {mrange("m", 0, 0, 5, 9, {batch(5)})}, {checkpoint("s", 0, "m", 0, 10)});
  zombie.fence = lease_fence{"mirror:src/s-0", a->epoch};
  auto r = store().commit_mirror_object(zombie);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::fenced) << r.message();
  EXPECT_EQ(hwm("m", 0), 5);
  auto unknown_lease = zombie;
  unknown_lease.fence = lease_fence{"no-such-lease", 1};
  auto r2 = store().commit_mirror_object(unknown_lease);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.code(), errc::fenced);

  zombie.fence = lease_fence{"mirror:src/s-0", b->epoch};
  ASSERT_TRUE(store().commit_mirror_object(zombie));
  EXPECT_EQ(hwm("m", 0), 10);
}

TEST_P(conformance, malformed_mirror_commits_are_refused) {
  create("m", 1);
  std::vector<mirror_commit> bad = {
      mobject("k", {mrange("m", 0, 0, 5, 4, {batch(1)})}, {}),    // last < base
      mobject("k", {mrange("m", 0, 0, -1, 4, {batch(1)})}, {}),   // negative
      mobject("k", {mrange("m", 0, 0, 0, 2, {batch(4)})}, {}),    // span too short
      mobject("k", {mrange("m", 0, 995, 0, 0, {batch(1)})}, {}),  // outside the object
      mobject("k", {}, {checkpoint("s", 0, "m", 0, 1), checkpoint("s", 0, "m", 0, 2)}),
      mobject("k", {}, {checkpoint("", 0, "m", 0, 1)}),
      mobject("k", {}, {checkpoint("s", -1, "m", 0, 1)}),
      mobject("k", {}, {checkpoint("s", 0, "m", 0, -1)}),
      mobject("", {}, {}),
  };
  bad[5].checkpoints[0].source_topic = "";
  for (size_t i = 0; i < bad.size(); ++i) {
    auto r = store().commit_mirror_object(bad[i]);
    ASSERT_FALSE(r) << "case " << i;
    EXPECT_EQ(r.code(), errc::invalid_argument) << "case " << i << ": " << r.message();
  }
}

// ---- producer ids ----------------------------------------------------------------------------

TEST_P(conformance, producer_ids_are_unique) {
  auto a = store().init_producer_id("");
  auto b = store().init_producer_id("");
  ASSERT_TRUE(a) << a.message();
  ASSERT_TRUE(b) << b.message();
  EXPECT_GE(a->producer_id, 0);
  EXPECT_NE(a->producer_id, b->producer_id);
  EXPECT_EQ(a->producer_epoch, 0);
  EXPECT_EQ(b->producer_epoch, 0);

  constexpr int k_threads = 4;
  constexpr int k_each = 25;
  std::vector<std::vector<int64_t>> ids(k_threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < k_each; ++i) {
        auto r = store().init_producer_id("");
        if (r) ids[t].push_back(r->producer_id);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<int64_t> all{a->producer_id, b->producer_id};
  for (const auto& v : ids) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), size_t{k_threads * k_each + 2});

  // Never reused after a reopen.
  reopen();
  auto c = store().init_producer_id("");
  ASSERT_TRUE(c);
  EXPECT_FALSE(all.contains(c->producer_id));
}

TEST_P(conformance, transactional_ids_keep_their_producer_id_and_bump_the_epoch) {
  auto first = store().init_producer_id("tx-1");
  ASSERT_TRUE(first) << first.message();
  EXPECT_EQ(first->producer_epoch, 0);
  auto second = store().init_producer_id("tx-1");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->producer_id, first->producer_id);
  EXPECT_EQ(second->producer_epoch, 1);
  auto other = store().init_producer_id("tx-2");
  ASSERT_TRUE(other);
  EXPECT_NE(other->producer_id, first->producer_id);
  EXPECT_EQ(other->producer_epoch, 0);
  auto plain = store().init_producer_id("");
  ASSERT_TRUE(plain);
  EXPECT_NE(plain->producer_id, first->producer_id);
  EXPECT_NE(plain->producer_id, other->producer_id);

  // At the top of the epoch range a new producer id starts over at epoch 0.
  ASSERT_EQ(_harness->exec_sql("UPDATE producers SET producer_epoch = 32766"
                               " WHERE transactional_id = 'tx-1'"),
            "");
  auto renewed = store().init_producer_id("tx-1");
  ASSERT_TRUE(renewed);
  EXPECT_NE(renewed->producer_id, first->producer_id);
  EXPECT_EQ(renewed->producer_epoch, 0);
  auto after = store().init_producer_id("tx-1");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->producer_id, renewed->producer_id);
  EXPECT_EQ(after->producer_epoch, 1);

  auto bad = store().init_producer_id(std::string("a\0b", 3));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.code(), errc::invalid_argument);
}

// ---- consumer groups -------------------------------------------------------------------------

group_offset goffset(std::string topic, int32_t partition, int64_t offset,
                     std::string metadata = {}, int32_t leader_epoch = -1) {
  group_offset g;
  g.topic = std::move(topic);
  g.partition = partition;
  g.offset = offset;
  g.metadata = std::move(metadata);
  g.leader_epoch = leader_epoch;
  return g;
}

TEST_P(conformance, group_offsets_round_trip) {
  create("a", 2);
  create("b", 1);
  auto empty = store().fetch_group_offsets("g1");
  ASSERT_TRUE(empty) << empty.message();
  EXPECT_TRUE(empty->empty());

  auto codes =
      store().commit_group_offsets("g1",
                                   {goffset("b", 0, 7), goffset("a", 1, 42, "meta", 3),
                                    goffset("a", 0, 10), goffset("nope", 0, 1), goffset("a", 5, 1)},
                                   std::nullopt);
  ASSERT_TRUE(codes) << codes.message();
  EXPECT_EQ(*codes,
            (std::vector<errc>{errc::ok, errc::ok, errc::ok, errc::not_found, errc::not_found}));
  auto got = store().fetch_group_offsets("g1");
  ASSERT_TRUE(got) << got.message();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].topic, "a");
  EXPECT_EQ((*got)[0].partition, 0);
  EXPECT_EQ((*got)[0].offset, 10);
  EXPECT_EQ((*got)[1].partition, 1);
  EXPECT_EQ((*got)[1].offset, 42);
  EXPECT_EQ((*got)[1].metadata, "meta");
  EXPECT_EQ((*got)[1].leader_epoch, 3);
  EXPECT_GT((*got)[1].commit_timestamp_ms, 0);
  EXPECT_EQ((*got)[2].topic, "b");
  EXPECT_EQ((*got)[2].offset, 7);

  // Overwrite; the last entry for a partition wins; an explicit commit time is kept.
  auto again = goffset("a", 0, 12);
  again.commit_timestamp_ms = 1234;
  auto codes2 = store().commit_group_offsets("g1", {goffset("a", 0, 11), again}, std::nullopt);
  ASSERT_TRUE(codes2);
  EXPECT_EQ(*codes2, (std::vector<errc>{errc::ok, errc::ok}));
  got = store().fetch_group_offsets("g1");
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)[0].offset, 12);
  EXPECT_EQ((*got)[0].commit_timestamp_ms, 1234);

  // Groups are independent, listed, and deletable.
  ASSERT_TRUE(store().commit_group_offsets("g0", {goffset("b", 0, 1)}, std::nullopt));
  auto groups = store().list_groups();
  ASSERT_TRUE(groups);
  EXPECT_EQ(*groups, (std::vector<std::string>{"g0", "g1"}));
  ASSERT_TRUE(store().delete_group("g1", std::nullopt));
  got = store().fetch_group_offsets("g1");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->empty());
  auto gone = store().delete_group("g1", std::nullopt);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.code(), errc::not_found);
  groups = store().list_groups();
  ASSERT_TRUE(groups);
  EXPECT_EQ(*groups, (std::vector<std::string>{"g0"}));
  auto g0 = store().fetch_group_offsets("g0");
  ASSERT_TRUE(g0);
  ASSERT_EQ(g0->size(), 1u);

  // State survives a reopen.
  reopen();
  g0 = store().fetch_group_offsets("g0");
  ASSERT_TRUE(g0);
  ASSERT_EQ(g0->size(), 1u);
  EXPECT_EQ((*g0)[0].offset, 1);
}

TEST_P(conformance, group_commits_are_fenced_by_the_coordinator_lease) {
  create("a", 1);
  auto a = store().acquire_lease("group:g", "broker-a", 60000);
  ASSERT_TRUE(a);
  lease_fence fence_a{"group:g", a->epoch};
  ASSERT_TRUE(store().commit_group_offsets("g", {goffset("a", 0, 5)}, fence_a));
  ASSERT_TRUE(store().release_lease("group:g", "broker-a", a->epoch));
  auto b = store().acquire_lease("group:g", "broker-b", 60000);
  ASSERT_TRUE(b);
  auto stale = store().commit_group_offsets("g", {goffset("a", 0, 9)}, fence_a);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.code(), errc::fenced);
  auto stale_delete = store().delete_group("g", fence_a);
  ASSERT_FALSE(stale_delete);
  EXPECT_EQ(stale_delete.code(), errc::fenced);
  auto got = store().fetch_group_offsets("g");
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].offset, 5);
  ASSERT_TRUE(
      store().commit_group_offsets("g", {goffset("a", 0, 9)}, lease_fence{"group:g", b->epoch}));
}

TEST_P(conformance, group_ids_are_validated) {
  for (const std::string& bad :
       {std::string(), std::string(max_name_length + 1, 'g'), std::string("a\0b", 3)}) {
    auto r = store().commit_group_offsets(bad, {}, std::nullopt);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.code(), errc::invalid_argument);
    auto f = store().fetch_group_offsets(bad);
    ASSERT_FALSE(f);
    EXPECT_EQ(f.code(), errc::invalid_argument);
  }
}

// ---- topic administration ---------------------------------------------------------------------

TEST_P(conformance, create_partitions_grows_a_topic) {
  ASSERT_TRUE(store().create_topic("g", 2, {{"k", "v"}}));
  commit_ok(object("o1", 10, {range("g", 1, 0, 10, {batch(3)})}));
  auto grown = store().create_partitions("g", 5);
  ASSERT_TRUE(grown) << grown.message();
  EXPECT_EQ(grown->partition_count, 5);
  EXPECT_EQ(grown->configs.at("k"), "v");
  auto t = store().get_topic("g");
  ASSERT_TRUE(t && t->has_value());
  EXPECT_EQ((*t)->partition_count, 5);
  EXPECT_EQ((*t)->id, grown->id);
  EXPECT_EQ(hwm("g", 1), 3) << "existing partitions keep their data";
  EXPECT_EQ(hwm("g", 4), 0);
  auto out = commit_ok(object("o2", 10, {range("g", 4, 0, 10, {batch(2)})}));
  expect_ok(out[0], 0, 1);

  for (int32_t bad : {5, 3, 0, -1, max_partition_count + 1}) {
    auto r = store().create_partitions("g", bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.code(), errc::invalid_argument) << bad;
  }
  auto unknown = store().create_partitions("nope", 3);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.code(), errc::not_found);
}

TEST_P(conformance, set_topic_configs_replaces_the_whole_set) {
  ASSERT_TRUE(store().create_topic("c", 2, {{"a", "1"}, {"b", "2"}}));
  auto set = store().set_topic_configs("c", {{"b", "3"}, {"x", "y"}});
  ASSERT_TRUE(set) << set.message();
  EXPECT_EQ(set->configs, (std::map<std::string, std::string>{{"b", "3"}, {"x", "y"}}));
  EXPECT_EQ(set->partition_count, 2);
  auto t = store().get_topic("c");
  ASSERT_TRUE(t && t->has_value());
  EXPECT_EQ((*t)->configs, set->configs);
  EXPECT_EQ((*t)->id, set->id);
  auto listed = store().list_topics();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().configs, set->configs);

  auto cleared = store().set_topic_configs("c", {});
  ASSERT_TRUE(cleared) << cleared.message();
  EXPECT_TRUE(cleared->configs.empty());
  auto again = store().get_topic("c");
  ASSERT_TRUE(again && again->has_value());
  EXPECT_TRUE((*again)->configs.empty());

  auto unknown = store().set_topic_configs("nope", {{"a", "1"}});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.code(), errc::not_found);
  for (const auto& bad : std::vector<std::map<std::string, std::string>>{
           {{"", "1"}}, {{"a", std::string("x\0y", 3)}}}) {
    auto r = store().set_topic_configs("c", bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.code(), errc::invalid_argument);
  }
  ASSERT_TRUE(store().delete_topic("c"));
  auto deleted = store().set_topic_configs("c", {{"a", "1"}});
  ASSERT_FALSE(deleted);
  EXPECT_EQ(deleted.code(), errc::not_found);
}

TEST_P(conformance, delete_records_moves_the_log_start) {
  create("d", 1);
  commit_ok(object("o1", 10, {range("d", 0, 0, 10, {batch(5)})}));  // 0..4
  commit_ok(object("o2", 10, {range("d", 0, 0, 10, {batch(5)})}));  // 5..9
  commit_ok(object("o3", 10, {range("d", 0, 0, 10, {batch(5)})}));  // 10..14

  auto r = store().delete_records("d", 0, 7);
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(*r, 7);
  auto p = store().get_partition("d", 0);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->log_start_offset, 7);
  EXPECT_EQ(p->high_watermark, 15);
  auto idx = store().read_index("d", 0, 0, 10);
  ASSERT_TRUE(idx);
  ASSERT_EQ(idx->size(), 2u) << "the entry below the log start is gone; the one holding it stays";
  EXPECT_EQ((*idx)[0].base_offset, 5);

  auto lower = store().delete_records("d", 0, 3);
  ASSERT_TRUE(lower);
  EXPECT_EQ(*lower, 7) << "never moves back";
  auto same = store().delete_records("d", 0, 10);
  ASSERT_TRUE(same);
  EXPECT_EQ(*same, 10);
  idx = store().read_index("d", 0, 0, 10);
  ASSERT_TRUE(idx);
  ASSERT_EQ(idx->size(), 1u);
  EXPECT_EQ((*idx)[0].base_offset, 10);

  for (int64_t bad : {int64_t{16}, int64_t{-2}}) {
    auto b = store().delete_records("d", 0, bad);
    ASSERT_FALSE(b) << bad;
    EXPECT_EQ(b.code(), errc::invalid_argument);
  }
  auto all = store().delete_records("d", 0, -1);
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, 15);
  idx = store().read_index("d", 0, 0, 10);
  ASSERT_TRUE(idx);
  EXPECT_TRUE(idx->empty());
  // Appends continue at the high watermark.
  auto out = commit_ok(object("o4", 10, {range("d", 0, 0, 10, {batch(1)})}));
  expect_ok(out[0], 15, 15);
  auto missing = store().delete_records("d", 1, 0);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.code(), errc::not_found);
}

TEST_P(conformance, deleted_topics_disappear_and_names_are_reusable) {
  auto old = store().create_topic("x", 2, {{"a", "1"}});
  ASSERT_TRUE(old);
  create("keep", 1);
  commit_ok(object("o1", 10, {range("x", 0, 0, 10, {batch(4)})}));
  ASSERT_TRUE(
      store().commit_group_offsets("g", {goffset("x", 0, 3), goffset("keep", 0, 0)}, std::nullopt));
  ASSERT_TRUE(store().delete_topic("x"));
  auto t = store().get_topic("x");
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->has_value());
  auto all = store().list_topics();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].name, "keep");
  auto p = store().get_partition("x", 0);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.code(), errc::not_found);
  auto out = commit_ok(object("o2", 10, {range("x", 0, 0, 10, {batch(1)})}));
  EXPECT_EQ(out[0].status, range_status::unknown_topic_or_partition);
  auto again = store().delete_topic("x");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.code(), errc::not_found);

  // A new topic of the same name is a different topic.
  auto fresh = store().create_topic("x", 1, {});
  ASSERT_TRUE(fresh) << fresh.message();
  EXPECT_NE(fresh->id, old->id);
  EXPECT_TRUE(fresh->configs.empty());
  EXPECT_EQ(hwm("x", 0), 0);
  auto idx = store().read_index("x", 0, 0, 10);
  ASSERT_TRUE(idx);
  EXPECT_TRUE(idx->empty());
  auto offsets = store().fetch_group_offsets("g");
  ASSERT_TRUE(offsets);
  ASSERT_EQ(offsets->size(), 1u) << "the old topic's committed offsets went with it";
  EXPECT_EQ((*offsets)[0].topic, "keep");
}

// ---- timestamps ------------------------------------------------------------------------------

TEST_P(conformance, find_by_timestamp_follows_kafka_semantics) {
  create("ts", 2);
  auto none = store().find_by_timestamp("ts", 0, 0);
  ASSERT_TRUE(none) << none.message();
  EXPECT_FALSE(none->has_value());
  // Batch max timestamps are not monotonic: 100, 300, 200, 400.
  commit_ok(object("o1", 10, {range("ts", 0, 0, 10, {batch(2, 100)})}));  // 0..1
  commit_ok(object("o2", 10, {range("ts", 0, 0, 10, {batch(2, 300)})}));  // 2..3
  commit_ok(object("o3", 10, {range("ts", 0, 0, 10, {batch(2, 200)})}));  // 4..5
  commit_ok(object("o4", 10, {range("ts", 0, 0, 10, {batch(2, 400)})}));  // 6..7
  auto base_at = [&](int64_t ts) -> int64_t {
    auto r = store().find_by_timestamp("ts", 0, ts);
    EXPECT_TRUE(r) << r.message();
    return r && r->has_value() ? (*r)->base_offset : -1;
  };
  EXPECT_EQ(base_at(-1), 0);
  EXPECT_EQ(base_at(50), 0);
  EXPECT_EQ(base_at(100), 0);
  EXPECT_EQ(base_at(101), 2);
  EXPECT_EQ(base_at(150), 2) << "the first batch whose max timestamp reaches the target";
  EXPECT_EQ(base_at(250), 2);
  EXPECT_EQ(base_at(300), 2);
  EXPECT_EQ(base_at(301), 6);
  EXPECT_EQ(base_at(400), 6);
  EXPECT_EQ(base_at(401), -1);
  auto e = store().find_by_timestamp("ts", 0, 150);
  ASSERT_TRUE(e && e->has_value());
  EXPECT_EQ((*e)->object_key, "o2");
  EXPECT_EQ((*e)->max_timestamp, 300);

  auto p = store().get_partition("ts", 0);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->max_timestamp, 400);
  auto empty = store().get_partition("ts", 1);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->max_timestamp, -1);

  // Mirrored data counts the same way.
  auto m = store().commit_mirror_object(mobject(
      "mo",
      {mrange("ts", 1, 0, 10, 11, {batch(2, 50)}), mrange("ts", 1, 10, 20, 20, {batch(1, 70)})},
      {}));
  ASSERT_TRUE(m) << m.message();
  auto me = store().find_by_timestamp("ts", 1, 60);
  ASSERT_TRUE(me && me->has_value());
  EXPECT_EQ((*me)->base_offset, 20);
  EXPECT_EQ(hwm("ts", 1), 21);
  auto mp = store().get_partition("ts", 1);
  ASSERT_TRUE(mp);
  EXPECT_EQ(mp->max_timestamp, 70);

  // Entries removed by DeleteRecords are not found any more.
  ASSERT_TRUE(store().delete_records("ts", 0, 4));
  EXPECT_EQ(base_at(50), 4);

  auto unknown = store().find_by_timestamp("ts", 2, 0);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.code(), errc::not_found);
}

// Migration 4 adds the timestamp watermark to existing rows: rebuild a version-3 database with
// data by hand, reopen, and check the lookups.
TEST_P(conformance, migration_backfills_timestamp_watermarks) {
  create("old", 1);
  commit_ok(object("o1", 10, {range("old", 0, 0, 10, {batch(2, 100)})}));
  commit_ok(object("o2", 10, {range("old", 0, 0, 10, {batch(2, 300)})}));
  commit_ok(object("o3", 10, {range("old", 0, 0, 10, {batch(2, 200)})}));
  _store.reset();
  ASSERT_EQ(_harness->exec_sql("DROP INDEX index_entries_time"), "");
  ASSERT_EQ(_harness->exec_sql("ALTER TABLE index_entries DROP COLUMN timestamp_watermark"), "");
  ASSERT_EQ(_harness->exec_sql("ALTER TABLE partitions DROP COLUMN max_timestamp"), "");
  ASSERT_EQ(_harness->exec_sql("DELETE FROM schema_version WHERE version >= 4"), "");
  reopen();
  EXPECT_EQ(_harness->query_int("SELECT MAX(version) FROM schema_version"),
            _harness->query_int("SELECT COUNT(*) FROM schema_version"));
  auto p = store().get_partition("old", 0);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->max_timestamp, 300);
  auto r = store().find_by_timestamp("old", 0, 250);
  ASSERT_TRUE(r && r->has_value());
  EXPECT_EQ((*r)->base_offset, 2);
  auto after = commit_ok(object("o4", 10, {range("old", 0, 0, 10, {batch(1, 250)})}));
  expect_ok(after[0], 6, 6);
  auto r2 = store().find_by_timestamp("old", 0, 301);
  ASSERT_TRUE(r2);
  EXPECT_FALSE(r2->has_value()) << "the watermark stays at 300 after a smaller timestamp";
}

// ---- brokers ---------------------------------------------------------------------------------

broker_registration broker_reg(int32_t node, std::string incarnation) {
  broker_registration b;
  b.node_id = node;
  b.endpoints = "PLAINTEXT://host" + std::to_string(node) + ":9092";
  b.rack = node % 2 == 0 ? "rack-a" : "";
  b.incarnation = std::move(incarnation);
  return b;
}

TEST_P(conformance, brokers_register_heartbeat_and_leave) {
  auto none = store().list_brokers(60000);
  ASSERT_TRUE(none) << none.message();
  EXPECT_TRUE(none->empty());

  auto b2 = store().register_broker(broker_reg(2, "inc-2a"), 10000);
  ASSERT_TRUE(b2) << b2.message();
  EXPECT_GT(b2->registered_at_ms, 0);
  EXPECT_EQ(b2->heartbeat_at_ms, b2->registered_at_ms);
  ASSERT_TRUE(store().register_broker(broker_reg(1, "inc-1a"), 10000));
  auto live = store().list_brokers(60000);
  ASSERT_TRUE(live);
  ASSERT_EQ(live->size(), 2u);
  EXPECT_EQ((*live)[0].node_id, 1);
  EXPECT_EQ((*live)[1].node_id, 2);
  EXPECT_EQ((*live)[1].endpoints, "PLAINTEXT://host2:9092");
  EXPECT_EQ((*live)[1].rack, "rack-a");
  EXPECT_EQ((*live)[1].incarnation, "inc-2a");

  // A second process with the same node id is refused while the first is alive.
  auto dup = store().register_broker(broker_reg(2, "inc-2b"), 10000);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.code(), errc::conflict);
  // The same process re-registering keeps its registration time.
  auto again = store().register_broker(broker_reg(2, "inc-2a"), 10000);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->registered_at_ms, b2->registered_at_ms);

  ASSERT_TRUE(store().heartbeat_broker(2, "inc-2a"));
  auto wrong = store().heartbeat_broker(2, "inc-2b");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.code(), errc::fenced);

  // Silent brokers drop out of the live list; a restart with a new incarnation takes over.
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  ASSERT_TRUE(store().heartbeat_broker(1, "inc-1a"));
  live = store().list_brokers(100);
  ASSERT_TRUE(live);
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].node_id, 1);
  auto restarted = store().register_broker(broker_reg(2, "inc-2b"), 100);
  ASSERT_TRUE(restarted) << restarted.message();
  EXPECT_EQ(restarted->incarnation, "inc-2b");
  auto zombie = store().heartbeat_broker(2, "inc-2a");
  ASSERT_FALSE(zombie);
  EXPECT_EQ(zombie.code(), errc::fenced);

  ASSERT_TRUE(store().unregister_broker(1, "inc-1a"));
  auto gone = store().unregister_broker(1, "inc-1a");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.code(), errc::fenced);
  live = store().list_brokers(60000);
  ASSERT_TRUE(live);
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].node_id, 2);

  auto bad = store().register_broker(broker_reg(-1, "x"), 1000);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.code(), errc::invalid_argument);
  auto bad_inc = store().register_broker(broker_reg(3, ""), 1000);
  ASSERT_FALSE(bad_inc);
  EXPECT_EQ(bad_inc.code(), errc::invalid_argument);
}

// ---- commit notifications ----------------------------------------------------------------------

// Collects notifications; wait_for() blocks until a predicate over the latest high watermarks
// holds (notifications for PostgreSQL arrive on another thread).
class change_collector {
 public:
  commit_listener listener() {
    return [this](const std::vector<partition_change>& changes, bool resync) {
      std::lock_guard lock(_mu);
      if (resync) ++_resyncs;
      for (const auto& c : changes) {
        auto& h = _hwm[std::pair(c.topic, c.partition)];
        h = std::max(h, c.high_watermark);
        ++_count;
      }
      _cv.notify_all();
    };
  }
  bool wait_for(const std::string& topic, int32_t partition, int64_t hwm) {
    std::unique_lock lock(_mu);
    return _cv.wait_for(lock, std::chrono::seconds(10), [&] {
      auto it = _hwm.find(std::pair(topic, partition));
      return it != _hwm.end() && it->second >= hwm;
    });
  }
  int count() {
    std::lock_guard lock(_mu);
    return _count;
  }
  int resyncs() {
    std::lock_guard lock(_mu);
    return _resyncs;
  }
  bool wait_for_resync() {
    std::unique_lock lock(_mu);
    return _cv.wait_for(lock, std::chrono::seconds(10), [&] { return _resyncs > 0; });
  }

 private:
  std::mutex _mu;
  std::condition_variable _cv;
  std::map<std::pair<std::string, int32_t>, int64_t> _hwm;
  int _count = 0;
  int _resyncs = 0;
};

TEST_P(conformance, commit_listener_sees_commits) {
  create("n", 2);
  change_collector seen;
  ASSERT_TRUE(store().set_commit_listener(seen.listener()));
  commit_ok(
      object("o1", 20, {range("n", 0, 0, 10, {batch(3)}), range("n", 1, 10, 10, {batch(2)})}));
  commit_ok(object("o2", 10, {range("n", 0, 0, 10, {batch(1)})}));
  EXPECT_TRUE(seen.wait_for("n", 0, 4));
  EXPECT_TRUE(seen.wait_for("n", 1, 2));
  ASSERT_TRUE(store().commit_mirror_object(
      mobject("mo", {mrange("n", 1, 0, 10, 14, {batch(5)})}, {checkpoint("s", 0, "n", 1, 20)})));
  EXPECT_TRUE(seen.wait_for("n", 1, 20));
  // Unknown partitions and refused ranges notify nothing.
  int before = seen.count();
  commit_ok(object("o3", 10, {range("nope", 0, 0, 10, {batch(1)})}));
  // Stop: later commits are not delivered.
  ASSERT_TRUE(store().set_commit_listener(nullptr));
  commit_ok(object("o4", 10, {range("n", 0, 0, 10, {batch(1)})}));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(seen.count(), before);
  EXPECT_EQ(seen.resyncs(), 0);
}

// A listener may read the store from inside the callback.
TEST_P(conformance, commit_listener_may_call_the_store) {
  create("n", 1);
  std::mutex mu;
  std::condition_variable cv;
  int64_t read_hwm = -1;
  ASSERT_TRUE(store().set_commit_listener([&](const std::vector<partition_change>& changes, bool) {
    if (changes.empty()) return;
    auto p = store().get_partition("n", 0);
    std::lock_guard lock(mu);
    read_hwm = p ? p->high_watermark : -2;
    cv.notify_all();
  }));
  commit_ok(object("o1", 10, {range("n", 0, 0, 10, {batch(3)})}));
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return read_hwm >= 0; }));
  EXPECT_EQ(read_hwm, 3);
  lock.unlock();
  ASSERT_TRUE(store().set_commit_listener(nullptr));
}

// ---- leases ------------------------------------------------------------------------------

TEST_P(conformance, lease_lifecycle) {
  auto none = store().get_lease("group:g1");
  ASSERT_TRUE(none) << none.message();
  EXPECT_FALSE(none->has_value());

  auto a = store().acquire_lease("group:g1", "broker-a", 60000);
  ASSERT_TRUE(a) << a.message();
  EXPECT_EQ(a->owner, "broker-a");
  EXPECT_EQ(a->epoch, 1);
  EXPECT_GT(a->expires_at_ms, a->acquired_at_ms);

  // Someone else is told who holds it.
  auto b = store().acquire_lease("group:g1", "broker-b", 60000);
  ASSERT_TRUE(b) << b.message();
  EXPECT_EQ(b->owner, "broker-a");
  EXPECT_EQ(b->epoch, 1);

  // The holder re-acquiring keeps its epoch; renewing extends.
  auto again = store().acquire_lease("group:g1", "broker-a", 60000);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->owner, "broker-a");
  EXPECT_EQ(again->epoch, 1);
  auto renewed = store().renew_lease("group:g1", "broker-a", 1, 120000);
  ASSERT_TRUE(renewed) << renewed.message();
  EXPECT_GE(renewed->expires_at_ms, a->expires_at_ms);
  auto got = store().get_lease("group:g1");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->owner, "broker-a");
  EXPECT_EQ((*got)->expires_at_ms, renewed->expires_at_ms);

  for (auto [owner, epoch] : {std::pair<std::string, int64_t>{"broker-b", 1}, {"broker-a", 2}}) {
    auto r = store().renew_lease("group:g1", owner, epoch, 1000);
    ASSERT_FALSE(r) << owner << " " << epoch;
    EXPECT_EQ(r.code(), errc::fenced);
  }

  // Release: the next owner gets it at once, with a new epoch; the old one is fenced.
  ASSERT_TRUE(store().release_lease("group:g1", "broker-a", 1));
  auto b2 = store().acquire_lease("group:g1", "broker-b", 60000);
  ASSERT_TRUE(b2);
  EXPECT_EQ(b2->owner, "broker-b");
  EXPECT_EQ(b2->epoch, 2);
  auto stale = store().renew_lease("group:g1", "broker-a", 1, 1000);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.code(), errc::fenced);
  auto stale_release = store().release_lease("group:g1", "broker-a", 1);
  ASSERT_FALSE(stale_release);
  EXPECT_EQ(stale_release.code(), errc::fenced);
  auto never = store().renew_lease("unknown", "x", 1, 1000);
  ASSERT_FALSE(never);
  EXPECT_EQ(never.code(), errc::fenced);

  // Leases are independent.
  auto other = store().acquire_lease("compact:t-0", "broker-a", 60000);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->owner, "broker-a");
  EXPECT_EQ(other->epoch, 1);
}

TEST_P(conformance, expired_leases_can_be_taken) {
  auto a = store().acquire_lease("l", "a", 50);
  ASSERT_TRUE(a);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto b = store().acquire_lease("l", "b", 60000);
  ASSERT_TRUE(b) << b.message();
  EXPECT_EQ(b->owner, "b");
  EXPECT_EQ(b->epoch, 2);
  auto late = store().renew_lease("l", "a", 1, 60000);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.code(), errc::fenced);
  // An expired lease nobody took is still its holder's to renew.
  auto c = store().acquire_lease("m", "c", 50);
  ASSERT_TRUE(c);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto kept = store().renew_lease("m", "c", 1, 60000);
  ASSERT_TRUE(kept) << kept.message();
  EXPECT_EQ(kept->epoch, 1);
}

TEST_P(conformance, lease_arguments_are_validated) {
  for (auto [name, owner, ttl] : {std::tuple<std::string, std::string, int64_t>{"", "o", 1000},
                                  {"n", "", 1000},
                                  {"n", "o", 0},
                                  {"n", "o", -5},
                                  {std::string(max_name_length + 1, 'n'), "o", 1000},
                                  {std::string("a\0b", 3), "o", 1000},
                                  {"n", "o", max_lease_ttl_ms + 1}}) {
    auto r = store().acquire_lease(name, owner, ttl);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.code(), errc::invalid_argument);
  }
}

TEST_P(conformance, exactly_one_contender_wins_a_lease) {
  constexpr int k_contenders = 6;
  std::vector<std::string> seen(k_contenders);
  std::vector<int64_t> epochs(k_contenders);
  std::vector<std::thread> threads;
  for (int i = 0; i < k_contenders; ++i) {
    threads.emplace_back([&, i] {
      auto r = store().acquire_lease("contended", numbered("owner-", i), 60000);
      if (r) {
        seen[i] = r->owner;
        epochs[i] = r->epoch;
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> owners(seen.begin(), seen.end());
  ASSERT_EQ(owners.size(), 1u) << "every contender sees the same single owner";
  EXPECT_FALSE(owners.begin()->empty());
  for (int64_t e : epochs) EXPECT_EQ(e, 1);
}

// ---- index -------------------------------------------------------------------------------

TEST_P(conformance, read_index_semantics) {
  create("a", 2);
  // a-0 gets [0..4] in o1, [5..5] in o2, [6..9] in o3; a-1 gets [0..0] in o2.
  commit_ok(object("o1", 500, {range("a", 0, 100, 300, {batch(2, 1000), batch(3, 1500)})}));
  commit_ok(object("o2", 50,
                   {range("a", 1, 0, 20, {batch(1, 7)}), range("a", 0, 20, 30, {batch(1, 2000)})}));
  auto o3 = object("o3", 64, {range("a", 0, 0, 64, {batch(4, 1999)})});
  o3.ranges[0].max_timestamp = 2500;  // the range's own value counts too
  commit_ok(o3);

  auto all = store().read_index("a", 0, 0, 100);
  ASSERT_TRUE(all) << all.message();
  ASSERT_EQ(all->size(), 3u);
  const index_entry& e0 = (*all)[0];
  EXPECT_EQ(e0.base_offset, 0);
  EXPECT_EQ(e0.last_offset, 4);
  EXPECT_EQ(e0.max_timestamp, 1500);
  EXPECT_EQ(e0.record_count, 5);
  EXPECT_EQ(e0.object_key, "o1");
  EXPECT_EQ(e0.byte_offset, 100u);
  EXPECT_EQ(e0.byte_length, 300u);
  const index_entry& e1 = (*all)[1];
  EXPECT_EQ(e1.base_offset, 5);
  EXPECT_EQ(e1.last_offset, 5);
  EXPECT_EQ(e1.max_timestamp, 2000);
  EXPECT_EQ(e1.record_count, 1);
  EXPECT_EQ(e1.object_key, "o2");
  EXPECT_EQ(e1.byte_offset, 20u);
  EXPECT_EQ(e1.byte_length, 30u);
  const index_entry& e2 = (*all)[2];
  EXPECT_EQ(e2.base_offset, 6);
  EXPECT_EQ(e2.last_offset, 9);
  EXPECT_EQ(e2.max_timestamp, 2500);
  EXPECT_EQ(e2.object_key, "o3");

  auto bases = [&](int64_t from, size_t max) {
    std::vector<int64_t> out;
    auto r = store().read_index("a", 0, from, max);
    EXPECT_TRUE(r) << r.message();
    if (r) {
      for (const auto& e : *r) out.push_back(e.base_offset);
    }
    return out;
  };
  using v = std::vector<int64_t>;
  EXPECT_EQ(bases(-5, 100), (v{0, 5, 6}));  // before the log start
  EXPECT_EQ(bases(3, 100), (v{0, 5, 6}));   // inside the first range
  EXPECT_EQ(bases(4, 100), (v{0, 5, 6}));   // its last offset
  EXPECT_EQ(bases(5, 100), (v{5, 6}));
  EXPECT_EQ(bases(7, 100), (v{6}));
  EXPECT_EQ(bases(9, 100), (v{6}));
  EXPECT_EQ(bases(10, 100), v{});  // at the high watermark
  EXPECT_EQ(bases(1000, 100), v{});
  EXPECT_EQ(bases(0, 1), (v{0}));
  EXPECT_EQ(bases(3, 2), (v{0, 5}));
  EXPECT_EQ(bases(0, 0), v{});

  auto other = store().read_index("a", 1, 0, 10);
  ASSERT_TRUE(other);
  ASSERT_EQ(other->size(), 1u);
  EXPECT_EQ((*other)[0].object_key, "o2");
  EXPECT_EQ((*other)[0].max_timestamp, 7);

  for (auto [topic, partition] : {std::pair<std::string, int32_t>{"a", 2}, {"b", 0}}) {
    auto r = store().read_index(topic, partition, 0, 10);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.code(), errc::not_found);
  }
  auto empty = store().read_index("a", 1, 1, 10);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST_P(conformance, read_index_pages_through_many_entries) {
  create("p", 1);
  for (int i = 0; i < 300; ++i) {
    commit_ok(object(numbered("obj-", i), 10, {range("p", 0, 0, 10, {batch(1 + i % 3)})}));
  }
  int64_t next = 0;
  int64_t pages = 0;
  int64_t entries = 0;
  for (;;) {
    auto r = store().read_index("p", 0, next, 64);
    ASSERT_TRUE(r) << r.message();
    if (r->empty()) break;
    ++pages;
    for (const auto& e : *r) {
      ASSERT_EQ(e.base_offset, next);
      next = e.last_offset + 1;
      ++entries;
    }
  }
  EXPECT_EQ(entries, 300);
  EXPECT_EQ(pages, 5);
  EXPECT_EQ(next, hwm("p", 0));
}

// ---- durability and migrations --------------------------------------------------------------

TEST_P(conformance, state_survives_reopen) {
  auto created = store().create_topic("keep", 2, {{"retention.ms", "86400000"}});
  ASSERT_TRUE(created);
  commit_ok(object("o1", 100, {range("keep", 1, 0, 100, {batch(10, 42)})}));
  reopen();
  auto t = store().get_topic("keep");
  ASSERT_TRUE(t && t->has_value());
  EXPECT_EQ((*t)->id, created->id);
  EXPECT_EQ((*t)->configs.at("retention.ms"), "86400000");
  EXPECT_EQ(hwm("keep", 1), 10);
  auto idx = store().read_index("keep", 1, 0, 10);
  ASSERT_TRUE(idx);
  ASSERT_EQ(idx->size(), 1u);
  EXPECT_EQ((*idx)[0].max_timestamp, 42);
  // Offsets continue after the reopen.
  auto out = commit_ok(object("o2", 10, {range("keep", 1, 0, 10, {batch(1)})}));
  ASSERT_EQ(out.size(), 1u);
  expect_ok(out[0], 10, 10);
}

TEST_P(conformance, reopening_is_idempotent) {
  create("t", 1);
  reopen();
  reopen();
  auto all = store().list_topics();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 1u);
  // Each migration is recorded exactly once.
  auto rows = _harness->query_int("SELECT COUNT(*) FROM schema_version");
  auto versions = _harness->query_int("SELECT COUNT(DISTINCT version) FROM schema_version");
  auto newest = _harness->query_int("SELECT MAX(version) FROM schema_version");
  ASSERT_TRUE(rows && versions && newest);
  EXPECT_EQ(*rows, *versions);
  EXPECT_EQ(*rows, *newest) << "versions 1..N, each once";
  EXPECT_GE(*newest, 1);
}

TEST_P(conformance, newer_schema_is_refused) {
  _store.reset();
  ASSERT_EQ(_harness->exec_sql("INSERT INTO schema_version (version, name, applied_at_ms)"
                               " VALUES (999, 'from_the_future', 0)"),
            "");
  auto opened = _harness->open();
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.code(), errc::schema_too_new);
  EXPECT_NE(opened.message().find("schema version 999 is newer than this binary supports"),
            std::string::npos)
      << opened.message();
  EXPECT_NE(opened.message().find("upgrade streamhouse"), std::string::npos);
}

// ---- concurrency -------------------------------------------------------------------------

TEST_P(conformance, concurrent_commits_have_no_gaps_or_overlaps) {
  constexpr int k_threads = 4;
  constexpr int k_partitions = 8;
  constexpr int k_commits_per_thread = 40;
  create("c", k_partitions);

  struct assigned {
    int32_t partition;
    int64_t base, last, count;
  };
  std::vector<std::vector<assigned>> per_thread(k_threads);
  std::atomic<int> failures{0};
  std::atomic<bool> writers_done{false};

  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      for (int i = 0; i < k_commits_per_thread; ++i) {
        object_commit c;
        // (append, not operator+ on a literal: GCC 12 reports a false -Wrestrict for that)
        c.object_key = std::to_string(t);
        c.object_key.append("-").append(std::to_string(i));
        c.object_size = 1000;
        std::vector<int64_t> counts;
        // 1-3 ranges, possibly twice the same partition.
        int n = 1 + static_cast<int>(rng() % 3);
        for (int k = 0; k < n; ++k) {
          int32_t p = static_cast<int32_t>(rng() % k_partitions);
          int32_t cnt = 1 + static_cast<int32_t>(rng() % 5);
          c.ranges.push_back(
              range("c", p, static_cast<uint64_t>(k) * 100, 100, {batch(cnt), batch(1)}));
          counts.push_back(cnt + 1);
        }
        auto r = store().commit_object(c);
        if (!r || r->size() != c.ranges.size()) {
          ++failures;
          continue;
        }
        for (size_t k = 0; k < r->size(); ++k) {
          const range_outcome& o = (*r)[k];
          if (o.status != range_status::ok) ++failures;
          per_thread[t].push_back({c.ranges[k].partition, o.base_offset, o.last_offset, counts[k]});
        }
      }
    });
  }
  // A reader running alongside sees high watermarks that never go back.
  std::thread reader([&] {
    std::vector<int64_t> seen(k_partitions, 0);
    while (!writers_done.load()) {
      for (int32_t p = 0; p < k_partitions; ++p) {
        auto s = store().get_partition("c", p);
        if (!s || s->high_watermark < seen[p]) ++failures;
        if (s) seen[p] = s->high_watermark;
        auto idx = store().read_index("c", p, 0, 1000);
        if (!idx) ++failures;
      }
    }
  });
  for (auto& th : threads) th.join();
  writers_done = true;
  reader.join();
  ASSERT_EQ(failures.load(), 0);

  std::map<int32_t, std::vector<assigned>> by_partition;
  for (const auto& v : per_thread) {
    for (const auto& a : v) by_partition[a.partition].push_back(a);
  }
  int64_t total = 0;
  for (int32_t p = 0; p < k_partitions; ++p) {
    auto& v = by_partition[p];
    std::sort(v.begin(), v.end(),
              [](const assigned& x, const assigned& y) { return x.base < y.base; });
    int64_t next = 0;
    int64_t sum = 0;
    for (const auto& a : v) {
      EXPECT_EQ(a.base, next) << "gap or overlap in partition " << p;
      EXPECT_EQ(a.last - a.base + 1, a.count);
      next = a.last + 1;
      sum += a.count;
    }
    EXPECT_EQ(hwm("c", p), sum) << "partition " << p;
    total += sum;
    auto idx = store().read_index("c", p, 0, 100000);
    ASSERT_TRUE(idx);
    ASSERT_EQ(idx->size(), v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      EXPECT_EQ((*idx)[i].base_offset, v[i].base);
      EXPECT_EQ((*idx)[i].last_offset, v[i].last);
    }
  }
  int64_t hwm_total = 0;
  for (int32_t p = 0; p < k_partitions; ++p) hwm_total += hwm("c", p);
  EXPECT_EQ(hwm_total, total);
  EXPECT_GT(total, 0);
}

// ---- compaction swap and object garbage collection ----------------------------------------

// Two ingest objects with two ranges of c-0 each (offsets 0..9), and one range of c-1 in "i1".
class segment_swap : public conformance {
 protected:
  void SetUp() override {
    conformance::SetUp();
    if (IsSkipped()) return;
    create("c", 2);
    commit_ok(object("i1", 100,
                     {range("c", 0, 0, 10, {batch(2, 5)}), range("c", 0, 10, 10, {batch(3, 7)}),
                      range("c", 1, 20, 10, {batch(1, 1)})}));
    commit_ok(object("i2", 100,
                     {range("c", 0, 0, 10, {batch(4, 9)}), range("c", 0, 10, 10, {batch(1, 3)})}));
    auto lease = store().acquire_lease("compact/c/0", "me", 60000);
    ASSERT_TRUE(lease) << lease.message();
    _fence = {lease->name, lease->epoch};
    auto probe = store().list_unreferenced_objects(0, 1);
    if (!probe && probe.error().code == errc::unsupported) GTEST_SKIP() << "no compaction";
  }

  std::vector<index_entry> rows(int64_t from = 0) {
    auto r = store().read_index("c", 0, from, 100);
    EXPECT_TRUE(r) << r.message();
    return r ? *r : std::vector<index_entry>{};
  }

  // Replaces rows [first_row, last_row] with one segment row.
  segment_replacement swap_of(const std::vector<index_entry>& all, size_t first_row,
                              size_t last_row, const std::string& key) {
    segment_replacement r;
    r.topic = "c";
    r.partition = 0;
    r.segment_key = key;
    r.segment_size = 1000;
    r.first_offset = all[first_row].base_offset;
    r.last_offset = all[last_row].last_offset;
    r.replaced.assign(all.begin() + first_row, all.begin() + last_row + 1);
    index_entry e;
    e.base_offset = r.first_offset;
    e.last_offset = r.last_offset;
    e.record_count = r.last_offset - r.first_offset + 1;
    for (const auto& x : r.replaced) e.max_timestamp = std::max(e.max_timestamp, x.max_timestamp);
    e.object_key = key;
    e.byte_offset = 0;
    e.byte_length = 500;
    r.entries.push_back(e);
    r.fence = _fence;
    return r;
  }

  lease_fence _fence;
};

TEST_P(segment_swap, replaces_rows_and_marks_objects_unreferenced) {
  auto before = rows();
  ASSERT_EQ(before.size(), 4u);
  // Only i1's rows of c-0: i1 stays referenced by c-1.
  auto ok = store().replace_with_segment(swap_of(before, 0, 1, "seg0"));
  ASSERT_TRUE(ok) << ok.message();
  auto after = rows();
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after[0].object_key, "seg0");
  EXPECT_EQ(after[0].base_offset, 0);
  EXPECT_EQ(after[0].last_offset, 4);
  EXPECT_EQ(after[0].max_timestamp, 7);
  EXPECT_EQ(after[1].base_offset, 5);
  EXPECT_EQ(hwm("c", 0), 10);
  auto none = store().list_unreferenced_objects(std::numeric_limits<int64_t>::max(), 10);
  ASSERT_TRUE(none) << none.message();
  EXPECT_TRUE(none->empty());

  ok = store().replace_with_segment(swap_of(after, 1, 2, "seg5"));
  ASSERT_TRUE(ok) << ok.message();
  auto gone = store().list_unreferenced_objects(std::numeric_limits<int64_t>::max(), 10);
  ASSERT_TRUE(gone) << gone.message();
  ASSERT_EQ(gone->size(), 1u);
  EXPECT_EQ((*gone)[0].object_key, "i2");
  EXPECT_EQ((*gone)[0].object_size, 100u);
  auto early = store().list_unreferenced_objects((*gone)[0].unreferenced_at_ms - 1, 10);
  ASSERT_TRUE(early);
  EXPECT_TRUE(early->empty());
  // Timestamp lookups still work over the new rows.
  auto by_ts = store().find_by_timestamp("c", 0, 8);
  ASSERT_TRUE(by_ts && *by_ts) << by_ts.message();
  EXPECT_EQ((*by_ts)->object_key, "seg5");

  EXPECT_EQ(store().forget_object("i1").error().code, errc::conflict);
  EXPECT_EQ(store().forget_object("seg0").error().code, errc::conflict);
  ASSERT_TRUE(store().forget_object("i2"));
  ASSERT_TRUE(store().forget_object("i2"));  // a retry
  auto empty = store().list_unreferenced_objects(std::numeric_limits<int64_t>::max(), 10);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST_P(segment_swap, stale_or_malformed_swaps_are_refused) {
  auto before = rows();
  ASSERT_EQ(before.size(), 4u);
  auto swap = swap_of(before, 0, 1, "seg0");
  auto changed = swap;
  changed.replaced[1].byte_length = 11;
  EXPECT_EQ(store().replace_with_segment(changed).error().code, errc::conflict);
  auto fenced = swap;
  fenced.fence.epoch += 1;
  EXPECT_EQ(store().replace_with_segment(fenced).error().code, errc::fenced);
  auto gap = swap;
  gap.replaced.erase(gap.replaced.begin());
  EXPECT_EQ(store().replace_with_segment(gap).error().code, errc::invalid_argument);
  auto outside = swap;
  outside.entries[0].byte_length = 2000;
  EXPECT_EQ(store().replace_with_segment(outside).error().code, errc::invalid_argument);
  // A DeleteRecords in between makes the copy stale.
  ASSERT_TRUE(store().delete_records("c", 0, 2));
  EXPECT_EQ(store().replace_with_segment(swap).error().code, errc::conflict);
  EXPECT_EQ(rows().size(), 3u);
  // Nothing of the refused swaps was applied.
  auto none = store().list_unreferenced_objects(std::numeric_limits<int64_t>::max(), 10);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  auto ok = store().replace_with_segment(swap_of(rows(), 0, 2, "seg5"));
  ASSERT_TRUE(ok) << ok.message();
  EXPECT_EQ(store().replace_with_segment(swap_of(rows(), 0, 0, "seg5")).error().code,
            errc::invalid_argument);  // replaces itself
}

TEST_P(segment_swap, delete_records_and_delete_topic_unreference_objects) {
  ASSERT_TRUE(store().delete_records("c", 0, 7));  // drops i1's rows of c-0 only
  auto none = store().list_unreferenced_objects(std::numeric_limits<int64_t>::max(), 10);
  ASSERT_TRUE(none) << none.message();
  EXPECT_TRUE(none->empty());  // i1 still holds c-1's row
  ASSERT_TRUE(store().delete_records("c", 0, -1));
  auto one = store().list_unreferenced_objects(std::numeric_limits<int64_t>::max(), 10);
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].object_key, "i2");
  ASSERT_TRUE(store().delete_topic("c"));
  auto both = store().list_unreferenced_objects(std::numeric_limits<int64_t>::max(), 10);
  ASSERT_TRUE(both);
  ASSERT_EQ(both->size(), 2u);
  std::set<std::string> keys{(*both)[0].object_key, (*both)[1].object_key};
  EXPECT_EQ(keys, (std::set<std::string>{"i1", "i2"}));
}

// The orphan sweep's question: which of these bucket keys does the metadata know? Registered
// objects count whether live or waiting for garbage collection; forgotten ones do not.
TEST_P(segment_swap, registered_objects_tells_orphans_apart) {
  auto known = store().registered_objects({"i2", "nope", "i1", "seg9"});
  ASSERT_TRUE(known) << known.message();
  EXPECT_EQ(*known, (std::vector<std::string>{"i2", "i1"}));
  auto swapped = store().replace_with_segment(swap_of(rows(), 0, 3, "seg0"));
  ASSERT_TRUE(swapped) << swapped.message();
  known = store().registered_objects({"seg0", "i2", "i1"});
  ASSERT_TRUE(known) << known.message();
  EXPECT_EQ(*known, (std::vector<std::string>{"seg0", "i2", "i1"}));  // i2 only unreferenced
  ASSERT_TRUE(store().forget_object("i2"));
  known = store().registered_objects({"seg0", "i2"});
  ASSERT_TRUE(known) << known.message();
  EXPECT_EQ(*known, (std::vector<std::string>{"seg0"}));
  auto empty = store().registered_objects({});
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  std::vector<std::string> too_many(10001, "k");
  EXPECT_EQ(store().registered_objects(too_many).error().code, errc::invalid_argument);
  // Keys with characters an array literal or a query would have to escape.
  const std::string odd = "we\"ird\\,{key} 'x'";
  commit_ok(object(odd, 100, {range("c", 1, 0, 10, {batch(1, 1)})}));
  known = store().registered_objects({"{", odd, "we", "\"", "seg0"});
  ASSERT_TRUE(known) << known.message();
  EXPECT_EQ(*known, (std::vector<std::string>{odd, "seg0"}));
  // More keys than one round trip takes (the PostgreSQL store asks 1000 per query).
  std::vector<std::string> many;
  for (int i = 0; i < 2500; ++i) many.push_back("absent-" + std::to_string(i));
  many[1700] = "seg0";
  known = store().registered_objects(many);
  ASSERT_TRUE(known) << known.message();
  EXPECT_EQ(*known, (std::vector<std::string>{"seg0"}));
}

INSTANTIATE_TEST_SUITE_P(stores, segment_swap, ::testing::ValuesIn(all_harness_factories()),
                         [](const ::testing::TestParamInfo<harness_factory>& info) {
                           return info.param.name;
                         });

INSTANTIATE_TEST_SUITE_P(stores, conformance, ::testing::ValuesIn(all_harness_factories()),
                         [](const ::testing::TestParamInfo<harness_factory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace sh::metadata::testing
