// Building and parsing ingest objects: the per-flush cost on the produce path.
#include <benchmark/benchmark.h>

#include <random>

#include "sh/storage/crc32c.h"
#include "sh/storage/ingest_object.h"

namespace {

std::vector<uint8_t> random_bytes(size_t n) {
  std::mt19937_64 rng(42);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

// 8 MiB object of 16 KiB batches spread over `partitions` partitions.
void build_ingest_object(benchmark::State& state) {
  const int partitions = static_cast<int>(state.range(0));
  const auto batch = random_bytes(16 * 1024);
  const size_t batches = (8u << 20) / batch.size();
  for (auto _ : state) {
    sh::storage::ingest_object_builder b("bench");
    for (size_t i = 0; i < batches; ++i) {
      b.add("topic", static_cast<int32_t>(i % partitions), batch, {16, 1000, 1000});
    }
    auto f = b.finish(0);
    benchmark::DoNotOptimize(f.data.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batches * batch.size()));
}
BENCHMARK(build_ingest_object)->Arg(1)->Arg(16)->Arg(256);

void crc32c_throughput(benchmark::State& state) {
  const auto data = random_bytes(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(sh::storage::crc32c(data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(crc32c_throughput)->Arg(4096)->Arg(1 << 20);

}  // namespace
