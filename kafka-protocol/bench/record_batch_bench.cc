// Record batch validation and iteration (the produce path's per-batch work) and codec speed.
#include <benchmark/benchmark.h>
#include <zstd.h>

#include <string>

#include "sh/kafka/compression.h"
#include "sh/kafka/record_batch.h"

namespace {

using namespace sh::kafka;

std::vector<uint8_t> make_batch(int records, size_t value_size, int codec) {
  std::vector<record_spec> recs;
  for (int i = 0; i < records; ++i) {
    std::string value(value_size, 'a');
    for (size_t k = 0; k < value.size(); k += 7) value[k] = static_cast<char>('a' + (i + k) % 26);
    recs.push_back({"key-" + std::to_string(i), value, {}, i, std::nullopt, 0});
  }
  batch_build_options o;
  o.attributes = static_cast<int16_t>(codec);
  return build_batch(o, recs);
}

void bm_split_batches(benchmark::State& state) {
  auto batch = make_batch(1000, 1000, 0);  // ~1 MB
  for (auto _ : state) {
    auto split = split_batches(batch);
    benchmark::DoNotOptimize(split.has_value());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch.size()));
}
BENCHMARK(bm_split_batches);

void bm_iterate_records(benchmark::State& state) {
  const int codec = static_cast<int>(state.range(0));
  auto batch = make_batch(1000, 1000, codec);
  auto split = split_batches(batch);
  size_t n = 0;
  for (auto _ : state) {
    auto r = for_each_record((*split)[0], [&](const record_view& rec) { n += rec.value->size(); });
    benchmark::DoNotOptimize(r.has_value());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 1000);
  state.SetLabel(compression_name(static_cast<compression_type>(codec)));
}
BENCHMARK(bm_iterate_records)->DenseRange(0, 4);

void bm_compress(benchmark::State& state) {
  const auto codec = static_cast<compression_type>(state.range(0));
  auto plain = make_batch(1000, 1000, 0);
  for (auto _ : state) {
    auto out = compress(codec, plain);
    benchmark::DoNotOptimize(out.has_value());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * plain.size()));
  state.SetLabel(compression_name(codec));
}
BENCHMARK(bm_compress)->DenseRange(1, 4);

void bm_decompress(benchmark::State& state) {
  const auto codec = static_cast<compression_type>(state.range(0));
  auto plain = make_batch(1000, 1000, 0);
  auto packed = *compress(codec, plain);
  for (auto _ : state) {
    auto out = decompress(codec, packed, plain.size());
    benchmark::DoNotOptimize(out.has_value());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * plain.size()));
  state.SetLabel(compression_name(codec));
}
BENCHMARK(bm_decompress)->DenseRange(1, 4);

}  // namespace

namespace {

// zstd frames without a declared content size, as Java's zstd-jni streams write them: the
// streaming decompression path.
void bm_decompress_zstd_unknown_size(benchmark::State& state) {
  auto plain = make_batch(1000, 1000, 0);
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
  std::vector<uint8_t> packed(ZSTD_compressBound(plain.size()));
  ZSTD_outBuffer o{packed.data(), packed.size(), 0};
  ZSTD_inBuffer in{plain.data(), plain.size(), 0};
  ZSTD_compressStream2(c, &o, &in, ZSTD_e_end);
  ZSTD_freeCCtx(c);
  packed.resize(o.pos);
  for (auto _ : state) {
    auto out = decompress(compression_type::zstd, packed, plain.size());
    benchmark::DoNotOptimize(out.has_value());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * plain.size()));
}
BENCHMARK(bm_decompress_zstd_unknown_size);

}  // namespace
