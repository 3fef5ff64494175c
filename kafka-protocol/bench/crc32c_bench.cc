// CRC32C throughput: dispatching entry point, SSE4.2 path and table path.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "sh/kafka/record_batch.h"

namespace {

std::vector<uint8_t> data(size_t n) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(1);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

template <uint32_t (*F)(uint32_t, const uint8_t*, size_t) noexcept>
void bm_crc(benchmark::State& state) {
  auto v = data(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(F(0, v.data(), v.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

}  // namespace

BENCHMARK(bm_crc<sh::kafka::crc32c>)->Arg(64)->Arg(1 << 10)->Arg(64 << 10)->Arg(1 << 20);
BENCHMARK(bm_crc<sh::kafka::crc32c_hardware>)->Arg(1 << 10)->Arg(1 << 20);
BENCHMARK(bm_crc<sh::kafka::crc32c_portable>)->Arg(1 << 10)->Arg(1 << 20);
