// Parquet export writer throughput: record_writer writing 50,000 Kafka-like records (16-byte key,
// 512-byte value, two headers) to a file per iteration, including close() (footer, fsync,
// rename). Args: codec (0 none, 1 snappy, 2 zstd), payload (0 events, 1 random).
// bytes_per_second counts the records' key + value + header bytes.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "bench_data.h"
#include "sh/parquet/record_writer.h"

namespace {

using sh::parquet::codec;

struct input {
  std::vector<std::string> keys, values;
  uint64_t bytes = 0;
};

const input& make_input(int payload_kind) {
  static input inputs[2];
  input& in = inputs[payload_kind];
  if (!in.keys.empty()) return in;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 50000; ++i) {
    in.keys.push_back("user-" + std::to_string(rng() % 1000000000));
    in.keys.back().resize(16, '0');
    in.values.push_back(payload_kind == 0 ? sh::bench::event_value(512, rng)
                                          : sh::bench::random_string(512, rng));
    in.bytes += in.keys.back().size() + in.values.back().size();
  }
  return in;
}

void BM_ParquetWrite(benchmark::State& state) {
  const codec c = static_cast<codec>(state.range(0));
  const input& in = make_input(static_cast<int>(state.range(1)));
  const std::string path = "/tmp/sh_parquet_bench." + std::to_string(::getpid()) + ".parquet";
  const std::string trace_id = "00-4bf92f3577b34da6a3ce929d0e0e4736";
  const sh::parquet::header_view headers[] = {{"ce", trace_id}, {"ty", "rec-v001"}};
  uint64_t header_bytes = 0;
  for (const auto& h : headers) header_bytes += h.key.size() + h.value->size();
  sh::parquet::writer_options opts;
  opts.compression = c;
  for (auto _ : state) {
    auto w = sh::parquet::record_writer::open(path, opts);
    if (!w) {
      state.SkipWithError(w.message().c_str());
      return;
    }
    for (size_t i = 0; i < in.keys.size(); ++i) {
      sh::parquet::record_row r{};
      r.topic = "events";
      r.partition = static_cast<int32_t>(i % 8);
      r.offset = static_cast<int64_t>(i);
      r.timestamp_ms = 1700000000000LL + static_cast<int64_t>(i);
      r.timestamp_type = 0;
      r.key = in.keys[i];
      r.value = in.values[i];
      r.headers = headers;
      auto a = (*w)->append(r);
      if (!a) {
        state.SkipWithError(a.message().c_str());
        return;
      }
    }
    auto cl = (*w)->close();
    if (!cl) {
      state.SkipWithError(cl.message().c_str());
      return;
    }
  }
  std::error_code ec;
  const auto file_size = std::filesystem::file_size(path, ec);
  // On-disk size relative to the payload bytes (compression ratio incl. Parquet overhead).
  if (!ec)
    state.counters["file/payload"] = static_cast<double>(file_size) /
                                     static_cast<double>(in.bytes + header_bytes * in.keys.size());
  std::remove(path.c_str());
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(in.keys.size()));
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(in.bytes + header_bytes * in.keys.size()));
}

BENCHMARK(BM_ParquetWrite)
    ->ArgNames({"codec", "random"})
    ->ArgsProduct({{0, 1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond);

}  // namespace
