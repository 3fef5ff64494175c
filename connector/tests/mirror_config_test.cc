#include <gtest/gtest.h>

#include "sh/connector/mirror.h"

namespace sh::connector {
namespace {

std::map<std::string, std::string> base() {
  return {{"mirror.name", "m1"},
          {"source.bootstrap.servers", "localhost:9092"},
          {"topics", "a, b,,c"},
          {"metadata.url", "sqlite::memory:"},
          {"storage.url", "/tmp/x"}};
}

TEST(mirror_config, parses_and_defaults) {
  auto c = parse_mirror_config(base());
  ASSERT_TRUE(c) << c.message();
  EXPECT_EQ(c->name, "m1");
  EXPECT_EQ(c->topics, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(c->source_props.at("bootstrap.servers"), "localhost:9092");
  EXPECT_EQ(c->source_props.at("isolation.level"), "read_committed");
}

TEST(mirror_config, passes_source_properties_through) {
  auto p = base();
  p["source.isolation.level"] = "read_uncommitted";
  p["source.security.protocol"] = "ssl";
  auto c = parse_mirror_config(p);
  ASSERT_TRUE(c) << c.message();
  EXPECT_EQ(c->source_props.at("isolation.level"), "read_uncommitted");
  EXPECT_EQ(c->source_props.at("security.protocol"), "ssl");
}

TEST(mirror_config, rejects_unknown_and_missing_keys) {
  auto p = base();
  p.emplace("mirror.nmae", "x");
  EXPECT_EQ(parse_mirror_config(p).code(), errc::invalid_config);
  for (const char* k :
       {"mirror.name", "source.bootstrap.servers", "topics", "metadata.url", "storage.url"}) {
    auto q = base();
    q.erase(k);
    EXPECT_EQ(parse_mirror_config(q).code(), errc::invalid_config) << k;
  }
}

TEST(mirror_config, rejects_bad_values) {
  auto p = base();
  p.emplace("topics.regex", "(");
  EXPECT_EQ(parse_mirror_config(p).code(), errc::invalid_config);
  p = base();
  p.emplace("flush.ms", "abc");
  EXPECT_EQ(parse_mirror_config(p).code(), errc::invalid_config);
  p = base();
  p.insert_or_assign("archive.compression.type", std::string("brotli"));
  EXPECT_EQ(parse_mirror_config(p).code(), errc::invalid_config);
  p = base();
  p.insert_or_assign("archive.compression.type", std::string("zstd"));
  auto c = parse_mirror_config(p);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->compression, 4);
}

}  // namespace
}  // namespace sh::connector

namespace sh::connector {
namespace {

TEST(mirror_config, group_sync_metrics_and_sharing_keys) {
  auto p = base();
  p["groups"] = "g1, g2";
  p["groups.regex"] = "g.*";
  p["group.sync.interval.ms"] = "250";
  p["metrics.listener"] = "127.0.0.1:9404";
  p["metrics.log.interval.ms"] = "1000";
  p["retention.assumed.ms"] = "86400000";
  p["put.concurrency"] = "8";
  p["mirror.max.members"] = "16";
  auto c = parse_mirror_config(p);
  ASSERT_TRUE(c) << c.message();
  EXPECT_EQ(c->groups, (std::vector<std::string>{"g1", "g2"}));
  EXPECT_EQ(c->groups_regex, "g.*");
  EXPECT_EQ(c->group_sync_interval_ms, 250);
  EXPECT_EQ(c->metrics_listener, "127.0.0.1:9404");
  EXPECT_EQ(c->metrics_log_interval_ms, 1000);
  EXPECT_EQ(c->retention_assumed_ms, 86400000);
  EXPECT_EQ(c->put_concurrency, 8);
  EXPECT_EQ(c->max_members, 16);
  auto d = parse_mirror_config(base());
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->groups_regex.empty());
  EXPECT_EQ(d->retention_assumed_ms, -1);
  EXPECT_EQ(d->put_concurrency, 4);
  for (auto [k, v] :
       std::vector<std::pair<std::string, std::string>>{{"groups.regex", "["},
                                                        {"put.concurrency", "0"},
                                                        {"mirror.max.members", "0"},
                                                        {"retention.assumed.ms", "-2"},
                                                        {"group.sync.interval.ms", "10"}}) {
    auto q = base();
    q[k] = v;
    EXPECT_EQ(parse_mirror_config(q).code(), errc::invalid_config) << k << "=" << v;
  }
  EXPECT_EQ(mirror_group_marker("m1"), "streamhouse-mirror:m1");
}

}  // namespace
}  // namespace sh::connector
