// The admin APIs end to end without sockets: requests encoded with the generated codecs, run
// through the real handlers on an io_context against a real SQLite metadata store.
#include "admin/admin_handlers.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>

#include "broker_context.h"
#include "sh/kafka/messages/alter_configs_request.h"
#include "sh/kafka/messages/alter_configs_response.h"
#include "sh/kafka/messages/create_partitions_request.h"
#include "sh/kafka/messages/create_partitions_response.h"
#include "sh/kafka/messages/create_topics_request.h"
#include "sh/kafka/messages/create_topics_response.h"
#include "sh/kafka/messages/delete_records_request.h"
#include "sh/kafka/messages/delete_records_response.h"
#include "sh/kafka/messages/delete_topics_request.h"
#include "sh/kafka/messages/delete_topics_response.h"
#include "sh/kafka/messages/describe_cluster_request.h"
#include "sh/kafka/messages/describe_cluster_response.h"
#include "sh/kafka/messages/describe_configs_request.h"
#include "sh/kafka/messages/describe_configs_response.h"
#include "sh/kafka/messages/incremental_alter_configs_request.h"
#include "sh/kafka/messages/incremental_alter_configs_response.h"
#include "test_context.h"

namespace sh::broker {
namespace {

namespace fs = std::filesystem;
using kafka::error_code;

int16_t code(error_code e) { return static_cast<int16_t>(e); }

class admin_handlers_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = testing::fresh_test_dir("sh-admin");
    broker_config cfg;
    cfg.node_id = 2;
    cfg.cluster_id = "test-cluster";
    cfg.listeners = {listener{"PLAINTEXT", "127.0.0.1", 9092}};
    cfg.advertised_listeners = cfg.listeners;
    cfg.num_blocking_threads = 2;
    cfg.message_max_bytes = 1000;
    cfg.raw = {{"node.id", "2"}, {"s3.secret.key", "hunter2"}};
    ctx = testing::make_embedded_context(dir, cfg);
    ASSERT_TRUE(ctx);
    ASSERT_TRUE(ctx->meta->create_topic("t", 2, {{"retention.ms", "1000"}}));
  }
  void TearDown() override {
    ctx.reset();
    fs::remove_all(dir);
  }

  template <class R, class M>
  R call(handler_fn fn, int16_t api_key, int16_t version, const M& body) {
    auto req = std::make_shared<request>();
    req->api_key = api_key;
    req->api_version = version;
    req->client_id = "tester";
    req->frame = encode_body(body, version);
    auto out = std::make_shared<std::optional<handler_response>>();
    asio::co_spawn(
        io,
        [](broker_context& c, connection_state& cs, handler_fn f, std::shared_ptr<request> r,
           std::shared_ptr<std::optional<handler_response>> o) -> awaitable<void> {
          *o = co_await f(c, cs, *r);
        }(*ctx, conn, fn, req, out),
        asio::detached);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!out->has_value() && std::chrono::steady_clock::now() < deadline) {
      // The io_context stops whenever the handler waits on the blocking pool; run it again.
      io.restart();
      io.run_for(std::chrono::milliseconds(2));
    }
    R resp;
    EXPECT_TRUE(out->has_value()) << "handler did not answer";
    if (!out->has_value()) return resp;
    kafka::byte_reader r((*out)->body);
    EXPECT_TRUE(resp.decode(r, version));
    EXPECT_EQ(r.remaining(), 0u);
    return resp;
  }

  std::map<std::string, std::string> topic_configs(const std::string& name) {
    auto t = ctx->meta->get_topic(name);
    EXPECT_TRUE(t && t->has_value());
    return t && t->has_value() ? (*t)->configs : std::map<std::string, std::string>{};
  }

  fs::path dir;
  asio::io_context io;
  connection_state conn;
  std::unique_ptr<broker_context> ctx;
};

TEST_F(admin_handlers_test, registered_versions) {
  std::map<int16_t, std::pair<int16_t, int16_t>> got;
  for (const auto& h : admin_handlers()) got[h.api_key] = {h.min_version, h.max_version};
  std::map<int16_t, std::pair<int16_t, int16_t>> want = {{20, {0, 6}}, {21, {0, 2}}, {32, {0, 4}},
                                                         {33, {0, 2}}, {37, {0, 3}}, {44, {0, 1}},
                                                         {60, {0, 1}}};
  EXPECT_EQ(got, want);
}

TEST_F(admin_handlers_test, delete_topics_by_name_and_id) {
  ASSERT_TRUE(ctx->meta->create_topic("u", 1, {}));
  auto u = ctx->meta->get_topic("u");
  ASSERT_TRUE(u && u->has_value());
  auto cached = ctx->topics.find("t");  // fills the cache
  ASSERT_TRUE(cached && cached->has_value());

  kafka::delete_topics_request by_name;
  by_name.topic_names = {"t", "missing"};
  auto r = call<kafka::delete_topics_response>(&handle_delete_topics, 20, 3, by_name);
  ASSERT_EQ(r.responses.size(), 2u);
  EXPECT_EQ(r.responses[0].error_code, 0);
  EXPECT_EQ(r.responses[1].error_code, code(error_code::unknown_topic_or_partition));
  EXPECT_FALSE(ctx->topics.cached("t")) << "deleted topics leave the cache";
  auto gone = ctx->meta->get_topic("t");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());

  kafka::delete_topics_request by_id;
  kafka::delete_topics_request::delete_topic_state s;
  std::copy((*u)->id.begin(), (*u)->id.end(), s.topic_id.begin());
  by_id.topics.push_back(s);
  kafka::delete_topics_request::delete_topic_state unknown_id;
  unknown_id.topic_id[0] = 1;
  by_id.topics.push_back(unknown_id);
  auto r6 = call<kafka::delete_topics_response>(&handle_delete_topics, 20, 6, by_id);
  ASSERT_EQ(r6.responses.size(), 2u);
  EXPECT_EQ(r6.responses[0].error_code, 0);
  EXPECT_EQ(r6.responses[0].name, "u");
  EXPECT_EQ(r6.responses[1].error_code, code(error_code::unknown_topic_id));
  auto list = ctx->meta->list_topics();
  ASSERT_TRUE(list);
  EXPECT_TRUE(list->empty());
}

TEST_F(admin_handlers_test, create_partitions_grows_only) {
  ASSERT_TRUE(ctx->topics.find("t"));
  kafka::create_partitions_request in;
  in.topics.push_back({"t", 5, std::nullopt, {}});
  in.topics.push_back({"missing", 3, std::nullopt, {}});
  auto r = call<kafka::create_partitions_response>(&handle_create_partitions, 37, 1, in);
  ASSERT_EQ(r.results.size(), 2u);
  EXPECT_EQ(r.results[0].error_code, 0);
  EXPECT_EQ(r.results[1].error_code, code(error_code::unknown_topic_or_partition));
  auto t = ctx->topics.find("t");
  ASSERT_TRUE(t && t->has_value());
  EXPECT_EQ((*t)->partition_count, 5) << "the cache sees the new count";

  for (int32_t bad : {5, 2, 0}) {
    kafka::create_partitions_request shrink;
    shrink.topics.push_back({"t", bad, std::nullopt, {}});
    auto s = call<kafka::create_partitions_response>(&handle_create_partitions, 37, 3, shrink);
    ASSERT_EQ(s.results.size(), 1u);
    EXPECT_EQ(s.results[0].error_code, code(error_code::invalid_partitions)) << bad;
    EXPECT_TRUE(s.results[0].error_message.has_value());
  }
  kafka::create_partitions_request validate;
  validate.validate_only = true;
  validate.topics.push_back({"t", 9, std::nullopt, {}});
  auto v = call<kafka::create_partitions_response>(&handle_create_partitions, 37, 0, validate);
  EXPECT_EQ(v.results.at(0).error_code, 0);
  auto after = ctx->meta->get_topic("t");
  EXPECT_EQ((*after)->partition_count, 5) << "validate_only changes nothing";
}

TEST_F(admin_handlers_test, describe_configs_topics_and_broker) {
  kafka::describe_configs_request in;
  in.include_synonyms = true;
  in.resources.push_back({2, "t", std::nullopt, {}});
  in.resources.push_back({2, "missing", std::nullopt, {}});
  in.resources.push_back({4, "2", std::nullopt, {}});
  in.resources.push_back({8, "x", std::nullopt, {}});
  auto r = call<kafka::describe_configs_response>(&handle_describe_configs, 32, 1, in);
  ASSERT_EQ(r.results.size(), 4u);
  EXPECT_EQ(r.results[0].error_code, 0);
  std::map<std::string, kafka::describe_configs_response::describe_configs_resource_result> by;
  for (const auto& e : r.results[0].configs) by[e.name] = e;
  EXPECT_EQ(by.at("retention.ms").value, "1000");
  EXPECT_EQ(by.at("retention.ms").config_source, 1);
  EXPECT_EQ(by.at("max.message.bytes").value, "1000");
  EXPECT_EQ(by.at("max.message.bytes").config_source, 5);
  EXPECT_EQ(by.at("cleanup.policy").value, "delete");
  EXPECT_EQ(r.results[1].error_code, code(error_code::unknown_topic_or_partition));
  EXPECT_EQ(r.results[2].error_code, 0);
  bool saw_secret = false;
  for (const auto& e : r.results[2].configs) {
    EXPECT_EQ(e.config_source, 4);
    if (e.name == "s3.secret.key") {
      saw_secret = true;
      EXPECT_TRUE(e.is_sensitive);
      EXPECT_FALSE(e.value.has_value());
    }
  }
  EXPECT_TRUE(saw_secret);
  EXPECT_EQ(r.results[3].error_code, code(error_code::invalid_request));

  // v0 has is_default instead of config_source.
  kafka::describe_configs_request v0;
  v0.resources.push_back({2, "t", std::vector<std::string>{"segment.ms"}, {}});
  auto r0 = call<kafka::describe_configs_response>(&handle_describe_configs, 32, 0, v0);
  ASSERT_EQ(r0.results.at(0).configs.size(), 1u);
  EXPECT_TRUE(r0.results[0].configs[0].is_default);
  // v4 (flexible) with documentation.
  kafka::describe_configs_request v4 = in;
  v4.include_documentation = true;
  auto r4 = call<kafka::describe_configs_response>(&handle_describe_configs, 32, 4, v4);
  ASSERT_EQ(r4.results.size(), 4u);
  EXPECT_TRUE(r4.results[0].configs.at(0).documentation.has_value());
}

TEST_F(admin_handlers_test, alter_configs_replaces_and_validates) {
  ASSERT_TRUE(ctx->topics.find("t"));
  kafka::alter_configs_request in;
  in.resources.push_back({2, "t", {{"message.timestamp.type", "LogAppendTime", {}}}, {}});
  in.resources.push_back({4, "2", {{"num.partitions", "3", {}}}, {}});
  in.resources.push_back({2, "missing", {{"retention.ms", "5", {}}}, {}});
  auto r = call<kafka::alter_configs_response>(&handle_alter_configs, 33, 0, in);
  ASSERT_EQ(r.responses.size(), 3u);
  EXPECT_EQ(r.responses[0].error_code, 0);
  EXPECT_EQ(r.responses[1].error_code, code(error_code::invalid_request));
  EXPECT_EQ(r.responses[2].error_code, code(error_code::unknown_topic_or_partition));
  EXPECT_EQ(topic_configs("t"),
            (std::map<std::string, std::string>{{"message.timestamp.type", "LogAppendTime"}}))
      << "the whole set is replaced";
  auto cached = ctx->topics.find("t");
  ASSERT_TRUE(cached && cached->has_value());
  EXPECT_EQ((*cached)->configs.count("retention.ms"), 0u) << "the cache sees the new set";

  for (auto [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"retention.ms", "soon"}, {"compression.type", "brotli"}, {"nope", "1"}}) {
    kafka::alter_configs_request bad;
    bad.resources.push_back({2, "t", {{k, v, {}}}, {}});
    auto b = call<kafka::alter_configs_response>(&handle_alter_configs, 33, 2, bad);
    ASSERT_EQ(b.responses.size(), 1u);
    EXPECT_EQ(b.responses[0].error_code, code(error_code::invalid_config)) << k;
    ASSERT_TRUE(b.responses[0].error_message.has_value());
    EXPECT_NE(b.responses[0].error_message->find(k), std::string::npos);
  }
  kafka::alter_configs_request validate;
  validate.validate_only = true;
  validate.resources.push_back({2, "t", {{"retention.ms", "7", {}}}, {}});
  EXPECT_EQ(call<kafka::alter_configs_response>(&handle_alter_configs, 33, 1, validate)
                .responses.at(0)
                .error_code,
            0);
  EXPECT_EQ(topic_configs("t").count("retention.ms"), 0u) << "validate_only stores nothing";
}

TEST_F(admin_handlers_test, incremental_alter_configs) {
  using ac = kafka::incremental_alter_configs_request::alterable_config;
  kafka::incremental_alter_configs_request in;
  in.resources.push_back({2,
                          "t",
                          {ac{"segment.ms", 0, "1000", {}}, ac{"retention.ms", 1, std::nullopt, {}},
                           ac{"cleanup.policy", 2, "compact", {}}},
                          {}});
  auto r =
      call<kafka::incremental_alter_configs_response>(&handle_incremental_alter_configs, 44, 1, in);
  ASSERT_EQ(r.responses.size(), 1u);
  EXPECT_EQ(r.responses[0].error_code, 0);
  EXPECT_EQ(topic_configs("t"), (std::map<std::string, std::string>{
                                    {"cleanup.policy", "delete,compact"}, {"segment.ms", "1000"}}));

  kafka::incremental_alter_configs_request bad;
  bad.resources.push_back({2, "t", {ac{"segment.ms", 0, "-5", {}}}, {}});
  bad.resources.push_back({2, "t2", {ac{"segment.ms", 0, "5", {}}}, {}});
  bad.resources.push_back({4, "2", {ac{"log.level", 0, "debug", {}}}, {}});
  auto b = call<kafka::incremental_alter_configs_response>(&handle_incremental_alter_configs, 44, 0,
                                                           bad);
  ASSERT_EQ(b.responses.size(), 3u);
  EXPECT_EQ(b.responses[0].error_code, code(error_code::invalid_config));
  EXPECT_EQ(b.responses[1].error_code, code(error_code::unknown_topic_or_partition));
  EXPECT_EQ(b.responses[2].error_code, code(error_code::invalid_request));
  EXPECT_EQ(topic_configs("t").at("segment.ms"), "1000");
}

TEST_F(admin_handlers_test, delete_records) {
  metadata::object_commit oc;
  oc.object_key = "obj-1";
  oc.object_size = 100;
  metadata::range_commit rc;
  rc.topic = "t";
  rc.partition = 0;
  rc.byte_length = 100;
  rc.batches = {metadata::batch_commit{10, 1, -1, -1, -1}};
  oc.ranges = {rc};
  ASSERT_TRUE(ctx->meta->commit_object(oc));  // offsets 0..9
  // Fetch reads partition states through the index cache; prime it with log start 0.
  ctx->index->start({});
  auto primed = ctx->index->get_partition("t", 0);
  ASSERT_TRUE(primed);
  ASSERT_EQ(primed->log_start_offset, 0);

  kafka::delete_records_request in;
  in.topics.push_back({"t", {{0, 4, {}}, {1, 1, {}}, {7, 0, {}}}, {}});
  in.topics.push_back({"missing", {{0, 0, {}}}, {}});
  auto r = call<kafka::delete_records_response>(&handle_delete_records, 21, 0, in);
  ASSERT_EQ(r.topics.size(), 2u);
  ASSERT_EQ(r.topics[0].partitions.size(), 3u);
  EXPECT_EQ(r.topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(r.topics[0].partitions[0].low_watermark, 4);
  EXPECT_EQ(r.topics[0].partitions[1].error_code, code(error_code::offset_out_of_range))
      << "partition 1 is empty: offset 1 is beyond its high watermark";
  EXPECT_EQ(r.topics[0].partitions[2].error_code, code(error_code::unknown_topic_or_partition));
  EXPECT_EQ(r.topics[1].partitions.at(0).error_code, code(error_code::unknown_topic_or_partition));
  // DeleteRecords is not a commit (no notification): the handler drops the cached state, so a
  // fetch below the new log start fails at once instead of when the cached state expires.
  auto cached = ctx->index->get_partition("t", 0);
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->log_start_offset, 4);

  kafka::delete_records_request to_end;
  to_end.topics.push_back({"t", {{0, -1, {}}}, {}});
  auto e = call<kafka::delete_records_response>(&handle_delete_records, 21, 2, to_end);
  EXPECT_EQ(e.topics.at(0).partitions.at(0).error_code, 0);
  EXPECT_EQ(e.topics[0].partitions[0].low_watermark, 10);
  auto p = ctx->meta->get_partition("t", 0);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->log_start_offset, 10);
}

TEST_F(admin_handlers_test, describe_cluster) {
  kafka::describe_cluster_request in;
  for (int16_t v : {0, 1}) {
    auto r = call<kafka::describe_cluster_response>(&handle_describe_cluster, 60, v, in);
    EXPECT_EQ(r.error_code, 0);
    EXPECT_EQ(r.cluster_id, "test-cluster");
    EXPECT_EQ(r.controller_id, 2);
    ASSERT_EQ(r.brokers.size(), 1u);
    EXPECT_EQ(r.brokers[0].broker_id, 2);
    EXPECT_EQ(r.brokers[0].host, "127.0.0.1");
    EXPECT_EQ(r.brokers[0].port, 9092);
  }
  in.endpoint_type = 2;
  auto c = call<kafka::describe_cluster_response>(&handle_describe_cluster, 60, 1, in);
  EXPECT_EQ(c.error_code, code(error_code::unsupported_endpoint_type));
}

TEST_F(admin_handlers_test, create_topics_validates_configs) {
  kafka::create_topics_request in;
  kafka::create_topics_request::creatable_topic good;
  good.name = "ok";
  good.num_partitions = 1;
  good.replication_factor = 1;
  good.configs.push_back({"retention.ms", "5", {}});
  kafka::create_topics_request::creatable_topic bad = good;
  bad.name = "bad";
  bad.configs = {{"retention.ms", "five", {}}};
  kafka::create_topics_request::creatable_topic unknown = good;
  unknown.name = "unknown";
  unknown.configs = {{"no.such", "1", {}}};
  in.topics = {good, bad, unknown};
  auto r = call<kafka::create_topics_response>(&handle_create_topics, 19, 5, in);
  ASSERT_EQ(r.topics.size(), 3u);
  EXPECT_EQ(r.topics[0].error_code, 0);
  EXPECT_EQ(r.topics[1].error_code, code(error_code::invalid_config));
  EXPECT_EQ(r.topics[2].error_code, code(error_code::invalid_config));
  auto t = ctx->meta->get_topic("bad");
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->has_value());
}

}  // namespace
}  // namespace sh::broker
