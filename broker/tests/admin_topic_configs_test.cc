// The topic config table and validator, IncrementalAlterConfigs operations, and the
// DescribeConfigs answers built from them.
#include <gtest/gtest.h>

#include "admin/admin_handlers.h"
#include "admin/topic_configs.h"

namespace sh::broker {
namespace {

using kafka::error_code;
using op = kafka::incremental_alter_configs_request::alterable_config;

op make_op(std::string name, int8_t operation, std::optional<std::string> value) {
  op o;
  o.name = std::move(name);
  o.config_operation = operation;
  o.value = std::move(value);
  return o;
}

TEST(topic_configs, table_has_kafka_names_and_defaults) {
  broker_config cfg;
  cfg.message_max_bytes = 4242;
  std::map<std::string, std::string> defaults;
  for (const auto& d : topic_config_defs()) defaults[d.name] = topic_config_default(d, cfg);
  EXPECT_EQ(defaults.at("cleanup.policy"), "delete");
  EXPECT_EQ(defaults.at("compression.type"), "producer");
  EXPECT_EQ(defaults.at("retention.ms"), "-1");
  EXPECT_EQ(defaults.at("retention.bytes"), "-1");
  EXPECT_EQ(defaults.at("segment.bytes"), "134217728");
  EXPECT_EQ(defaults.at("segment.ms"), "600000");
  EXPECT_EQ(defaults.at("max.message.bytes"), "4242");
  EXPECT_EQ(defaults.at("message.timestamp.type"), "CreateTime");
  EXPECT_EQ(defaults.at("min.insync.replicas"), "1");
  EXPECT_EQ(defaults.at("archive.compression.type"), "none");
  for (const auto& d : topic_config_defs()) {
    EXPECT_EQ(validate_topic_config(d.name, topic_config_default(d, cfg)), std::nullopt) << d.name;
  }
}

TEST(topic_configs, accepts_good_values) {
  for (auto [k, v] : std::vector<std::pair<const char*, const char*>>{
           {"retention.ms", "86400000"},
           {"retention.ms", "-1"},
           {"retention.bytes", "1073741824"},
           {"cleanup.policy", "compact,delete"},
           {"cleanup.policy", "compact"},
           {"compression.type", "zstd"},
           {"message.timestamp.type", "LogAppendTime"},
           {"max.message.bytes", "2097152"},
           {"segment.bytes", "1048576"},
           {"archive.compression.type", "lz4"},
       }) {
    EXPECT_EQ(validate_topic_config(k, v), std::nullopt) << k << "=" << v;
  }
}

TEST(topic_configs, refuses_bad_values_with_a_message) {
  for (auto [k, v] : std::vector<std::pair<const char*, std::string>>{
           {"retention.ms", "abc"},
           {"retention.ms", "-2"},
           {"retention.ms", "1e9"},
           {"retention.ms", ""},
           {"retention.ms", "99999999999999999999999"},
           {"retention.bytes", "12 "},
           {"cleanup.policy", "forever"},
           {"cleanup.policy", ""},
           {"compression.type", "brotli"},
           {"message.timestamp.type", "createtime"},
           {"max.message.bytes", "4294967296"},
           {"segment.bytes", "13"},
           {"segment.ms", "0"},
           {"min.insync.replicas", "0"},
           {"archive.compression.type", "producer"},
       }) {
    auto e = validate_topic_config(k, v);
    ASSERT_TRUE(e.has_value()) << k << "=" << v;
    EXPECT_NE(e->find(k), std::string::npos) << *e;
  }
  auto unknown = validate_topic_config("no.such.config", "1");
  ASSERT_TRUE(unknown);
  EXPECT_NE(unknown->find("no.such.config"), std::string::npos);
  EXPECT_TRUE(validate_topic_configs({{"retention.ms", "1"}, {"bogus", "x"}}));
  EXPECT_FALSE(validate_topic_configs({{"retention.ms", "1"}, {"cleanup.policy", "delete"}}));
  // Messages stay bounded whatever the client sent.
  auto huge = validate_topic_config("retention.ms", std::string(100000, 'x'));
  ASSERT_TRUE(huge);
  EXPECT_LT(huge->size(), 400u);
}

TEST(topic_configs, list_helpers) {
  EXPECT_EQ(split_config_list(" compact , delete,,"),
            (std::vector<std::string>{"compact", "delete"}));
  EXPECT_TRUE(split_config_list("").empty());
  EXPECT_EQ(join_config_list({"a", "b"}), "a,b");
}

TEST(topic_configs, sensitive_broker_settings) {
  EXPECT_TRUE(is_sensitive_broker_config("s3.secret.key", "x"));
  EXPECT_TRUE(is_sensitive_broker_config("s3.session.token", "x"));
  EXPECT_TRUE(is_sensitive_broker_config("metadata.url", "postgresql://u:pw@db/sh"));
  EXPECT_TRUE(is_sensitive_broker_config("metadata.url", "host=db password=pw"));
  EXPECT_FALSE(is_sensitive_broker_config("metadata.url", "sqlite:///var/lib/sh/meta.db"));
  EXPECT_FALSE(is_sensitive_broker_config("storage.url", "s3://bucket/prefix"));
  EXPECT_FALSE(is_sensitive_broker_config("node.id", "1"));
}

TEST(incremental_alter, set_delete_append_subtract) {
  broker_config cfg;
  std::map<std::string, std::string> c{{"retention.ms", "1000"}, {"segment.ms", "5000"}};
  auto r = apply_incremental(c,
                             {make_op("retention.ms", 0, "2000"), make_op("segment.ms", 1, {}),
                              make_op("cleanup.policy", 2, "compact")},
                             cfg);
  EXPECT_EQ(r.error, error_code::none);
  EXPECT_EQ(c, (std::map<std::string, std::string>{{"cleanup.policy", "delete,compact"},
                                                   {"retention.ms", "2000"}}));
  r = apply_incremental(c, {make_op("cleanup.policy", 2, "compact")}, cfg);
  EXPECT_EQ(c.at("cleanup.policy"), "delete,compact") << "APPEND does not duplicate";
  r = apply_incremental(c, {make_op("cleanup.policy", 3, "delete")}, cfg);
  EXPECT_EQ(r.error, error_code::none);
  EXPECT_EQ(c.at("cleanup.policy"), "compact");
  // DELETE of an unset config is fine (Kafka does the same).
  r = apply_incremental(c, {make_op("segment.bytes", 1, {})}, cfg);
  EXPECT_EQ(r.error, error_code::none);
}

TEST(incremental_alter, refusals) {
  broker_config cfg;
  std::map<std::string, std::string> c;
  EXPECT_EQ(apply_incremental(c, {make_op("bogus", 0, "1")}, cfg).error,
            error_code::invalid_config);
  EXPECT_EQ(apply_incremental(c, {make_op("retention.ms", 2, "1")}, cfg).error,
            error_code::invalid_config)
      << "APPEND on a non-list config";
  EXPECT_EQ(apply_incremental(c, {make_op("retention.ms", 0, {})}, cfg).error,
            error_code::invalid_config);
  EXPECT_EQ(apply_incremental(c, {make_op("retention.ms", 7, "1")}, cfg).error,
            error_code::invalid_request);
}

TEST(describe_configs, topic_sources_and_filter) {
  broker_config cfg;
  metadata::topic_info t;
  t.name = "t";
  t.configs = {{"retention.ms", "5"}, {"legacy.key", "v"}};
  auto out = describe_topic_configs(cfg, t, std::nullopt, true, true);
  EXPECT_EQ(out.error_code, 0);
  EXPECT_EQ(out.resource_type, 2);
  std::map<std::string, kafka::describe_configs_response::describe_configs_resource_result> by;
  for (const auto& e : out.configs) by[e.name] = e;
  EXPECT_EQ(by.size(), topic_config_defs().size() + 1);
  EXPECT_EQ(by.at("retention.ms").value, "5");
  EXPECT_EQ(by.at("retention.ms").config_source, config_source_dynamic_topic);
  EXPECT_FALSE(by.at("retention.ms").is_default);
  ASSERT_EQ(by.at("retention.ms").synonyms.size(), 2u);
  EXPECT_EQ(by.at("retention.bytes").value, "-1");
  EXPECT_EQ(by.at("retention.bytes").config_source, config_source_default);
  EXPECT_TRUE(by.at("retention.bytes").is_default);
  EXPECT_TRUE(by.at("retention.bytes").documentation.has_value());
  EXPECT_EQ(by.at("legacy.key").value, "v");

  auto some = describe_topic_configs(cfg, t, std::vector<std::string>{"segment.ms"}, false, false);
  ASSERT_EQ(some.configs.size(), 1u);
  EXPECT_EQ(some.configs[0].name, "segment.ms");
  EXPECT_TRUE(some.configs[0].synonyms.empty());
  EXPECT_FALSE(some.configs[0].documentation.has_value());
}

TEST(describe_configs, broker_keys_are_static_and_secrets_hidden) {
  broker_config cfg;
  cfg.node_id = 3;
  cfg.raw = {{"node.id", "3"}, {"s3.secret.key", "hunter2"}, {"num.partitions", "4"}};
  auto out = describe_broker_configs(cfg, "3", std::nullopt, true, false);
  EXPECT_EQ(out.error_code, 0);
  ASSERT_EQ(out.configs.size(), 3u);
  for (const auto& e : out.configs) {
    EXPECT_EQ(e.config_source, config_source_static_broker);
    EXPECT_TRUE(e.read_only);
    if (e.name == "s3.secret.key") {
      EXPECT_TRUE(e.is_sensitive);
      EXPECT_FALSE(e.value.has_value());
      ASSERT_EQ(e.synonyms.size(), 1u);
      EXPECT_FALSE(e.synonyms[0].value.has_value());
    } else {
      EXPECT_FALSE(e.is_sensitive);
      EXPECT_EQ(e.value, cfg.raw.at(e.name));
    }
  }
  EXPECT_EQ(describe_broker_configs(cfg, "", std::nullopt, false, false).configs.size(), 3u);
  EXPECT_EQ(describe_broker_configs(cfg, "7", std::nullopt, false, false).error_code,
            static_cast<int16_t>(error_code::invalid_request));
}

}  // namespace
}  // namespace sh::broker
