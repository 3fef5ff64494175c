// The produce path without sockets: the zero-copy Produce decoder (produce_view) against the
// generated codec on every version and on damaged input, and handle_produce end to end through
// the real ingest writer (append_borrowed) on the embedded stores.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <random>

#include "broker_context.h"
#include "handlers/handlers.h"
#include "handlers/produce_view.h"
#include "ingest_writer.h"
#include "sh/kafka/messages/produce_request.h"
#include "sh/kafka/messages/produce_response.h"
#include "test_batches.h"
#include "test_context.h"

namespace sh::broker {
namespace {

namespace fs = std::filesystem;
using kafka::error_code;
using testing::make_batch;

kafka::produce_request sample_request(int16_t version) {
  kafka::produce_request in;
  if (version >= 3) in.transactional_id = std::nullopt;
  in.acks = -1;
  in.timeout_ms = 30000;
  for (int t = 0; t < 2; ++t) {
    kafka::produce_request::topic_produce_data topic;
    topic.name = "topic-" + std::to_string(t);
    for (int p = 0; p < 3; ++p) {
      kafka::produce_request::partition_produce_data part;
      part.index = p;
      if (p != 1) part.records = make_batch(2 + p, 1000 * (t + 1));  // partition 1: null
      topic.partition_data.push_back(std::move(part));
    }
    in.topic_data.push_back(std::move(topic));
  }
  return in;
}

std::vector<uint8_t> encode(const kafka::produce_request& in, int16_t version) {
  kafka::byte_writer w;
  in.encode(w, version);
  return w.take();
}

// Both decoders on the same bytes: the same verdict, and the same fields when they succeed.
void expect_same_decode(std::span<const uint8_t> bytes, int16_t version) {
  kafka::produce_request generated;
  kafka::byte_reader rg(bytes);
  const bool ok_generated = generated.decode(rg, version);
  produce_request_view view;
  kafka::byte_reader rv(bytes);
  const bool ok_view = decode_produce_request_view(rv, version, view);
  ASSERT_EQ(ok_view, ok_generated) << "version " << version << ", " << bytes.size() << " bytes";
  if (!ok_view) return;
  EXPECT_EQ(rv.position(), rg.position());
  EXPECT_EQ(view.transactional_id, generated.transactional_id);
  EXPECT_EQ(view.acks, generated.acks);
  EXPECT_EQ(view.timeout_ms, generated.timeout_ms);
  ASSERT_EQ(view.topics.size(), generated.topic_data.size());
  for (size_t t = 0; t < view.topics.size(); ++t) {
    const auto& vt = view.topics[t];
    const auto& gt = generated.topic_data[t];
    EXPECT_EQ(vt.name, gt.name);
    ASSERT_EQ(vt.partitions.size(), gt.partition_data.size());
    for (size_t p = 0; p < vt.partitions.size(); ++p) {
      const auto& vp = vt.partitions[p];
      const auto& gp = gt.partition_data[p];
      EXPECT_EQ(vp.index, gp.index);
      ASSERT_EQ(vp.records.has_value(), gp.records.has_value());
      if (!vp.records) continue;
      EXPECT_TRUE(std::equal(vp.records->begin(), vp.records->end(), gp.records->begin(),
                             gp.records->end()));
      // A view into the input, not a copy.
      if (!vp.records->empty()) {
        EXPECT_GE(vp.records->data(), bytes.data());
        EXPECT_LE(vp.records->data() + vp.records->size(), bytes.data() + bytes.size());
      }
    }
  }
}

TEST(produce_view, matches_generated_decoder_on_every_version) {
  for (int16_t v = 0; v <= 11; ++v) {
    auto in = sample_request(v);
    if (v >= 3) in.transactional_id = "tx";
    const auto bytes = encode(in, v);
    expect_same_decode(bytes, v);
    produce_request_view view;
    kafka::byte_reader r(bytes);
    ASSERT_TRUE(decode_produce_request_view(r, v, view)) << v;
    EXPECT_EQ(r.remaining(), 0u);
    EXPECT_EQ(view.transactional_id, v >= 3 ? std::optional<std::string>("tx") : std::nullopt);
    EXPECT_FALSE(view.topics[0].partitions[1].records.has_value());
  }
}

TEST(produce_view, tagged_fields_are_skipped_on_flexible_versions) {
  auto in = sample_request(9);
  in.unknown_tagged_fields.push_back({7, {1, 2, 3}});
  in.topic_data[0].unknown_tagged_fields.push_back({1, {9}});
  in.topic_data[1].partition_data[2].unknown_tagged_fields.push_back({4, {5, 6}});
  const auto bytes = encode(in, 9);
  expect_same_decode(bytes, 9);
}

TEST(produce_view, every_truncation_fails_cleanly) {
  for (int16_t v : {int16_t{3}, int16_t{7}, int16_t{9}}) {
    const auto bytes = encode(sample_request(v), v);
    for (size_t n = 0; n < bytes.size(); ++n) {
      std::span<const uint8_t> prefix(bytes.data(), n);
      produce_request_view view;
      kafka::byte_reader r(prefix);
      EXPECT_FALSE(decode_produce_request_view(r, v, view)) << "v" << v << " " << n << " bytes";
      EXPECT_FALSE(r.ok());
    }
  }
}

TEST(produce_view, random_damage_gives_the_generated_decoders_verdict) {
  std::mt19937 rng(42);
  for (int16_t v : {int16_t{0}, int16_t{7}, int16_t{9}, int16_t{11}}) {
    const auto clean = encode(sample_request(v), v);
    for (int i = 0; i < 1500; ++i) {
      auto bytes = clean;
      const int flips = 1 + static_cast<int>(rng() % 3);
      for (int f = 0; f < flips; ++f) {
        bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng());
      }
      expect_same_decode(bytes, v);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(produce_view, hostile_counts_and_versions_are_refused) {
  // acks, timeout, then a topic count of 2^31-1 with nothing after it (v2 has no
  // transactional id).
  std::vector<uint8_t> huge = {0xff, 0xff, 0, 0, 0x75, 0x30, 0x7f, 0xff, 0xff, 0xff};
  produce_request_view view;
  kafka::byte_reader r(huge);
  EXPECT_FALSE(decode_produce_request_view(r, 2, view));
  EXPECT_EQ(r.error(), kafka::decode_errc::too_large);
  // A records length running past the end of the frame.
  kafka::byte_writer w;
  w.write_int16(-1);
  w.write_int32(1000);
  w.write_array_length(1);
  w.write_string("t");
  w.write_array_length(1);
  w.write_int32(0);
  w.write_int32(1 << 20);  // records length
  w.write_int32(0);
  const auto past = w.take();
  kafka::byte_reader r2(past);
  EXPECT_FALSE(decode_produce_request_view(r2, 2, view));
  const auto ok_bytes = encode(sample_request(7), 7);
  kafka::byte_reader r3(ok_bytes);
  EXPECT_FALSE(decode_produce_request_view(r3, 12, view));
  EXPECT_EQ(r3.error(), kafka::decode_errc::unsupported_version);
}

class produce_handler_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = testing::fresh_test_dir("sh-produce");
    broker_config cfg;
    cfg.node_id = 1;
    cfg.listeners = {listener{"PLAINTEXT", "127.0.0.1", 9001}};
    cfg.advertised_listeners = cfg.listeners;
    cfg.num_blocking_threads = 2;
    cfg.auto_create_topics = false;
    ctx = testing::make_embedded_context(dir, cfg);
    ASSERT_TRUE(ctx);
    ctx->instance_id = "produce-test";
    ctx->writer = std::make_unique<ingest_writer>(ctx->store, ctx->meta, ctx->instance_id, 1 << 20,
                                                  std::chrono::milliseconds(2), [] {});
    ctx->writer->start();
    ASSERT_TRUE(ctx->meta->create_topic("t", 2, {}));
    conn.produce_turn_changed =
        std::make_shared<asio::steady_timer>(io, asio::steady_timer::time_point::max());
  }
  void TearDown() override {
    ctx->writer->stop();
    conn.produce_turn_changed.reset();  // the timer must go before `io` (declared after conn)
    ctx.reset();
    fs::remove_all(dir);
  }

  static awaitable<void> run(broker_context& c, connection_state& conn, std::shared_ptr<request> r,
                             std::shared_ptr<std::optional<handler_response>> o) {
    *o = co_await handle_produce(c, conn, *r);
  }

  // Runs one Produce request; the frame is dropped as soon as the handler answers, so a
  // writer that kept a view past the answer would read freed memory (ASan builds see it).
  std::optional<handler_response> produce(std::vector<uint8_t> body, int16_t version) {
    auto req = std::make_shared<request>();
    req->api_key = 0;
    req->api_version = version;
    req->client_id = "tester";
    req->frame = std::move(body);
    req->produce_ticket = conn.next_produce_ticket++;
    auto out = std::make_shared<std::optional<handler_response>>();
    asio::co_spawn(io, run(*ctx, conn, std::move(req), out), asio::detached);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!out->has_value() && std::chrono::steady_clock::now() < deadline) {
      io.run_for(std::chrono::milliseconds(2));
    }
    return *out;
  }

  kafka::produce_response decode_response(const handler_response& h, int16_t version) {
    kafka::produce_response resp;
    kafka::byte_reader r(h.body);
    EXPECT_TRUE(resp.decode(r, version));
    return resp;
  }

  fs::path dir;
  std::unique_ptr<broker_context> ctx;
  connection_state conn = [] {
    connection_state c;
    c.peer = "127.0.0.1:5555";
    return c;
  }();
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
};

TEST_F(produce_handler_test, good_batches_commit_and_garbage_records_are_corrupt_message) {
  for (int16_t v : {int16_t{7}, int16_t{9}}) {
    const auto good = make_batch(5, 1000);
    kafka::produce_request in;
    in.acks = -1;
    in.timeout_ms = 1000;
    kafka::produce_request::topic_produce_data topic;
    topic.name = "t";
    kafka::produce_request::partition_produce_data p0;
    p0.index = 0;
    p0.records = good;
    kafka::produce_request::partition_produce_data p1;
    p1.index = 1;
    p1.records = std::vector<uint8_t>(good.begin(), good.begin() + 40);  // cut inside a batch
    topic.partition_data = {p0, p1};
    in.topic_data.push_back(topic);
    auto h = produce(encode(in, v), v);
    ASSERT_TRUE(h.has_value()) << "no answer";
    ASSERT_TRUE(h->send);
    auto resp = decode_response(*h, v);
    ASSERT_EQ(resp.responses.size(), 1u);
    ASSERT_EQ(resp.responses[0].partition_responses.size(), 2u);
    const auto& r0 = resp.responses[0].partition_responses[0];
    const auto& r1 = resp.responses[0].partition_responses[1];
    EXPECT_EQ(r0.error_code, 0);
    EXPECT_EQ(r0.base_offset, v == 7 ? 0 : 5);
    EXPECT_EQ(r1.error_code, static_cast<int16_t>(error_code::corrupt_message));
    EXPECT_EQ(r1.base_offset, -1);
  }
  // What was committed is the producer's bytes (read after the frames are gone).
  auto idx = ctx->meta->read_index("t", 0, 0, 100);
  ASSERT_TRUE(idx);
  ASSERT_FALSE(idx->empty());
  auto bytes =
      ctx->store->get_range((*idx)[0].object_key, (*idx)[0].byte_offset, (*idx)[0].byte_length);
  ASSERT_TRUE(bytes);
  const auto good = make_batch(5, 1000);
  EXPECT_EQ(*bytes, good);
  EXPECT_EQ(ctx->meta->get_partition("t", 0)->high_watermark, 10);
  EXPECT_EQ(ctx->meta->get_partition("t", 1)->high_watermark, 0);
}

TEST_F(produce_handler_test, malformed_body_is_refused_without_a_crash) {
  const auto bytes = encode(sample_request(9), 9);
  for (size_t n : {size_t{0}, size_t{3}, bytes.size() / 2, bytes.size() - 1}) {
    auto h = produce(std::vector<uint8_t>(bytes.begin(), bytes.begin() + n), 9);
    ASSERT_TRUE(h.has_value()) << n;
    EXPECT_TRUE(h->close) << n;
  }
}

TEST_F(produce_handler_test, many_requests_in_flight_keep_partition_order) {
  // Several requests started before any answers: offsets follow request order, and every
  // batch's bytes land intact although the writer never copied them on append.
  std::vector<std::shared_ptr<std::optional<handler_response>>> outs;
  for (int i = 0; i < 20; ++i) {
    kafka::produce_request in;
    in.acks = -1;
    in.timeout_ms = 1000;
    kafka::produce_request::topic_produce_data topic;
    topic.name = "t";
    kafka::produce_request::partition_produce_data p;
    p.index = 0;
    p.records = make_batch(1 + i % 4, 5000 + i);
    topic.partition_data = {p};
    in.topic_data.push_back(topic);
    auto req = std::make_shared<request>();
    req->api_key = 0;
    req->api_version = 7;
    req->frame = encode(in, 7);
    req->produce_ticket = conn.next_produce_ticket++;
    outs.push_back(std::make_shared<std::optional<handler_response>>());
    asio::co_spawn(io, run(*ctx, conn, std::move(req), outs.back()), asio::detached);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!outs.back()->has_value() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(std::chrono::milliseconds(2));
  }
  int64_t expect = 0;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(outs[i]->has_value()) << i;
    auto resp = decode_response(**outs[i], 7);
    const auto& pr = resp.responses.at(0).partition_responses.at(0);
    EXPECT_EQ(pr.error_code, 0);
    EXPECT_EQ(pr.base_offset, expect) << i;
    expect += 1 + i % 4;
  }
  auto idx = ctx->meta->read_index("t", 0, 0, 1000);
  ASSERT_TRUE(idx);
  int batch = 0;
  for (const auto& e : *idx) {
    auto bytes = ctx->store->get_range(e.object_key, e.byte_offset, e.byte_length);
    ASSERT_TRUE(bytes);
    auto split = kafka::split_batches(*bytes);
    ASSERT_TRUE(split) << split.message();
    for (const auto& b : *split) {
      EXPECT_EQ(b.bytes.size(), make_batch(1 + batch % 4, 5000 + batch).size());
      EXPECT_EQ(b.header.base_timestamp, 5000 + batch);
      ++batch;
    }
  }
  EXPECT_EQ(batch, 20);
  EXPECT_EQ(ctx->meta->get_partition("t", 0)->high_watermark, expect);
}

}  // namespace
}  // namespace sh::broker
