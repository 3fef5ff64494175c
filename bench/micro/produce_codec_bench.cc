// Produce request decode and encode with the generated codec: the first thing the broker does
// with every produce. One request carries 1,000 records in one batch (what librdkafka sends for
// one partition at linger.ms=5 under load) or spread over 10 partitions of 100 records.
//
// Args: value size in bytes, partitions, request version (7 = librdkafka 2.0 / kafkajs /
// kafka-python; 9 = first flexible version).
#include <benchmark/benchmark.h>

#include "bench_data.h"
#include "sh/kafka/messages/produce_request.h"

namespace {

using sh::kafka::produce_request;

produce_request make_request(size_t value_size, int partitions) {
  produce_request req;
  req.acks = -1;
  req.timeout_ms = 30000;
  auto& topic = req.topic_data.emplace_back();
  topic.name = "bench-topic";
  const size_t per_partition = 1000 / static_cast<size_t>(partitions);
  for (int p = 0; p < partitions; ++p) {
    auto& pd = topic.partition_data.emplace_back();
    pd.index = p;
    pd.records = sh::bench::make_batch(per_partition, value_size, sh::bench::payload::events,
                                       sh::kafka::compression_type::none, 7 + p);
  }
  return req;
}

size_t records_bytes(const produce_request& req) {
  size_t n = 0;
  for (const auto& t : req.topic_data) {
    for (const auto& p : t.partition_data) n += p.records ? p.records->size() : 0;
  }
  return n;
}

void produce_request_encode(benchmark::State& state) {
  const auto req =
      make_request(static_cast<size_t>(state.range(0)), static_cast<int>(state.range(1)));
  const auto version = static_cast<int16_t>(state.range(2));
  size_t out_size = 0;
  for (auto _ : state) {
    sh::kafka::byte_writer w;
    req.encode(w, version);
    out_size = w.size();
    benchmark::DoNotOptimize(w.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out_size));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 1000));
  state.counters["req_bytes"] = static_cast<double>(out_size);
}

// The same with the output buffer reserved up front (the size is known from the records blobs),
// to show how much of encode's time is the byte_writer's vector growing.
void produce_request_encode_reserved(benchmark::State& state) {
  const auto req =
      make_request(static_cast<size_t>(state.range(0)), static_cast<int>(state.range(1)));
  const auto version = static_cast<int16_t>(state.range(2));
  const size_t reserve = records_bytes(req) + 4096;
  size_t out_size = 0;
  for (auto _ : state) {
    sh::kafka::byte_writer w;
    w.reserve(reserve);
    req.encode(w, version);
    out_size = w.size();
    benchmark::DoNotOptimize(w.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out_size));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 1000));
  state.counters["req_bytes"] = static_cast<double>(out_size);
}

void produce_request_decode(benchmark::State& state) {
  const auto req =
      make_request(static_cast<size_t>(state.range(0)), static_cast<int>(state.range(1)));
  const auto version = static_cast<int16_t>(state.range(2));
  const auto bytes = sh::kafka::encode_message(req, version);
  for (auto _ : state) {
    sh::kafka::byte_reader r(bytes);
    produce_request out;
    if (!out.decode(r, version)) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::DoNotOptimize(out.topic_data.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 1000));
  state.counters["req_bytes"] = static_cast<double>(bytes.size());
  state.counters["records_bytes"] = static_cast<double>(records_bytes(req));
}

void args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"value", "partitions", "version"});
  for (int64_t value : {100, 1024}) {
    for (int64_t parts : {1, 10}) {
      for (int64_t v : {7, 9}) b->Args({value, parts, v});
    }
  }
}

BENCHMARK(produce_request_encode)->Apply(args);
BENCHMARK(produce_request_encode_reserved)->Apply(args);
BENCHMARK(produce_request_decode)->Apply(args);

}  // namespace
