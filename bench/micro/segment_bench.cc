// Segments: what compaction pays to build one (copy + offset patch + running CRC + sparse
// index + footer), and what a reader pays to parse a footer and find a position.
#include <benchmark/benchmark.h>

#include "bench_data.h"
#include "sh/storage/segment.h"

namespace {

namespace storage = sh::storage;

// Batches of `records` 1 KiB event records, `total` bytes of them.
std::vector<std::vector<uint8_t>> make_batches(size_t total, size_t records) {
  std::vector<std::vector<uint8_t>> out;
  // A handful of distinct batches reused: building them is not what we measure.
  std::vector<std::vector<uint8_t>> distinct;
  for (int i = 0; i < 8; ++i) {
    distinct.push_back(sh::bench::make_batch(records, 1024, sh::bench::payload::events,
                                             sh::kafka::compression_type::none, 300 + i));
  }
  size_t size = 0;
  for (size_t i = 0; size < total; ++i) {
    out.push_back(distinct[i % distinct.size()]);
    size += out.back().size();
  }
  return out;
}

// Arg: records per batch. 32 MiB of data per segment.
void segment_build(benchmark::State& state) {
  const size_t records = static_cast<size_t>(state.range(0));
  const auto batches = make_batches(32u << 20, records);
  size_t bytes = 0;
  for (const auto& b : batches) bytes += b.size();
  for (auto _ : state) {
    storage::segment_builder builder("bench", "topic", 0);
    int64_t offset = 0;
    for (const auto& b : batches) {
      if (!builder.add(b, offset)) {
        state.SkipWithError("add failed");
        return;
      }
      offset += static_cast<int64_t>(records);
    }
    auto f = builder.finish(0);
    benchmark::DoNotOptimize(f.data.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["batches/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * batches.size()), benchmark::Counter::kIsRate);
}
BENCHMARK(segment_build)
    ->ArgName("records")
    ->Arg(1)
    ->Arg(16)
    ->Arg(1000)
    ->Unit(benchmark::kMillisecond);

// Footer parse of a 32 MiB segment (index every 64 KiB: ~512 entries), from its tail.
void segment_footer_parse(benchmark::State& state) {
  const auto batches = make_batches(32u << 20, 16);
  storage::segment_builder builder("bench", "topic", 0);
  int64_t offset = 0;
  for (const auto& b : batches) {
    (void)builder.add(b, offset);
    offset += 16;
  }
  auto f = builder.finish(0);
  auto tail = storage::segment_tail_size(std::span(f.data).last(16), f.data.size());
  if (!tail) {
    state.SkipWithError("tail size failed");
    return;
  }
  const auto tail_bytes = std::span(f.data).last(*tail);
  for (auto _ : state) {
    auto info = storage::parse_segment_footer(tail_bytes, f.data.size());
    if (!info) {
      state.SkipWithError("parse failed");
      break;
    }
    benchmark::DoNotOptimize(info->index.data());
  }
  state.counters["footer_bytes"] = static_cast<double>(*tail);
  state.counters["index_entries"] = static_cast<double>(f.info.index.size());
}
BENCHMARK(segment_footer_parse);

// Sparse index lookup: position_for_offset on a parsed footer.
void segment_position_lookup(benchmark::State& state) {
  const auto batches = make_batches(32u << 20, 16);
  storage::segment_builder builder("bench", "topic", 0);
  int64_t offset = 0;
  for (const auto& b : batches) {
    (void)builder.add(b, offset);
    offset += 16;
  }
  auto f = builder.finish(0);
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    auto pos =
        f.info.position_for_offset(static_cast<int64_t>(rng() % static_cast<uint64_t>(offset)));
    benchmark::DoNotOptimize(pos);
  }
}
BENCHMARK(segment_position_lookup);

// Whole-data CRC check a reader may run after fetching a segment.
void segment_verify_data(benchmark::State& state) {
  const auto batches = make_batches(32u << 20, 16);
  storage::segment_builder builder("bench", "topic", 0);
  int64_t offset = 0;
  for (const auto& b : batches) {
    (void)builder.add(b, offset);
    offset += 16;
  }
  auto f = builder.finish(0);
  for (auto _ : state) {
    auto r = storage::verify_segment_data(std::span(f.data).first(f.info.data_length), f.info);
    if (!r) {
      state.SkipWithError("verify failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.info.data_length));
}
BENCHMARK(segment_verify_data)->Unit(benchmark::kMillisecond);

}  // namespace
