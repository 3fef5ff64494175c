#include "sh/storage/read_cache.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <random>
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

// --- the disk tier -------------------------------------------------------------------------------

class read_cache_disk_test : public read_cache_test {
 protected:
  std::unique_ptr<read_cache> open(uint64_t memory, uint64_t disk) {
    auto c = read_cache::open(*_store, read_cache_options{memory, _cache_dir.path() / "rc", disk});
    EXPECT_TRUE(c) << c.message();
    return c ? std::move(*c) : nullptr;
  }
  // Every cache file and the sum of their sizes.
  std::pair<size_t, uint64_t> files_on_disk() {
    size_t n = 0;
    uint64_t total = 0;
    for (auto& f : std::filesystem::directory_iterator(_cache_dir.path() / "rc")) {
      ++n;
      total += f.file_size();
    }
    return {n, total};
  }
  static bool range_ok(const sresult<shared_bytes>& r, uint64_t offset, uint64_t length) {
    if (!r || (*r)->size() != length) return false;
    for (uint64_t i = 0; i < length; ++i) {
      if ((**r)[i] != static_cast<uint8_t>(offset + i)) return false;
    }
    return true;
  }
  testing::temp_dir _cache_dir;
};

// One file: 44-byte header + 3-byte key "obj" + data.
constexpr uint64_t file_of(uint64_t data) { return 44 + 3 + data; }

TEST_F(read_cache_disk_test, disk_hits_after_memory_eviction_skip_the_backend) {
  auto cache = open(150, 10'000);  // memory holds one 100-byte range
  ASSERT_TRUE(range_ok(cache->get_range("obj", 0, 100), 0, 100));
  ASSERT_TRUE(range_ok(cache->get_range("obj", 100, 100), 100, 100));  // evicts the first
  EXPECT_EQ(cache->stats().evictions, 1u);
  EXPECT_EQ(backend_reads(), 2u);
  // Both are on disk; the first comes back from there, not from the backend.
  auto again = cache->get_range("obj", 0, 100);
  EXPECT_TRUE(range_ok(again, 0, 100));
  EXPECT_EQ(backend_reads(), 2u);
  auto s = cache->stats();
  EXPECT_EQ(s.disk_hits, 1u);
  EXPECT_EQ(s.disk_misses, 2u);
  EXPECT_EQ(s.backend_reads, 2u);
  EXPECT_EQ(s.disk_entries, 2u);
  EXPECT_EQ(s.disk_bytes, 2 * file_of(100));
  // Promoted back to memory: the next read is a memory hit.
  const uint64_t hits = s.hits;
  ASSERT_TRUE(cache->get_range("obj", 0, 100));
  EXPECT_EQ(cache->stats().hits, hits + 1);
  EXPECT_EQ(cache->stats().disk_hits, 1u);
  // Even with the backend failing every read, disk-resident ranges are served.
  _store->add_rule(fault_rule(store_op::get_range, errc::unavailable).forever());
  EXPECT_TRUE(range_ok(cache->get_range("obj", 100, 100), 100, 100));
  // A range bigger than the memory tier is still kept on disk.
  _store->clear();
  ASSERT_TRUE(range_ok(cache->get_range("obj", 0, 500), 0, 500));
  ASSERT_TRUE(range_ok(cache->get_range("obj", 0, 500), 0, 500));
  EXPECT_EQ(backend_reads(), 3u);
}

TEST_F(read_cache_disk_test, disk_bytes_stay_within_capacity) {
  const uint64_t capacity = 3 * file_of(100) + 10;  // room for three files
  auto cache = open(0, capacity);                   // no memory tier at all
  for (uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(cache->get_range("obj", i * 100, 100));
  auto s = cache->stats();
  EXPECT_EQ(s.disk_entries, 3u);
  EXPECT_EQ(s.disk_evictions, 5u);
  EXPECT_LE(s.disk_bytes, capacity);
  auto [n, total] = files_on_disk();
  EXPECT_EQ(n, 3u);  // evicted files are deleted
  EXPECT_EQ(total, s.disk_bytes);
  // The newest three are hits, the oldest went away.
  const uint64_t before = backend_reads();
  for (uint64_t i = 5; i < 8; ++i)
    EXPECT_TRUE(range_ok(cache->get_range("obj", i * 100, 100), i * 100, 100));
  EXPECT_EQ(backend_reads(), before);
  ASSERT_TRUE(cache->get_range("obj", 0, 100));
  EXPECT_EQ(backend_reads(), before + 1);
  // A range larger than the disk tier is served, not written.
  ASSERT_TRUE(cache->get_range("obj", 0, 1000));
  EXPECT_LE(files_on_disk().second, capacity);
  EXPECT_LE(cache->stats().disk_bytes, capacity);
}

TEST_F(read_cache_disk_test, damaged_or_truncated_file_is_a_miss_and_deleted) {
  auto cache = open(0, 10'000);
  ASSERT_TRUE(cache->get_range("obj", 200, 100));
  ASSERT_TRUE(cache->get_range("obj", 300, 100));
  const auto flipped = cache->disk_file_for_test("obj", 200, 100);
  const auto truncated = cache->disk_file_for_test("obj", 300, 100);
  ASSERT_FALSE(flipped.empty());
  ASSERT_FALSE(truncated.empty());
  {
    // One data byte flipped in place (same size: only the checksum can tell).
    std::fstream f(flipped, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(44 + 3 + 50);
    f.put(static_cast<char>(0x5a));
  }
  std::filesystem::resize_file(truncated, 60);
  EXPECT_EQ(backend_reads(), 2u);
  EXPECT_TRUE(range_ok(cache->get_range("obj", 200, 100), 200, 100));  // right data, from S3
  EXPECT_TRUE(range_ok(cache->get_range("obj", 300, 100), 300, 100));
  EXPECT_EQ(backend_reads(), 4u);
  auto s = cache->stats();
  EXPECT_EQ(s.disk_corrupt, 2u);
  EXPECT_EQ(s.disk_hits, 0u);
  EXPECT_FALSE(std::filesystem::exists(flipped));
  EXPECT_FALSE(std::filesystem::exists(truncated));
  // Re-read ranges were written again, and now hit.
  EXPECT_EQ(s.disk_entries, 2u);
  EXPECT_EQ(files_on_disk().first, 2u);
  EXPECT_TRUE(range_ok(cache->get_range("obj", 200, 100), 200, 100));
  EXPECT_EQ(backend_reads(), 4u);
  EXPECT_EQ(cache->stats().disk_hits, 1u);
  // A file swapped for another range's (valid but wrong) file is refused too.
  const auto a = cache->disk_file_for_test("obj", 200, 100);
  const auto b = cache->disk_file_for_test("obj", 300, 100);
  std::filesystem::copy_file(b, a, std::filesystem::copy_options::overwrite_existing);
  EXPECT_TRUE(range_ok(cache->get_range("obj", 200, 100), 200, 100));
  EXPECT_EQ(cache->stats().disk_corrupt, 3u);
  EXPECT_EQ(backend_reads(), 5u);
}

TEST_F(read_cache_disk_test, single_flight_with_disk_tier) {
  auto cache = open(0, 10'000);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  _store->set_before_call([&](store_op, const std::string&) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return release; });
  });
  auto race = [&](uint64_t offset, uint64_t expect_joined) {
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&] {
        if (range_ok(cache->get_range("obj", offset, 50), offset, 50)) ++good;
      });
    }
    while (cache->stats().joined < expect_joined) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    {
      std::lock_guard lock(mu);
      release = true;
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
    EXPECT_EQ(good.load(), 8);
  };
  race(100, 7);  // a cold range: one backend read for eight callers
  EXPECT_EQ(backend_reads(), 1u);
  EXPECT_EQ(cache->stats().disk_entries, 1u);
  // A disk-resident range (no memory tier): eight callers, one disk read, no backend read.
  {
    std::lock_guard lock(mu);
    release = false;
  }
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (range_ok(cache->get_range("obj", 100, 50), 100, 50)) ++good;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 8);
  EXPECT_EQ(backend_reads(), 1u);
  auto s = cache->stats();
  // Every call was served by a disk read or by joining another caller's; none reached S3.
  EXPECT_EQ(s.disk_hits + (s.joined - 7), 8u);
}

TEST_F(read_cache_disk_test, concurrent_mixed_load_right_bytes_within_both_bounds) {
  const uint64_t disk_capacity = 6 * file_of(50);
  auto cache = open(200, disk_capacity);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 400; ++i) {
        const uint64_t off = (rng() % 12) * 50;
        if (!range_ok(cache->get_range("obj", off, 50), off, 50)) ++bad;
        if (i % 97 == 0) cache->invalidate("obj");
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, 0);
  auto s = cache->stats();
  EXPECT_LE(s.bytes, 200u);
  EXPECT_LE(s.disk_bytes, disk_capacity);
  auto [n, total] = files_on_disk();
  EXPECT_EQ(n, s.disk_entries);
  EXPECT_EQ(total, s.disk_bytes);
  EXPECT_GT(s.disk_hits, 0u);
  EXPECT_EQ(s.hits + s.disk_hits + s.backend_reads + s.joined, 1600u);
}

TEST_F(read_cache_disk_test, invalidate_and_restart_clear_files) {
  {
    auto cache = open(1000, 10'000);
    ASSERT_TRUE(cache->get_range("obj", 0, 10));
    ASSERT_TRUE(_store->put("other", bytes{1, 2}));
    ASSERT_TRUE(cache->get("other"));
    EXPECT_EQ(files_on_disk().first, 2u);
    cache->invalidate("obj");
    EXPECT_EQ(files_on_disk().first, 1u);
    EXPECT_EQ(cache->stats().disk_entries, 1u);
  }
  // A restart deletes the earlier run's cache files, and only those.
  { std::ofstream(_cache_dir.path() / "rc" / "keep.txt") << "x"; }
  auto cache = open(1000, 10'000);
  auto [n, total] = files_on_disk();
  EXPECT_EQ(n, 1u);
  EXPECT_TRUE(std::filesystem::exists(_cache_dir.path() / "rc" / "keep.txt"));
  (void)total;
  EXPECT_EQ(cache->stats().disk_entries, 0u);
  // Disk tier off: no directory needed.
  auto mem_only = read_cache::open(*_store, read_cache_options{100, {}, 0});
  ASSERT_TRUE(mem_only);
  EXPECT_EQ((*mem_only)->stats().disk_capacity, 0u);
}

}  // namespace
}  // namespace sh::storage
