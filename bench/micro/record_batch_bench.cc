// Record batch hot paths on the produce and fetch sides: split_batches (framing + CRC32C check
// of every batch, what produce validation does), record iteration over a batch (what legacy
// conversion, timestamp checks and readers do), and CRC32C itself, hardware and portable.
#include <benchmark/benchmark.h>

#include "bench_data.h"
#include "sh/kafka/record_batch.h"

namespace {

namespace kafka = sh::kafka;
using sh::bench::payload;

// A records blob of `batches` batches of `records` records with `value` byte values.
std::vector<uint8_t> make_blob(size_t batches, size_t records, size_t value) {
  std::vector<uint8_t> blob;
  for (size_t i = 0; i < batches; ++i) {
    auto b = sh::bench::make_batch(records, value, payload::events, kafka::compression_type::none,
                                   100 + i);
    blob.insert(blob.end(), b.begin(), b.end());
  }
  return blob;
}

// Args: batches in the blob, records per batch, value size.
void split_batches_crc(benchmark::State& state) {
  const auto blob =
      make_blob(static_cast<size_t>(state.range(0)), static_cast<size_t>(state.range(1)),
                static_cast<size_t>(state.range(2)));
  for (auto _ : state) {
    auto r = kafka::split_batches(blob);
    if (!r) {
      state.SkipWithError("split failed");
      break;
    }
    benchmark::DoNotOptimize(r->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * blob.size()));
  state.counters["batches/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * state.range(0)), benchmark::Counter::kIsRate);
}
BENCHMARK(split_batches_crc)
    ->ArgNames({"batches", "records", "value"})
    ->Args({1, 1000, 100})
    ->Args({1, 1000, 1024})
    ->Args({64, 16, 1024})
    ->Args({1000, 1, 100});

// Iterates every record of one uncompressed batch, touching key and value sizes.
void record_iteration(benchmark::State& state) {
  const size_t records = static_cast<size_t>(state.range(0));
  const auto batch =
      sh::bench::make_batch(records, static_cast<size_t>(state.range(1)), payload::events);
  auto split = kafka::split_batches(batch);
  if (!split || split->size() != 1) {
    state.SkipWithError("bad batch");
    return;
  }
  const auto view = (*split)[0];
  for (auto _ : state) {
    size_t total = 0;
    auto r = kafka::for_each_record(view, [&](const kafka::record_view& rec) {
      total += (rec.key ? rec.key->size() : 0) + (rec.value ? rec.value->size() : 0);
    });
    if (!r) {
      state.SkipWithError("iteration failed");
      break;
    }
    benchmark::DoNotOptimize(total);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * records));
}
BENCHMARK(record_iteration)
    ->ArgNames({"records", "value"})
    ->Args({1000, 100})
    ->Args({1000, 1024})
    ->Args({1000, 10});

// Iteration of a compressed batch: decompression + framing, what a reader pays per batch.
void record_iteration_compressed(benchmark::State& state) {
  const auto codec = static_cast<kafka::compression_type>(state.range(0));
  const auto batch = sh::bench::make_batch(1000, 1024, payload::events, codec);
  auto split = kafka::split_batches(batch);
  if (!split || split->size() != 1 || (*split)[0].header.compression() != codec) {
    state.SkipWithError("bad batch (codec not built in?)");
    return;
  }
  const auto view = (*split)[0];
  for (auto _ : state) {
    size_t n = 0;
    auto r = kafka::for_each_record(view, [&](const kafka::record_view&) { ++n; });
    if (!r) {
      state.SkipWithError("iteration failed");
      break;
    }
    benchmark::DoNotOptimize(n);
  }
  // Bytes = uncompressed record bytes delivered, the number comparable across codecs.
  auto plain = sh::bench::make_batch(1000, 1024, payload::events);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * plain.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 1000));
  static const char* const names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
  state.SetLabel(names[state.range(0)]);
}
BENCHMARK(record_iteration_compressed)->ArgName("codec")->DenseRange(1, 4);

void crc32c_hardware(benchmark::State& state) {
  if (!kafka::crc32c_hardware_available()) {
    state.SkipWithError("no SSE4.2 on this CPU");
    return;
  }
  const auto data = sh::bench::random_bytes(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(kafka::crc32c_hardware(0, data.data(), data.size()));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(crc32c_hardware)->Arg(64)->Arg(4096)->Arg(1 << 20);

void crc32c_portable(benchmark::State& state) {
  const auto data = sh::bench::random_bytes(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(kafka::crc32c_portable(0, data.data(), data.size()));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(crc32c_portable)->Arg(64)->Arg(4096)->Arg(1 << 20);

// The dispatching entry point everything calls.
void crc32c_dispatch(benchmark::State& state) {
  const auto data = sh::bench::random_bytes(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(kafka::crc32c(data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(crc32c_dispatch)->Arg(1 << 20);

}  // namespace
