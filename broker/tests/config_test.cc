#include "sh/broker/config.h"

#include <gtest/gtest.h>

namespace sh::broker {
namespace {

TEST(config, defaults_use_embedded_stores_under_data_dir) {
  auto cfg = make_broker_config({{"data.dir", "/tmp/x"}});
  ASSERT_TRUE(cfg) << cfg.message();
  EXPECT_EQ(cfg->metadata_url, "/tmp/x/metadata.db");
  EXPECT_EQ(cfg->storage_url, "/tmp/x/objects");
  ASSERT_EQ(cfg->listeners.size(), 1u);
  EXPECT_EQ(cfg->listeners[0].port, 9092);
  EXPECT_EQ(cfg->advertised_listeners[0].host, "127.0.0.1");
  EXPECT_TRUE(cfg->auto_create_topics);
  EXPECT_EQ(cfg->num_partitions, 1);
  EXPECT_EQ(cfg->ingest_flush_ms, 5);  // local store: low latency default
}

TEST(config, s3_storage_defaults_to_longer_flush_interval) {
  auto cfg = make_broker_config(
      {{"storage.url", "s3://bucket/prefix"}, {"s3.access.key", "a"}, {"s3.secret.key", "s"}});
  ASSERT_TRUE(cfg) << cfg.message();
  EXPECT_EQ(cfg->ingest_flush_ms, 250);
}

TEST(config, s3_without_credentials_is_refused_clearly) {
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  auto cfg = make_broker_config({{"storage.url", "s3://bucket/prefix"}});
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.message().find("s3.access.key"), std::string::npos) << cfg.message();
}

TEST(config, unknown_keys_are_rejected_by_name) {
  auto cfg = make_broker_config({{"bogus.key", "1"}, {"node.id", "1"}, {"other.bad", "x"}});
  ASSERT_FALSE(cfg);
  EXPECT_EQ(cfg.code(), config_errc::unknown_key);
  EXPECT_NE(cfg.message().find("bogus.key"), std::string::npos);
  EXPECT_NE(cfg.message().find("other.bad"), std::string::npos);
}

TEST(config, bad_values_name_the_key) {
  for (auto [k, v] :
       std::vector<std::pair<std::string, std::string>>{{"node.id", "abc"},
                                                        {"num.partitions", "0"},
                                                        {"auto.create.topics.enable", "yes"},
                                                        {"listeners", "127.0.0.1:9092"},
                                                        {"listeners", "SSL://127.0.0.1:9093"},
                                                        {"log.level", "loud"}}) {
    auto cfg = make_broker_config({{k, v}});
    ASSERT_FALSE(cfg) << k << "=" << v;
    EXPECT_EQ(cfg.code(), config_errc::bad_value);
    EXPECT_NE(cfg.message().find(k), std::string::npos) << cfg.message();
  }
}

TEST(config, inflight_limits_parse) {
  auto cfg = make_broker_config(
      {{"queued.max.request.bytes", "2048"}, {"max.inflight.bytes.per.connection", "4096"}});
  ASSERT_TRUE(cfg) << cfg.message();
  EXPECT_EQ(cfg->queued_max_request_bytes, 2048);
  EXPECT_EQ(cfg->max_inflight_bytes_per_connection, 4096);
}

TEST(config, read_cache_disk_tier_and_multipart_keys) {
  auto defaults = make_broker_config({{"data.dir", "/tmp/x"}});
  ASSERT_TRUE(defaults) << defaults.message();
  EXPECT_EQ(defaults->read_cache_disk_bytes, 0);  // off unless asked for
  EXPECT_EQ(defaults->read_cache_disk_dir, "/tmp/x/read-cache");
  EXPECT_EQ(defaults->s3_multipart_threshold_bytes, 64 * 1024 * 1024);
  EXPECT_EQ(defaults->s3_multipart_part_bytes, 16 * 1024 * 1024);
  EXPECT_TRUE(defaults->local_direct_io);
  auto buffered = make_broker_config({{"local.direct.io", "false"}});
  ASSERT_TRUE(buffered) << buffered.message();
  EXPECT_FALSE(buffered->local_direct_io);

  auto cfg = make_broker_config({{"read.cache.disk.bytes", "1073741824"},
                                 {"read.cache.disk.dir", "/var/cache/sh"},
                                 {"s3.multipart.threshold.bytes", "0"},
                                 {"s3.multipart.part.bytes", "8388608"}});
  ASSERT_TRUE(cfg) << cfg.message();
  EXPECT_EQ(cfg->read_cache_disk_bytes, 1073741824);
  EXPECT_EQ(cfg->read_cache_disk_dir, "/var/cache/sh");
  EXPECT_EQ(cfg->s3_multipart_threshold_bytes, 0);
  EXPECT_EQ(cfg->s3_multipart_part_bytes, 8388608);

  // S3 refuses parts under 5 MiB (except the last): caught at start-up, by name.
  auto small = make_broker_config({{"s3.multipart.part.bytes", "1048576"}});
  ASSERT_FALSE(small);
  EXPECT_NE(small.message().find("s3.multipart.part.bytes"), std::string::npos) << small.message();
  auto negative = make_broker_config({{"read.cache.disk.bytes", "-1"}});
  ASSERT_FALSE(negative);
  EXPECT_NE(negative.message().find("read.cache.disk.bytes"), std::string::npos);
}

TEST(config, group_keys_are_known_and_validated) {
  auto cfg = make_broker_config({{"group.initial.rebalance.delay.ms", "0"}});
  ASSERT_TRUE(cfg) << cfg.message();
  EXPECT_EQ(cfg->raw.at("group.initial.rebalance.delay.ms"), "0");
  auto bad = make_broker_config({{"group.min.session.timeout.ms", "soon"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.message().find("group.min.session.timeout.ms"), std::string::npos);
}

TEST(config, properties_syntax) {
  auto props = parse_properties(
      "# comment\n! also comment\n\n  listeners = PLAINTEXT://0.0.0.0:19092 \nnode.id:3\n");
  ASSERT_TRUE(props);
  EXPECT_EQ(props->at("listeners"), "PLAINTEXT://0.0.0.0:19092");
  EXPECT_EQ(props->at("node.id"), "3");
  auto bad = parse_properties("justakey\n");
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.code(), config_errc::syntax);
}

TEST(config, listener_parsing) {
  auto l = parse_listener("PLAINTEXT://[::1]:9092");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->host, "::1");
  EXPECT_EQ(l->port, 9092);
  EXPECT_FALSE(parse_listener("PLAINTEXT://host:99999"));
}

TEST(config, help_lists_every_key) {
  const auto help = config_help_text();
  for (const auto& k : known_config_keys()) EXPECT_NE(help.find(k.name), std::string::npos);
}

}  // namespace
}  // namespace sh::broker
