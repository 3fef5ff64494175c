// PostgreSQL-specific tests: connection loss and reconnect, concurrent migration by brokers
// starting together, lock ordering between independent stores (brokers), url handling.
// Shared behaviour is in metadata_conformance_test.cc. Skipped unless PG_DSN is set.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "sh/metadata/metadata_store.h"
#include "store_harness.h"

namespace sh::metadata::testing {
namespace {

class postgres_store : public ::testing::Test {
 protected:
  void SetUp() override {
    _harness = make_postgres_harness();
    if (auto why = _harness->skip_reason(); !why.empty()) GTEST_SKIP() << why;
  }

  std::unique_ptr<metadata_store> open() {
    auto s = _harness->open();
    EXPECT_TRUE(s) << s.message();
    return s ? std::move(*s) : nullptr;
  }

  std::unique_ptr<store_harness> _harness;
};

TEST_F(postgres_store, survives_lost_connections) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_topic("t", 1, {}));
  ASSERT_TRUE(store->commit_object(one_range("o1", "t", 0, 3)));

  // Kill every server process serving this store (found by the application_name the harness set).
  std::string schema_name = _harness->url();
  auto pos = schema_name.find("sh_test_");
  ASSERT_NE(pos, std::string::npos);
  std::string app = schema_name.substr(pos, 24);
  auto killed = _harness->query_int(
      "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" +
      app + "'");
  ASSERT_TRUE(killed);
  EXPECT_GE(*killed, 1);

  // The next calls reconnect transparently.
  auto p = store->get_partition("t", 0);
  ASSERT_TRUE(p) << p.message();
  EXPECT_EQ(p->high_watermark, 3);
  _harness->query_int(
      "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" +
      app + "'");
  auto out = store->commit_object(one_range("o2", "t", 0, 2));
  ASSERT_TRUE(out) << out.message();
  EXPECT_EQ((*out)[0].base_offset, 3);
  EXPECT_EQ((*out)[0].last_offset, 4);
}

TEST_F(postgres_store, brokers_starting_together_migrate_once) {
  constexpr int k_brokers = 4;
  std::vector<std::unique_ptr<metadata_store>> stores(k_brokers);
  std::vector<std::string> errors(k_brokers);
  std::vector<std::thread> threads;
  for (int i = 0; i < k_brokers; ++i) {
    threads.emplace_back([&, i] {
      auto s = _harness->open();
      if (s) {
        stores[i] = std::move(*s);
      } else {
        errors[i] = s.message();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < k_brokers; ++i) EXPECT_TRUE(stores[i]) << errors[i];
  EXPECT_EQ(_harness->query_int("SELECT COUNT(*) FROM schema_version"),
            _harness->query_int("SELECT MAX(version) FROM schema_version"));
}

// Several brokers (stores with their own pools) commit objects that touch the same partitions in
// opposite orders. Locking in one global order means no deadlock ever surfaces, and offsets stay
// gap-free.
TEST_F(postgres_store, brokers_commit_the_same_partitions_without_deadlock) {
  constexpr int k_brokers = 3;
  constexpr int k_partitions = 6;
  constexpr int k_commits = 30;
  std::vector<std::unique_ptr<metadata_store>> stores;
  for (int i = 0; i < k_brokers; ++i) {
    stores.push_back(open());
    ASSERT_TRUE(stores.back());
  }
  ASSERT_TRUE(stores[0]->create_topic("hot", k_partitions, {}));
  std::atomic<int> failures{0};
  std::string first_error;
  std::mutex error_mu;
  std::vector<std::thread> threads;
  for (int b = 0; b < k_brokers; ++b) {
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, b, t] {
        for (int i = 0; i < k_commits; ++i) {
          object_commit c;
          // (appends: GCC 12 reports a false -Wrestrict for operator+ on a literal here)
          c.object_key.append(std::to_string(b)).append("/").append(std::to_string(t));
          c.object_key.append("/").append(std::to_string(i));
          c.object_size = 1000;
          for (int k = 0; k < k_partitions; ++k) {
            int32_t p = (t + b) % 2 == 0 ? k : k_partitions - 1 - k;  // both orders
            range_commit r;
            r.topic = "hot";
            r.partition = p;
            r.byte_offset = static_cast<uint64_t>(k) * 10;
            r.byte_length = 10;
            r.batches.push_back(batch_commit{2});
            c.ranges.push_back(r);
          }
          auto out = stores[b]->commit_object(c);
          if (!out) {
            ++failures;
            std::lock_guard lock(error_mu);
            if (first_error.empty()) first_error = out.message();
          }
        }
      });
    }
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0) << first_error;
  for (int32_t p = 0; p < k_partitions; ++p) {
    auto s = stores[0]->get_partition("hot", p);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->high_watermark, int64_t{k_brokers} * 2 * k_commits * 2);
    auto idx = stores[1]->read_index("hot", p, 0, 100000);
    ASSERT_TRUE(idx);
    int64_t next = 0;
    for (const auto& e : *idx) {
      EXPECT_EQ(e.base_offset, next);
      next = e.last_offset + 1;
    }
    EXPECT_EQ(next, s->high_watermark);
  }
}

// Brokers learn about each other's commits (LISTEN/NOTIFY), and a listener that lost its
// connection reconnects and says so (resync), since notifications may have been missed.
TEST_F(postgres_store, commits_are_notified_across_brokers) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->create_topic("n", 2, {}));
  std::mutex mu;
  std::condition_variable cv;
  std::map<int32_t, int64_t> hwm;
  int resyncs = 0;
  ASSERT_TRUE(
      b->set_commit_listener([&](const std::vector<partition_change>& changes, bool resync) {
        std::lock_guard lock(mu);
        if (resync) ++resyncs;
        for (const auto& c : changes)
          hwm[c.partition] = std::max(hwm[c.partition], c.high_watermark);
        cv.notify_all();
      }));
  ASSERT_TRUE(a->commit_object(one_range("o1", "n", 1, 4)));
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return hwm[1] == 4; }));
  }

  std::string url = _harness->url();
  std::string app = url.substr(url.find("sh_test_"), 24);
  _harness->query_int(
      "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" +
      app + "'");
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return resyncs > 0; }));
  }
  ASSERT_TRUE(a->commit_object(one_range("o2", "n", 1, 2)));
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return hwm[1] == 6; }));
}

// Stores in different schemas (e.g. two clusters on one server) don't hear each other.
TEST_F(postgres_store, notifications_stay_within_a_schema) {
  auto other_harness = make_postgres_harness();
  auto other = other_harness->open();
  ASSERT_TRUE(other) << other.message();
  auto mine = open();
  ASSERT_TRUE(mine);
  ASSERT_TRUE(mine->create_topic("n", 1, {}));
  ASSERT_TRUE((*other)->create_topic("n", 1, {}));
  std::atomic<int> heard{0};
  ASSERT_TRUE((*other)->set_commit_listener(
      [&](const std::vector<partition_change>& changes, bool) { heard += changes.size(); }));
  ASSERT_TRUE(mine->commit_object(one_range("o1", "n", 0, 1)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(heard.load(), 0);
  ASSERT_TRUE((*other)->commit_object(one_range("o1", "n", 0, 1)));
  for (int i = 0; i < 100 && heard.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(heard.load(), 1);
  (*other).reset();
}

TEST_F(postgres_store, describe_never_shows_the_password) {
  // trust authentication ignores the password; it must still not reach logs.
  std::string url = _harness->url();
  url += url.starts_with("postgresql:") && url.find("://") == std::string::npos
             ? " password=hunter2"
             : "&password=hunter2";
  auto s = open_metadata_store(url);
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ((*s)->describe().find("hunter2"), std::string::npos) << (*s)->describe();
  EXPECT_EQ((*s)->describe().rfind("postgresql://", 0), 0u) << (*s)->describe();
}

TEST_F(postgres_store, unreachable_server_is_an_io_error) {
  auto s = open_metadata_store("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.code(), errc::io_error) << s.message();
  auto empty = open_metadata_store("postgresql:");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.code(), errc::invalid_argument);
}

TEST_F(postgres_store, text_is_passed_verbatim) {
  auto store = open();
  ASSERT_TRUE(store);
  // Quotes, backslashes, braces and commas must survive the array encoding.
  std::map<std::string, std::string> configs{
      {"a\"b", "x\\y"}, {"c,d", "{e}"}, {"f g", "'h'"}, {"NULL", "NULL"}};
  ASSERT_TRUE(store->create_topic("weird", 1, configs));
  auto t = store->get_topic("weird");
  ASSERT_TRUE(t && t->has_value());
  EXPECT_EQ((*t)->configs, configs);
  object_commit c = one_range("key with \"quotes\", {braces} and \\", "weird", 0, 1);
  auto out = store->commit_object(c);
  ASSERT_TRUE(out) << out.message();
  auto idx = store->read_index("weird", 0, 0, 10);
  ASSERT_TRUE(idx);
  ASSERT_EQ(idx->size(), 1u);
  EXPECT_EQ((*idx)[0].object_key, c.object_key);
}

}  // namespace
}  // namespace sh::metadata::testing
