// Compaction and retention configuration: broker keys (log.segment.bytes, log.roll.ms,
// log.retention.*, compaction.interval.ms, object.gc.grace.ms, object.sweep.interval.ms), the
// topic configs they default, DescribeConfigs sources, the segment codec choice and batch
// re-compression.
#include <gtest/gtest.h>

#include "admin/admin_handlers.h"
#include "admin/topic_configs.h"
#include "compaction/compactor.h"
#include "sh/kafka/record_batch.h"

namespace sh::broker {
namespace {

broker_config config_of(std::map<std::string, std::string> props) {
  auto c = make_broker_config(props);
  EXPECT_TRUE(c) << c.message();
  return c ? *c : broker_config{};
}

TEST(compaction_config, broker_keys_are_validated) {
  auto ok = make_broker_config({{"log.segment.bytes", "1048576"},
                                {"log.roll.ms", "1000"},
                                {"log.retention.ms", "-1"},
                                {"log.retention.bytes", "1000000000"},
                                {"compaction.interval.ms", "500"},
                                {"object.gc.grace.ms", "0"},
                                {"object.sweep.interval.ms", "60000"}});
  ASSERT_TRUE(ok) << ok.message();
  for (auto [k, v] :
       std::vector<std::pair<std::string, std::string>>{{"log.segment.bytes", "13"},
                                                        {"log.segment.bytes", "4294967296"},
                                                        {"log.roll.ms", "0"},
                                                        {"log.retention.ms", "-2"},
                                                        {"log.retention.bytes", "lots"},
                                                        {"compaction.interval.ms", "0"},
                                                        {"object.gc.grace.ms", "-1"},
                                                        {"object.sweep.interval.ms", ""}}) {
    if (v.empty()) continue;  // empty = unset, allowed
    auto bad = make_broker_config({{k, v}});
    EXPECT_FALSE(bad) << k << "=" << v;
    if (!bad) continue;
    EXPECT_NE(bad.message().find(k), std::string::npos) << bad.message();
  }
}

TEST(compaction_config, compactor_options_follow_broker_keys) {
  auto defaults = compaction::make_compactor_options(config_of({}), "me");
  EXPECT_EQ(defaults.pass_interval_ms, 10000);
  EXPECT_EQ(defaults.gc_grace_ms, 300000);
  EXPECT_EQ(defaults.sweep_interval_ms, 3600000);
  EXPECT_EQ(defaults.owner, "me");
  auto set = compaction::make_compactor_options(config_of({{"compaction.interval.ms", "250"},
                                                           {"object.gc.grace.ms", "1500"},
                                                           {"object.sweep.interval.ms", "700"}}),
                                                "me");
  EXPECT_EQ(set.pass_interval_ms, 250);
  EXPECT_EQ(set.gc_grace_ms, 1500);
  EXPECT_EQ(set.sweep_interval_ms, 700);
}

TEST(compaction_config, topic_defaults_come_from_broker_keys) {
  auto cfg = config_of({{"log.segment.bytes", "1048576"},
                        {"log.roll.ms", "1000"},
                        {"log.retention.ms", "86400000"},
                        {"log.retention.bytes", "5000"}});
  std::map<std::string, std::string> topic = {{"retention.ms", "60000"}};
  EXPECT_EQ(effective_topic_config(topic, "segment.bytes", cfg), "1048576");
  EXPECT_EQ(effective_topic_config(topic, "segment.ms", cfg), "1000");
  EXPECT_EQ(effective_topic_config(topic, "retention.ms", cfg), "60000");  // the topic's own
  EXPECT_EQ(effective_topic_config(topic, "retention.bytes", cfg), "5000");
  auto plain = config_of({});
  EXPECT_EQ(effective_topic_config({}, "segment.bytes", plain), "134217728");
  EXPECT_EQ(effective_topic_config({}, "retention.ms", plain), "-1");
  EXPECT_EQ(effective_topic_config({}, "archive.compression.type", plain), "none");
}

TEST(compaction_config, describe_configs_reports_sources) {
  auto cfg = config_of({{"log.retention.bytes", "5000"}});
  metadata::topic_info t;
  t.name = "t";
  t.configs = {{"segment.bytes", "2048"}};
  auto out = describe_topic_configs(cfg, t, std::nullopt, true, false);
  std::map<std::string, const kafka::describe_configs_response::describe_configs_resource_result*>
      by;
  for (const auto& e : out.configs) by[e.name] = &e;
  ASSERT_TRUE(by.count("segment.bytes") && by.count("retention.bytes") && by.count("retention.ms"));
  EXPECT_EQ(by["segment.bytes"]->value, "2048");
  EXPECT_EQ(by["segment.bytes"]->config_source, config_source_dynamic_topic);
  EXPECT_FALSE(by["segment.bytes"]->is_default);
  EXPECT_EQ(by["retention.bytes"]->value, "5000");
  EXPECT_EQ(by["retention.bytes"]->config_source, config_source_static_broker);
  EXPECT_FALSE(by["retention.bytes"]->is_default);
  ASSERT_FALSE(by["retention.bytes"]->synonyms.empty());
  EXPECT_EQ(by["retention.bytes"]->synonyms[0].name, "log.retention.bytes");
  EXPECT_EQ(by["retention.bytes"]->synonyms[0].source, config_source_static_broker);
  EXPECT_EQ(by["retention.ms"]->value, "-1");
  EXPECT_EQ(by["retention.ms"]->config_source, config_source_default);
  EXPECT_TRUE(by["retention.ms"]->is_default);
}

TEST(compaction_config, incremental_alter_sets_and_deletes_retention) {
  auto cfg = config_of({{"log.retention.ms", "86400000"}});
  std::map<std::string, std::string> topic;
  using op = kafka::incremental_alter_configs_request::alterable_config;
  auto make = [](std::string name, int8_t operation, std::optional<std::string> value) {
    op o;
    o.name = std::move(name);
    o.config_operation = operation;
    o.value = std::move(value);
    return o;
  };
  ASSERT_EQ(apply_incremental(
                topic,
                {make("retention.ms", 0, "3600000"), make("archive.compression.type", 0, "zstd"),
                 make("segment.bytes", 0, "1048576")},
                cfg)
                .error,
            kafka::error_code::none);
  EXPECT_EQ(validate_topic_configs(topic), std::nullopt);
  EXPECT_EQ(effective_topic_config(topic, "retention.ms", cfg), "3600000");
  ASSERT_EQ(apply_incremental(topic, {make("retention.ms", 1, std::nullopt)}, cfg).error,
            kafka::error_code::none);
  // Deleted: back to the broker's log.retention.ms.
  EXPECT_EQ(effective_topic_config(topic, "retention.ms", cfg), "86400000");
  std::map<std::string, std::string> bad = topic;
  bad["retention.bytes"] = "-5";
  EXPECT_NE(validate_topic_configs(bad), std::nullopt);
  bad = topic;
  bad["segment.bytes"] = "13";
  EXPECT_NE(validate_topic_configs(bad), std::nullopt);
}

TEST(compaction_config, archive_codec_values_and_choice) {
  for (const char* v : {"none", "uncompressed", "gzip", "snappy", "lz4", "zstd"}) {
    EXPECT_EQ(validate_topic_config("archive.compression.type", v), std::nullopt) << v;
  }
  EXPECT_NE(validate_topic_config("archive.compression.type", "brotli"), std::nullopt);
  EXPECT_EQ(compaction::segment_codec("producer", "none"), -1);
  EXPECT_EQ(compaction::segment_codec("gzip", "none"), 1);
  EXPECT_EQ(compaction::segment_codec("uncompressed", "none"), 0);
  EXPECT_EQ(compaction::segment_codec("gzip", "zstd"), 4);
  EXPECT_EQ(compaction::segment_codec("producer", "uncompressed"), 0);
  EXPECT_EQ(compaction::segment_codec("producer", "lz4"), 3);
}

TEST(compaction_config, recompress_batch_keeps_every_field) {
  kafka::batch_build_options o;
  o.base_offset = 0;
  o.partition_leader_epoch = 7;
  o.attributes = 0x10 | 0x8 | 1;  // transactional, LogAppendTime, gzip
  o.base_timestamp = 1700000000000;
  o.max_timestamp = 1700000000999;
  o.producer_id = 42;
  o.producer_epoch = 3;
  o.base_sequence = 100;
  std::vector<kafka::record_spec> recs;
  for (int i = 0; i < 20; ++i) {
    kafka::record_spec r;
    r.timestamp_delta = i * 3;
    r.offset_delta = i * 2;  // gaps, as after key compaction upstream
    if (i % 4) r.key = "k" + std::to_string(i);
    if (i % 5) r.value = std::string(static_cast<size_t>(i * 10), 'v');
    r.headers.push_back({"a", std::nullopt});
    r.headers.push_back({"a", std::string("dup")});
    recs.push_back(r);
  }
  o.last_offset_delta = 38;
  auto gz = kafka::build_batch(o, recs);
  for (int codec : {0, 2, 3, 4}) {
    auto re = compaction::recompress_batch(gz, codec);
    ASSERT_TRUE(re) << codec;
    auto a = kafka::split_batches(gz);
    auto b = kafka::split_batches(*re);
    ASSERT_TRUE(a && b && a->size() == 1 && b->size() == 1);
    auto ha = (*a)[0].header, hb = (*b)[0].header;
    EXPECT_EQ(hb.compression_bits(), codec);
    EXPECT_EQ(hb.attributes & ~7, ha.attributes & ~7);
    EXPECT_EQ(hb.partition_leader_epoch, 7);
    EXPECT_EQ(hb.base_timestamp, ha.base_timestamp);
    EXPECT_EQ(hb.max_timestamp, ha.max_timestamp);
    EXPECT_EQ(hb.last_offset_delta, 38);
    EXPECT_EQ(hb.records_count, 20);
    EXPECT_EQ(hb.producer_id, 42);
    EXPECT_EQ(hb.producer_epoch, 3);
    EXPECT_EQ(hb.base_sequence, 100);
    std::vector<std::string> ra, rb;
    auto dump = [](std::vector<std::string>& out) {
      return [&out](const kafka::record_view& r) {
        std::string s = std::to_string(r.offset_delta) + "/" + std::to_string(r.timestamp_delta) +
                        "/" + std::to_string(r.attributes);
        s += r.key ? "k" + std::string(r.key->begin(), r.key->end()) : "-";
        s += r.value ? "v" + std::string(r.value->begin(), r.value->end()) : "-";
        for (const auto& h : r.headers) {
          s += "|" + std::string(h.key) +
               (h.value ? "=" + std::string(h.value->begin(), h.value->end()) : "~");
        }
        out.push_back(s);
      };
    };
    ASSERT_TRUE(kafka::for_each_record((*a)[0], dump(ra)));
    ASSERT_TRUE(kafka::for_each_record((*b)[0], dump(rb)));
    EXPECT_EQ(ra, rb) << codec;
  }
  EXPECT_FALSE(compaction::recompress_batch(gz, 1));   // already gzip
  EXPECT_FALSE(compaction::recompress_batch(gz, -1));  // keep
  std::vector<uint8_t> broken = gz;
  broken[broken.size() - 3] ^= 0xff;  // CRC mismatch: kept as is, never rewritten
  EXPECT_FALSE(compaction::recompress_batch(broken, 4));
  // Control batches (transaction markers) stay as they are.
  kafka::batch_build_options ctl;
  ctl.attributes = 0x20 | 0x10;
  kafka::record_spec marker;
  marker.key = std::string("\0\0\0\0", 4);
  marker.value = std::string("\0\0\0\0\0\0", 6);
  EXPECT_FALSE(compaction::recompress_batch(kafka::build_batch(ctl, {marker}), 4));
}

}  // namespace
}  // namespace sh::broker
