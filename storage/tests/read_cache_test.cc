#include "sh/storage/read_cache.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <thread>

#include "sh/storage/fault_injecting_store.h"
#include "test_util.h"

namespace sh::storage {
namespace {

class read_cache_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto local = open_local_store(_dir.path());
    ASSERT_TRUE(local);
    _store = std::make_unique<fault_injecting_store>(std::move(*local));
    bytes data(1000);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i);
    ASSERT_TRUE(_store->put("obj", data));
  }
  uint64_t backend_reads() {
    return _store->calls(store_op::get_range) + _store->calls(store_op::get);
  }
  testing::temp_dir _dir;
  std::unique_ptr<fault_injecting_store> _store;
};

TEST_F(read_cache_test, hit_shares_the_buffer) {
  read_cache cache(*_store, 10'000);
  auto a = cache.get_range("obj", 10, 20);
  ASSERT_TRUE(a) << a.message();
  ASSERT_EQ((*a)->size(), 20u);
  EXPECT_EQ((**a)[0], 10);
  auto b = cache.get_range("obj", 10, 20);
  ASSERT_TRUE(b);
  EXPECT_EQ(a->get(), b->get());  // same buffer, no copy
  EXPECT_EQ(backend_reads(), 1u);
  auto s = cache.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.bytes, 20u);
  EXPECT_EQ(s.entries, 1u);
  // A different range is a different entry; a whole-object read too.
  ASSERT_TRUE(cache.get_range("obj", 10, 21));
  auto whole = cache.get("obj");
  ASSERT_TRUE(whole);
  EXPECT_EQ((*whole)->size(), 1000u);
  EXPECT_EQ(backend_reads(), 3u);
}

TEST_F(read_cache_test, lru_eviction_within_capacity) {
  read_cache cache(*_store, 300);
  ASSERT_TRUE(cache.get_range("obj", 0, 100));    // A
  ASSERT_TRUE(cache.get_range("obj", 100, 100));  // B
  ASSERT_TRUE(cache.get_range("obj", 200, 100));  // C
  ASSERT_TRUE(cache.get_range("obj", 0, 100));    // A again: now B is the oldest
  ASSERT_TRUE(cache.get_range("obj", 300, 100));  // D evicts B
  auto s = cache.stats();
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.bytes, 300u);
  const uint64_t before = backend_reads();
  ASSERT_TRUE(cache.get_range("obj", 0, 100));    // A: hit
  ASSERT_TRUE(cache.get_range("obj", 200, 100));  // C: hit
  EXPECT_EQ(backend_reads(), before);
  ASSERT_TRUE(cache.get_range("obj", 100, 100));  // B: miss
  EXPECT_EQ(backend_reads(), before + 1);
  EXPECT_LE(cache.stats().bytes, 300u);
  // Bigger than the whole cache: served, not kept, nothing evicted for it.
  auto big = cache.get_range("obj", 0, 500);
  ASSERT_TRUE(big);
  EXPECT_EQ((*big)->size(), 500u);
  EXPECT_EQ(cache.stats().entries, 3u);
}

TEST_F(read_cache_test, errors_are_not_cached) {
  read_cache cache(*_store, 10'000);
  EXPECT_EQ(cache.get_range("later", 0, 5).code(), errc::not_found);
  _store->add_rule(fault_rule(store_op::get_range, errc::unavailable));
  EXPECT_EQ(cache.get_range("obj", 0, 5).code(), errc::unavailable);
  ASSERT_TRUE(_store->put("later", bytes{1, 2, 3, 4, 5}));
  auto r = cache.get_range("later", 0, 5);
  ASSERT_TRUE(r) << r.message();
  EXPECT_TRUE(cache.get_range("obj", 0, 5));
}

TEST_F(read_cache_test, invalidate) {
  read_cache cache(*_store, 10'000);
  ASSERT_TRUE(cache.get_range("obj", 0, 10));
  ASSERT_TRUE(cache.get_range("obj", 5, 10));
  ASSERT_TRUE(_store->put("obj2", bytes{1}));
  ASSERT_TRUE(cache.get("obj2"));
  cache.invalidate("obj");
  auto s = cache.stats();
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.bytes, 1u);
  ASSERT_TRUE(_store->remove("obj"));
  EXPECT_EQ(cache.get_range("obj", 0, 10).code(), errc::not_found);
  EXPECT_TRUE(cache.get("obj2"));  // untouched
}

// Many callers missing on one range at once: one backend read, everyone gets its result.
TEST_F(read_cache_test, single_flight) {
  read_cache cache(*_store, 10'000);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> entered{0};
  _store->set_before_call([&](store_op, const std::string&) {
    ++entered;
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return release; });
  });
  std::vector<std::thread> threads;
  std::vector<shared_bytes> got(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto r = cache.get_range("obj", 100, 50);
      if (r) got[i] = *r;
    });
  }
  // Wait until the loader is inside the backend and the others have joined it.
  while (entered.load() == 0 || cache.stats().joined < 7) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  for (auto& t : threads) t.join();
  EXPECT_EQ(backend_reads(), 1u);
  for (auto& g : got) {
    ASSERT_TRUE(g);
    EXPECT_EQ(g.get(), got[0].get());
  }
  EXPECT_EQ(cache.stats().joined, 7u);
}

// A failed load is shared by its joiners, and the next caller retries.
TEST_F(read_cache_test, single_flight_error_is_shared_not_kept) {
  read_cache cache(*_store, 10'000);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  _store->add_rule(fault_rule(store_op::get_range, errc::timeout));
  _store->set_before_call([&](store_op, const std::string&) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return release; });
  });
  std::vector<std::thread> threads;
  std::atomic<int> timeouts{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (cache.get_range("obj", 0, 10).code() == errc::timeout) ++timeouts;
    });
  }
  while (cache.stats().joined < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  for (auto& t : threads) t.join();
  EXPECT_EQ(timeouts, 4);
  EXPECT_EQ(_store->calls(store_op::get_range), 1u);
  _store->set_before_call(nullptr);
  EXPECT_TRUE(cache.get_range("obj", 0, 10));
  EXPECT_EQ(_store->calls(store_op::get_range), 2u);
}

TEST_F(read_cache_test, concurrent_mixed_load_stays_within_capacity) {
  read_cache cache(*_store, 2'000);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 500; ++i) {
        const uint64_t off = (rng() % 20) * 50;
        auto r = cache.get_range("obj", off, 50);
        if (!r || (*r)->size() != 50 || (**r)[0] != static_cast<uint8_t>(off)) ++bad;
        if (i % 97 == 0) cache.invalidate("obj");
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, 0);
  auto s = cache.stats();
  EXPECT_LE(s.bytes, 2'000u);
  EXPECT_EQ(s.bytes, s.entries * 50);
}

}  // namespace
}  // namespace sh::storage
