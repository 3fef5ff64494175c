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

// Footer parse of a finished 8 MiB object (what the read path and readers do per object),
// from its tail as a reader would fetch it. Arg: partitions (ranges in the footer).
void parse_ingest_object(benchmark::State& state) {
  const int partitions = static_cast<int>(state.range(0));
  const auto batch = random_bytes(16 * 1024);
  const size_t batches = (8u << 20) / batch.size();
  sh::storage::ingest_object_builder b("bench");
  for (size_t i = 0; i < batches; ++i) {
    b.add("topic", static_cast<int32_t>(i % partitions), batch, {16, 1000, 1000});
  }
  auto f = b.finish(0);
  auto tail = sh::storage::ingest_tail_size(std::span(f.data).last(16), f.data.size());
  if (!tail) {
    state.SkipWithError("tail size failed");
    return;
  }
  const auto tail_bytes = std::span(f.data).last(*tail);
  for (auto _ : state) {
    auto footer = sh::storage::parse_ingest_footer(tail_bytes, f.data.size());
    if (!footer) {
      state.SkipWithError("parse failed");
      break;
    }
    benchmark::DoNotOptimize(footer->ranges.data());
  }
  state.counters["footer_bytes"] = static_cast<double>(*tail);
  state.counters["ranges/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * static_cast<uint64_t>(partitions)),
      benchmark::Counter::kIsRate);
}
BENCHMARK(parse_ingest_object)->Arg(1)->Arg(16)->Arg(256);

// CRC check of every range of an 8 MiB object as fetched (verify_range).
void verify_ingest_ranges(benchmark::State& state) {
  const auto batch = random_bytes(16 * 1024);
  const size_t batches = (8u << 20) / batch.size();
  sh::storage::ingest_object_builder b("bench");
  for (size_t i = 0; i < batches; ++i) {
    b.add("topic", static_cast<int32_t>(i % 16), batch, {16, 1000, 1000});
  }
  auto f = b.finish(0);
  for (auto _ : state) {
    for (const auto& r : f.ranges) {
      auto ok = sh::storage::verify_range(std::span(f.data).subspan(r.offset, r.length), r);
      if (!ok) {
        state.SkipWithError("verify failed");
        return;
      }
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batches * batch.size()));
}
BENCHMARK(verify_ingest_ranges);

void crc32c_throughput(benchmark::State& state) {
  const auto data = random_bytes(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(sh::storage::crc32c(data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(crc32c_throughput)->Arg(4096)->Arg(1 << 20);

}  // namespace
