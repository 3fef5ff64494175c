// Generated codec speed on the hot APIs: Produce request decode, Fetch response encode,
// Metadata response encode, request header decode.
#include <benchmark/benchmark.h>

#include <string>

#include "sh/kafka/messages/fetch_response.h"
#include "sh/kafka/messages/metadata_response.h"
#include "sh/kafka/messages/produce_request.h"
#include "sh/kafka/messages/request_header.h"
#include "sh/kafka/wire.h"

namespace {

using namespace sh::kafka;

produce_request make_produce(int topics, int partitions, size_t records_bytes) {
  produce_request req;
  req.acks = -1;
  req.timeout_ms = 30000;
  for (int t = 0; t < topics; ++t) {
    auto& td = req.topic_data.emplace_back();
    td.name = "topic-" + std::to_string(t);
    for (int p = 0; p < partitions; ++p) {
      auto& pd = td.partition_data.emplace_back();
      pd.index = p;
      pd.records = std::vector<uint8_t>(records_bytes, 0x5a);
    }
  }
  return req;
}

void bm_produce_request_decode(benchmark::State& state) {
  const int16_t version = static_cast<int16_t>(state.range(0));
  auto bytes = encode_message(make_produce(2, 8, 16 << 10), version);
  for (auto _ : state) {
    byte_reader r(bytes);
    produce_request req;
    benchmark::DoNotOptimize(req.decode(r, version));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}
BENCHMARK(bm_produce_request_decode)->Arg(7)->Arg(9);

void bm_fetch_response_encode(benchmark::State& state) {
  const int16_t version = static_cast<int16_t>(state.range(0));
  fetch_response resp;
  for (int t = 0; t < 4; ++t) {
    auto& topic = resp.responses.emplace_back();
    topic.topic = "topic-" + std::to_string(t);
    for (int p = 0; p < 16; ++p) {
      auto& pd = topic.partitions.emplace_back();
      pd.partition_index = p;
      pd.high_watermark = 1000000;
      pd.records = std::vector<uint8_t>(8 << 10, 0x11);
    }
  }
  size_t n = 0;
  for (auto _ : state) {
    byte_writer w;
    w.reserve(600 << 10);
    resp.encode(w, version);
    n = w.size();
    benchmark::DoNotOptimize(w.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(bm_fetch_response_encode)->Arg(11)->Arg(12);

void bm_metadata_response_encode(benchmark::State& state) {
  metadata_response resp;
  for (int b = 0; b < 3; ++b)
    resp.brokers.push_back({b, "broker-" + std::to_string(b), 9092, {}, {}});
  for (int t = 0; t < 100; ++t) {
    auto& topic = resp.topics.emplace_back();
    topic.name = "topic-" + std::to_string(t);
    for (int p = 0; p < 12; ++p) {
      auto& part = topic.partitions.emplace_back();
      part.partition_index = p;
      part.leader_id = p % 3;
      part.replica_nodes = {p % 3};
      part.isr_nodes = {p % 3};
    }
  }
  for (auto _ : state) {
    auto bytes = encode_message(resp, 12);
    benchmark::DoNotOptimize(bytes.data());
  }
}
BENCHMARK(bm_metadata_response_encode);

void bm_request_header_decode(benchmark::State& state) {
  request_header h;
  h.request_api_key = 0;
  h.request_api_version = 9;
  h.correlation_id = 42;
  h.client_id = "rdkafka-producer-1";
  auto bytes = encode_message(h, 2);
  for (auto _ : state) {
    byte_reader r(bytes);
    request_header d;
    benchmark::DoNotOptimize(d.decode(r, 2));
  }
}
BENCHMARK(bm_request_header_decode);

}  // namespace
