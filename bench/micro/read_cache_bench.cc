// read_cache hit throughput: what the fetch path gets from a warm cache. Every lookup is a hit
// on an exact (key, offset, length) batch range, as the fetch path asks for them; a hit hands out
// a shared buffer without copying, so the cost is the lock, the map lookup and the LRU splice.
// MB/s and records/s count the batch bytes and records served; for read_cache_hit no byte is
// touched (zero copy), so its MB/s is "bytes handed out", not memory bandwidth. The second
// variant also copies each hit into an output buffer, as a non-scatter-gather response writer
// would: its MB/s is the bandwidth-bound figure.
//
// Args: records per batch (1 KiB values), threads via ->Threads().
#include <benchmark/benchmark.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "bench_data.h"
#include "sh/storage/read_cache.h"

namespace {

namespace storage = sh::storage;

struct fixture {
  std::unique_ptr<storage::object_store> store;
  std::unique_ptr<storage::read_cache> cache;
  struct range {
    std::string key;
    uint64_t offset;
    uint64_t length;
  };
  std::vector<range> ranges;
  size_t records_per_range = 0;
};

// ~32 MiB of batches in 8 objects, all cached (capacity 256 MiB, the broker's default).
fixture& get_fixture(size_t records) {
  static std::mutex mu;
  static std::map<size_t, std::unique_ptr<fixture>> fixtures;
  std::lock_guard lock(mu);
  auto& f = fixtures[records];
  if (f) return *f;
  f = std::make_unique<fixture>();
  f->records_per_range = records;
  f->store = storage::open_memory_store();
  f->cache = std::make_unique<storage::read_cache>(*f->store, 256u << 20);
  const auto batch = sh::bench::make_batch(records, 1024, sh::bench::payload::events);
  const size_t per_object = std::max<size_t>(1, (4u << 20) / batch.size());
  for (int o = 0; o < 8; ++o) {
    std::vector<uint8_t> data;
    const std::string key = "ingest/bench/" + std::to_string(o) + ".ing";
    for (size_t i = 0; i < per_object; ++i) {
      f->ranges.push_back({key, data.size(), batch.size()});
      data.insert(data.end(), batch.begin(), batch.end());
    }
    (void)f->store->put(key, data);
  }
  for (const auto& r : f->ranges) (void)f->cache->get_range(r.key, r.offset, r.length);
  return *f;
}

void read_cache_hit(benchmark::State& state) {
  auto& f = get_fixture(static_cast<size_t>(state.range(0)));
  // Threads start at different places so they don't walk the same entries in lockstep.
  size_t i = static_cast<size_t>(state.thread_index()) * 7919 % f.ranges.size();
  uint64_t bytes = 0;
  for (auto _ : state) {
    const auto& r = f.ranges[i];
    auto hit = f.cache->get_range(r.key, r.offset, r.length);
    if (!hit) {
      state.SkipWithError("get_range failed");
      break;
    }
    bytes += (*hit)->size();
    benchmark::DoNotOptimize(hit->get());
    if (++i == f.ranges.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["records/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * f.records_per_range), benchmark::Counter::kIsRate);
  state.counters["hits/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(read_cache_hit)
    ->ArgName("records")
    ->Arg(1)
    ->Arg(16)
    ->Arg(1000)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

void read_cache_hit_copy(benchmark::State& state) {
  auto& f = get_fixture(static_cast<size_t>(state.range(0)));
  size_t i = static_cast<size_t>(state.thread_index()) * 7919 % f.ranges.size();
  std::vector<uint8_t> out(2u << 20);
  uint64_t bytes = 0;
  for (auto _ : state) {
    const auto& r = f.ranges[i];
    auto hit = f.cache->get_range(r.key, r.offset, r.length);
    if (!hit) {
      state.SkipWithError("get_range failed");
      break;
    }
    std::memcpy(out.data(), (*hit)->data(), std::min(out.size(), (*hit)->size()));
    bytes += (*hit)->size();
    benchmark::DoNotOptimize(out.data());
    if (++i == f.ranges.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["records/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * f.records_per_range), benchmark::Counter::kIsRate);
}
BENCHMARK(read_cache_hit_copy)
    ->ArgName("records")
    ->Arg(1)
    ->Arg(16)
    ->Arg(1000)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

}  // namespace
