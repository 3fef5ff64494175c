// index_cache on every store implementation (SQLite, and PostgreSQL when PG_DSN is set): answers
// equal the store's, commits by this or another store object become visible through
// notifications (or polling when notifications are off), no stale read under concurrent
// commits, and the memory bounds hold.
#include "sh/metadata/index_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "store_harness.h"

namespace sh::metadata::testing {
namespace {

using namespace std::chrono_literals;

// Records the largest high watermark notified per partition; lets a test wait for one.
class change_log {
 public:
  commit_listener listener() {
    return [this](const std::vector<partition_change>& changes, bool) {
      std::lock_guard lock(_mu);
      for (const auto& c : changes) {
        auto& v = _hwm[{c.topic, c.partition}];
        v = std::max(v, c.high_watermark);
      }
      _cv.notify_all();
    };
  }
  bool wait_for(const std::string& topic, int32_t partition, int64_t hwm,
                std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(_mu);
    return _cv.wait_for(lock, timeout, [&] { return _hwm[{topic, partition}] >= hwm; });
  }
  int64_t get(const std::string& topic, int32_t partition) {
    std::lock_guard lock(_mu);
    return _hwm[{topic, partition}];
  }

 private:
  std::mutex _mu;
  std::condition_variable _cv;
  std::map<std::pair<std::string, int32_t>, int64_t> _hwm;
};

class index_cache_test : public ::testing::TestWithParam<harness_factory> {
 protected:
  void SetUp() override {
    _harness = GetParam().make();
    if (auto why = _harness->skip_reason(); !why.empty()) GTEST_SKIP() << why;
    _store = open();
  }
  std::shared_ptr<metadata_store> open() {
    auto opened = _harness->open();
    EXPECT_TRUE(opened) << opened.message();
    return opened ? std::shared_ptr<metadata_store>(std::move(*opened)) : nullptr;
  }
  int64_t commit(metadata_store& s, const std::string& topic, int32_t partition, int32_t records) {
    auto r = s.commit_object(one_range(key(), topic, partition, records, 1000));
    EXPECT_TRUE(r) << r.message();
    if (!r || r->empty()) return -1;
    EXPECT_EQ((*r)[0].status, range_status::ok);
    return (*r)[0].last_offset;
  }
  std::string key() { return "obj-" + std::to_string(_next_key.fetch_add(1)); }

  std::unique_ptr<store_harness> _harness;
  std::shared_ptr<metadata_store> _store;
  std::atomic<int> _next_key{0};
};

TEST_P(index_cache_test, answers_equal_the_stores_and_hits_are_served_from_memory) {
  ASSERT_TRUE(_store->create_topic("t", 2, {}));
  for (int i = 0; i < 40; ++i) commit(*_store, "t", i % 2, 1 + i % 3);
  index_cache cache(_store);
  change_log log;
  cache.start(log.listener());
  for (int32_t part = 0; part < 2; ++part) {
    auto truth = _store->get_partition("t", part);
    ASSERT_TRUE(truth);
    for (int round = 0; round < 2; ++round) {
      auto s = cache.get_partition("t", part);
      ASSERT_TRUE(s) << s.message();
      EXPECT_EQ(s->high_watermark, truth->high_watermark);
      EXPECT_EQ(s->log_start_offset, truth->log_start_offset);
      EXPECT_EQ(s->max_timestamp, truth->max_timestamp);
    }
    for (int64_t from = 0; from <= truth->high_watermark; ++from) {
      for (size_t max : {size_t{1}, size_t{3}, size_t{100}}) {
        auto want = _store->read_index("t", part, from, max);
        auto got = cache.read_index("t", part, from, max);
        ASSERT_TRUE(want && got);
        // The cache may stop early where its knowledge ends, never skip or invent an entry.
        ASSERT_LE(got->size(), want->size());
        if (!want->empty()) {
          ASSERT_FALSE(got->empty()) << "from " << from;
        }
        for (size_t i = 0; i < got->size(); ++i) {
          EXPECT_EQ((*got)[i].base_offset, (*want)[i].base_offset);
          EXPECT_EQ((*got)[i].last_offset, (*want)[i].last_offset);
          EXPECT_EQ((*got)[i].object_key, (*want)[i].object_key);
        }
      }
    }
  }
  auto st = cache.stats();
  EXPECT_EQ(st.state_misses, 2u);  // one per partition, the rest from memory
  EXPECT_GT(st.index_hits, 10 * st.index_misses);
  EXPECT_FALSE(cache.get_partition("nope", 0));
  EXPECT_EQ(cache.get_partition("nope", 0).code(), errc::not_found);
  EXPECT_EQ(cache.get_partition("t", 7).code(), errc::not_found);
}

// Commits through the same store object (SQLite: in-process) and through another store object
// (PostgreSQL: another connection, via NOTIFY) are seen once notified, without a store read.
TEST_P(index_cache_test, notified_commits_are_visible) {
  ASSERT_TRUE(_store->create_topic("t", 1, {}));
  index_cache cache(_store);
  change_log log;
  cache.start(log.listener());
  ASSERT_TRUE(cache.notifications_active());
  ASSERT_EQ(cache.get_partition("t", 0)->high_watermark, 0);
  ASSERT_TRUE(cache.read_index("t", 0, 0, 10)->empty());

  std::vector<std::shared_ptr<metadata_store>> writers{_store};
  const bool shared_db = GetParam().name != "sqlite";  // other SQLite objects are not notified
  if (shared_db) {
    writers.push_back(open());
  }
  int64_t expect = 0;
  for (int i = 0; i < 10; ++i) {
    auto& w = *writers[i % writers.size()];
    const int64_t last = commit(w, "t", 0, 2);
    ASSERT_EQ(last, expect + 1);
    expect = last + 1;
    ASSERT_TRUE(log.wait_for("t", 0, expect)) << "no notification for hwm " << expect;
    const auto misses = cache.stats().state_misses;
    auto s = cache.get_partition("t", 0);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->high_watermark, expect);
    EXPECT_EQ(cache.stats().state_misses, misses) << "notified state should be applied in place";
    auto e = cache.read_index("t", 0, last, 10);
    ASSERT_TRUE(e);
    ASSERT_EQ(e->size(), 1u);
    EXPECT_EQ((*e)[0].last_offset, last);
  }
}

TEST_P(index_cache_test, polling_fallback_sees_other_writers) {
  ASSERT_TRUE(_store->create_topic("t", 1, {}));
  index_cache_options opts;
  opts.notifications = false;
  opts.poll_interval = 50ms;
  index_cache cache(_store, opts);
  change_log log;
  cache.start(log.listener());
  EXPECT_FALSE(cache.notifications_active());
  ASSERT_EQ(cache.get_partition("t", 0)->high_watermark, 0);
  auto other = open();  // another store object on the same database
  ASSERT_TRUE(other);
  const int64_t last = commit(*other, "t", 0, 5);
  ASSERT_EQ(last, 4);
  ASSERT_TRUE(log.wait_for("t", 0, 5, 5s)) << "the poller did not report the commit";
  EXPECT_EQ(cache.get_partition("t", 0)->high_watermark, 5);
  EXPECT_GT(cache.stats().polls, 0u);
  // Even without waiting for the poller, a cached state is at most poll_interval old.
  commit(*other, "t", 0, 1);
  std::this_thread::sleep_for(opts.poll_interval + 20ms);
  EXPECT_EQ(cache.get_partition("t", 0)->high_watermark, 6);
}

// Notifications are on but some commits are never notified to this cache (SQLite: another store
// object on the same file; the same gap as a PostgreSQL LISTEN connection that hangs): the safety
// poll finds the moved watermark, reports it like a notification (waking long-polls) and the
// cache serves it.
TEST_P(index_cache_test, safety_poll_catches_missed_notifications) {
  ASSERT_TRUE(_store->create_topic("t", 1, {}));
  index_cache_options opts;
  opts.safety_poll_interval = 100ms;
  opts.state_ttl = 60s;  // only the safety poll (or a notification) can refresh the state
  index_cache cache(_store, opts);
  change_log log;
  cache.start(log.listener());
  ASSERT_TRUE(cache.notifications_active());
  ASSERT_EQ(cache.get_partition("t", 0)->high_watermark, 0);
  auto other = open();
  ASSERT_TRUE(other);
  ASSERT_EQ(commit(*other, "t", 0, 3), 2);
  ASSERT_TRUE(log.wait_for("t", 0, 3, 5s)) << "the unnotified commit was never reported";
  EXPECT_EQ(cache.get_partition("t", 0)->high_watermark, 3);
  if (GetParam().name == "sqlite") {
    EXPECT_GE(cache.stats().missed, 1u);
  }
}

// A writer commits while readers read through the cache: every reader's high watermark never
// goes down and is never below what was notified before the read started; every offset the
// writer got acknowledged (and saw notified) is readable through the cache at once.
TEST_P(index_cache_test, no_stale_reads_under_concurrent_commits) {
  ASSERT_TRUE(_store->create_topic("t", 2, {}));
  index_cache_options opts;
  opts.state_ttl = 5ms;  // force refills to race with notifications
  opts.fill_entries = 4;
  index_cache cache(_store, opts);
  std::atomic<int64_t> notified[2] = {0, 0};
  cache.start([&](const std::vector<partition_change>& changes, bool) {
    for (const auto& c : changes) {
      auto& n = notified[c.partition];
      int64_t cur = n.load();
      while (cur < c.high_watermark && !n.compare_exchange_weak(cur, c.high_watermark)) {
      }
    }
  });
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int64_t> reads{0};
  auto fail = [&](const std::string& what) {
    if (failures.fetch_add(1) < 5) ADD_FAILURE() << what;
  };
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937 rng(r);
      int64_t seen[2] = {0, 0};
      while (!stop.load()) {
        const int32_t part = static_cast<int32_t>(rng() % 2);
        const int64_t floor = notified[part].load();
        auto s = cache.get_partition("t", part);
        if (!s) {
          fail("get_partition: " + s.message());
          continue;
        }
        if (s->high_watermark < floor) {
          fail("stale hwm " + std::to_string(s->high_watermark) + " after notification of " +
               std::to_string(floor));
        }
        if (s->high_watermark < seen[part]) fail("hwm went down");
        seen[part] = s->high_watermark;
        if (s->high_watermark > 0) {
          const int64_t off = static_cast<int64_t>(rng() % s->high_watermark);
          auto e = cache.read_index("t", part, off, 3);
          if (!e || e->empty() || (*e)[0].base_offset > off || (*e)[0].last_offset < off) {
            fail("offset " + std::to_string(off) + " below hwm not found in the index");
          }
        }
        reads.fetch_add(1);
      }
    });
  }
  const auto until = std::chrono::steady_clock::now() + 3s;
  int commits = 0;
  while (std::chrono::steady_clock::now() < until && failures.load() == 0) {
    const int32_t part = commits % 2;
    const int64_t last = commit(*_store, "t", part, 1 + commits % 3);
    ++commits;
    // Acknowledged: wait for its notification, then it must be visible through the cache.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (notified[part].load() < last + 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    ASSERT_GE(notified[part].load(), last + 1) << "no notification";
    auto s = cache.get_partition("t", part);
    ASSERT_TRUE(s);
    ASSERT_GE(s->high_watermark, last + 1);
    auto e = cache.read_index("t", part, last, 1);
    ASSERT_TRUE(e && e->size() == 1);
    ASSERT_EQ((*e)[0].last_offset, last);
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(commits, 20);
  EXPECT_GT(reads.load(), 100);
}

TEST_P(index_cache_test, bounds_are_respected) {
  ASSERT_TRUE(_store->create_topic("t", 10, {}));
  for (int i = 0; i < 200; ++i) commit(*_store, "t", i % 10, 1);
  index_cache_options opts;
  opts.max_partitions = 4;
  opts.max_entries = 30;
  opts.fill_entries = 8;
  index_cache cache(_store, opts);
  cache.start({});
  for (int round = 0; round < 3; ++round) {
    for (int32_t part = 0; part < 10; ++part) {
      auto s = cache.get_partition("t", part);
      ASSERT_TRUE(s);
      ASSERT_EQ(s->high_watermark, 20);
      for (int64_t off = 0; off < 20;) {
        auto e = cache.read_index("t", part, off, 16);
        ASSERT_TRUE(e && !e->empty());
        ASSERT_EQ((*e)[0].base_offset, off);
        off = e->back().last_offset + 1;
        auto st = cache.stats();
        ASSERT_LE(st.partitions, 4u);
        ASSERT_LE(st.entries, 30u);
      }
    }
  }
  EXPECT_GT(cache.stats().evictions, 0u);
}

TEST_P(index_cache_test, invalidation_forgets_and_rereads) {
  ASSERT_TRUE(_store->create_topic("t", 1, {}));
  commit(*_store, "t", 0, 10);
  index_cache cache(_store);
  cache.start({});
  ASSERT_EQ(cache.get_partition("t", 0)->log_start_offset, 0);
  ASSERT_TRUE(_store->delete_records("t", 0, 10));  // not notified
  // refresh_partition reads the store; invalidate_topic makes the next get do so.
  EXPECT_EQ(cache.refresh_partition("t", 0)->log_start_offset, 10);
  EXPECT_EQ(cache.get_partition("t", 0)->log_start_offset, 10);
  ASSERT_TRUE(_store->delete_topic("t"));
  ASSERT_TRUE(_store->create_topic("t", 1, {}));
  cache.invalidate_topic("t");
  EXPECT_EQ(cache.get_partition("t", 0)->high_watermark, 0);
  EXPECT_TRUE(cache.read_index("t", 0, 0, 5)->empty());
}

INSTANTIATE_TEST_SUITE_P(stores, index_cache_test, ::testing::ValuesIn(all_harness_factories()),
                         [](const ::testing::TestParamInfo<harness_factory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace sh::metadata::testing
