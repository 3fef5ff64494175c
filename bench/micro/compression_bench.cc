// Compression codecs (kafka-protocol's compression.h): compress and decompress MB/s for each
// codec on a 1,000-record records section, with event-like values (compressible) and random
// values (incompressible). MB/s counts uncompressed bytes in both directions, so numbers are
// comparable across codecs; `ratio` is uncompressed / compressed.
//
// If kafka-protocol has no codec API, the binary still builds and says so.
#include <benchmark/benchmark.h>

#if __has_include("sh/kafka/compression.h")
#include "bench_data.h"
#include "sh/kafka/compression.h"

namespace {

namespace kafka = sh::kafka;

// The records section (no batch header) of 1,000 records: what a codec sees in a batch.
std::vector<uint8_t> records_section(sh::bench::payload kind) {
  auto batch = sh::bench::make_batch(1000, 1024, kind);
  return {batch.begin() + kafka::batch_header_size, batch.end()};
}

const char* codec_name(int64_t c) {
  return kafka::compression_name(static_cast<kafka::compression_type>(c));
}

// Args: codec (1 gzip, 2 snappy, 3 lz4, 4 zstd), payload (0 events, 1 random).
void compress(benchmark::State& state) {
  const auto codec = static_cast<kafka::compression_type>(state.range(0));
  const auto input = records_section(state.range(1) == 0 ? sh::bench::payload::events
                                                         : sh::bench::payload::random);
  size_t out_size = 0;
  for (auto _ : state) {
    auto r = kafka::compress(codec, input);
    if (!r) {
      state.SkipWithError("compress failed");
      break;
    }
    out_size = r->size();
    benchmark::DoNotOptimize(r->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * input.size()));
  state.counters["ratio"] =
      out_size ? static_cast<double>(input.size()) / static_cast<double>(out_size) : 0.0;
  state.SetLabel(std::string(codec_name(state.range(0))) +
                 (state.range(1) == 0 ? "/events" : "/random"));
}

void decompress(benchmark::State& state) {
  const auto codec = static_cast<kafka::compression_type>(state.range(0));
  const auto input = records_section(state.range(1) == 0 ? sh::bench::payload::events
                                                         : sh::bench::payload::random);
  auto compressed = kafka::compress(codec, input);
  if (!compressed) {
    state.SkipWithError("compress failed");
    return;
  }
  for (auto _ : state) {
    auto r = kafka::decompress(codec, *compressed, input.size());
    if (!r || r->size() != input.size()) {
      state.SkipWithError("decompress failed");
      break;
    }
    benchmark::DoNotOptimize(r->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * input.size()));
  state.counters["ratio"] =
      static_cast<double>(input.size()) / static_cast<double>(compressed->size());
  state.SetLabel(std::string(codec_name(state.range(0))) +
                 (state.range(1) == 0 ? "/events" : "/random"));
}

void args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"codec", "random"});
  for (int64_t codec = 1; codec <= 4; ++codec) {
    for (int64_t kind : {0, 1}) b->Args({codec, kind});
  }
}
BENCHMARK(compress)->Apply(args);
BENCHMARK(decompress)->Apply(args);

}  // namespace

#else

namespace {
void compression_codecs_not_available(benchmark::State& state) {
  for (auto _ : state) {
  }
  state.SkipWithError("sh/kafka/compression.h not present: no codec API to measure");
}
BENCHMARK(compression_codecs_not_available);
}  // namespace

#endif
