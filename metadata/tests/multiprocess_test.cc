// Several processes on one database: concurrent writers in two processes, and a writer killed
// with SIGKILL in the middle of commits. Runs on every store (PostgreSQL when PG_DSN is set).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "store_harness.h"

namespace sh::metadata::testing {
namespace {

struct assignment {
  int32_t partition;
  int64_t base;
  int64_t last;
};

class multiprocess : public ::testing::TestWithParam<harness_factory> {
 protected:
  void SetUp() override {
    harness = GetParam().make();
    if (auto why = harness->skip_reason(); !why.empty()) GTEST_SKIP() << why;
  }
  std::unique_ptr<store_harness> harness;
};

range_commit make_range(const std::string& topic, int32_t partition, uint64_t at, int32_t offsets) {
  range_commit r;
  r.topic = topic;
  r.partition = partition;
  r.byte_offset = at;
  r.byte_length = 100;
  r.min_timestamp = 1;
  r.max_timestamp = 2;
  batch_commit b;
  b.offset_count = offsets;
  b.max_timestamp = 2;
  r.batches.push_back(b);
  return r;
}

// Child process body: `threads` writers commit random ranges of `topic` until `seconds` pass,
// appending every assignment to `out`. Exit status 0 when every commit succeeded. Uses _exit:
// the parent's connections (inherited through fork) must not be closed from here.
[[noreturn]] void run_writer_process(const std::string& url, const std::string& topic,
                                     int partitions, int threads, double seconds, int id,
                                     const std::string& out) {
  auto store = open_metadata_store(url);
  if (!store) _exit(10);
  std::mutex mu;
  std::vector<assignment> results;
  std::atomic<int> failures{0};
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(id * 100 + t));
      for (int i = 0; std::chrono::steady_clock::now() < deadline; ++i) {
        object_commit c;
        c.object_key = "p";
        c.object_key.append(std::to_string(id));
        c.object_key.append("-t").append(std::to_string(t)).append("-").append(std::to_string(i));
        c.object_size = 1000;
        const int n = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < n; ++k) {
          c.ranges.push_back(make_range(topic, static_cast<int32_t>(rng() % partitions),
                                        static_cast<uint64_t>(k) * 100,
                                        1 + static_cast<int32_t>(rng() % 5)));
        }
        auto r = (*store)->commit_object(c);
        if (!r || r->size() != c.ranges.size()) {
          ++failures;
          continue;
        }
        std::lock_guard lk(mu);
        for (size_t k = 0; k < r->size(); ++k) {
          if ((*r)[k].status != range_status::ok) ++failures;
          results.push_back({c.ranges[k].partition, (*r)[k].base_offset, (*r)[k].last_offset});
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  std::ofstream f(out);
  for (const auto& a : results) f << a.partition << ' ' << a.base << ' ' << a.last << '\n';
  f.close();
  _exit(failures.load() == 0 && f ? 0 : 11);
}

TEST_P(multiprocess, eight_writers_in_two_processes_leave_no_gaps_or_overlaps) {
  const bool postgres = GetParam().name.find("postgres") != std::string::npos;
  const int partitions = 16;
  const double seconds = postgres ? 10.0 : 3.0;  // the 10 s on PostgreSQL
  {
    auto store = harness->open();
    ASSERT_TRUE(store) << store.message();
    ASSERT_TRUE((*store)->create_topic("mp", partitions, {}));
  }
  temp_dir dir;
  std::vector<pid_t> children;
  for (int id = 0; id < 2; ++id) {
    std::string out = dir.path();
    out.append("/writer-").append(std::to_string(id));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) run_writer_process(harness->url(), "mp", partitions, 4, seconds, id, out);
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "writer status " << status;
  }
  // Every assignment the writers were told about, per partition.
  std::map<int32_t, std::map<int64_t, int64_t>> told;  // partition -> base -> last
  size_t total = 0;
  for (int id = 0; id < 2; ++id) {
    std::string path = dir.path();
    path.append("/writer-").append(std::to_string(id));
    std::ifstream f(path);
    assignment a{};
    while (f >> a.partition >> a.base >> a.last) {
      ASSERT_TRUE(told[a.partition].emplace(a.base, a.last).second)
          << "offset " << a.base << " of partition " << a.partition << " assigned twice";
      ++total;
    }
  }
  ASSERT_GT(total, 100u) << "too few commits to prove anything";
  auto store = harness->open();
  ASSERT_TRUE(store);
  for (int32_t p = 0; p < partitions; ++p) {
    auto state = (*store)->get_partition("mp", p);
    ASSERT_TRUE(state);
    auto index = (*store)->read_index("mp", p, 0, 1000000);
    ASSERT_TRUE(index);
    int64_t next = 0;
    std::map<int64_t, int64_t> indexed;
    for (const auto& e : *index) {
      ASSERT_EQ(e.base_offset, next) << "gap or overlap in partition " << p;
      indexed[e.base_offset] = e.last_offset;
      next = e.last_offset + 1;
    }
    EXPECT_EQ(next, state->high_watermark) << "partition " << p;
    EXPECT_EQ(indexed, told[p]) << "partition " << p << ": index differs from acknowledged";
  }
}

TEST_P(multiprocess, writer_killed_mid_commit_leaves_no_partial_commit) {
  // Every commit adds p+1 offsets to partition p (p = 0..3) in one object, so after any number
  // of whole commits high_watermark(p) = (p + 1) * commits, and every object has all 4 ranges.
  const int partitions = 4;
  {
    auto store = harness->open();
    ASSERT_TRUE(store) << store.message();
    ASSERT_TRUE((*store)->create_topic("kill", partitions, {}));
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 3; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto store = open_metadata_store(harness->url());
      if (!store) _exit(10);
      for (int i = 0;; ++i) {
        object_commit c;
        c.object_key = "r";
        c.object_key.append(std::to_string(round));
        c.object_key.append("-").append(std::to_string(i));
        c.object_size = 1000;
        for (int32_t p = 0; p < partitions; ++p) {
          c.ranges.push_back(make_range("kill", p, static_cast<uint64_t>(p) * 100, p + 1));
        }
        (void)(*store)->commit_object(c);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 300));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));
  }
  auto store = harness->open();
  ASSERT_TRUE(store);
  std::vector<int64_t> hw;
  std::map<std::string, int> ranges_per_object;
  for (int32_t p = 0; p < partitions; ++p) {
    auto state = (*store)->get_partition("kill", p);
    ASSERT_TRUE(state);
    hw.push_back(state->high_watermark);
    auto index = (*store)->read_index("kill", p, 0, 1000000);
    ASSERT_TRUE(index);
    int64_t next = 0;
    for (const auto& e : *index) {
      ASSERT_EQ(e.base_offset, next);
      ASSERT_EQ(e.last_offset - e.base_offset + 1, p + 1);
      next = e.last_offset + 1;
      ++ranges_per_object[e.object_key];
    }
    ASSERT_EQ(next, state->high_watermark);
  }
  ASSERT_GT(hw[0], 0) << "no commit landed before the kills";
  for (int32_t p = 0; p < partitions; ++p) EXPECT_EQ(hw[p], (p + 1) * hw[0]) << "partition " << p;
  for (const auto& [key, n] : ranges_per_object) {
    EXPECT_EQ(n, partitions) << "object " << key << " is partially committed";
  }
}

INSTANTIATE_TEST_SUITE_P(stores, multiprocess, ::testing::ValuesIn(all_harness_factories()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace sh::metadata::testing
