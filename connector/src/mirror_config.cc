#include <charconv>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "sh/connector/mirror.h"

// Early return of an error result (local to this file).
#define MIRROR_TRY(var, expr)           \
  auto var##_r = (expr);                \
  if (!var##_r) return var##_r.error(); \
  auto var = *var##_r
#define MIRROR_TRY_VOID(expr)   \
  do {                          \
    auto r_ = (expr);           \
    if (!r_) return r_.error(); \
  } while (0)

namespace sh::connector {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

cresult<int64_t> parse_int(const std::string& key, const std::string& v, int64_t min, int64_t max) {
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || p != v.data() + v.size() || out < min || out > max) {
    return make_error(errc::invalid_config, key + ": expected an integer in " +
                                                std::to_string(min) + ".." + std::to_string(max) +
                                                ", got '" + v + "'");
  }
  return out;
}

cresult<void> check_regex(const std::string& key, const std::string& re) {
  if (re.empty()) return {};
  try {
    std::regex r(re, std::regex::ECMAScript);
    (void)r;
  } catch (const std::regex_error& e) {
    return make_error(errc::invalid_config, key + ": bad regular expression: " + e.what());
  }
  return {};
}

struct key_doc {
  const char* key;
  const char* def;
  const char* doc;
};

const key_doc k_keys[] = {
    {"mirror.name", "", "Required. Names this mirror; its checkpoints are stored under it."},
    {"source.bootstrap.servers", "", "Required. The source Kafka cluster."},
    {"source.<property>", "",
     "Any librdkafka consumer property for the source (security.protocol, sasl.*, timeouts, "
     "isolation.level, default read_committed)."},
    {"topics", "", "Comma-separated source topics to mirror."},
    {"topics.regex", "", "ECMAScript regex; source topics whose whole name matches are mirrored."},
    {"topics.exclude", "", "ECMAScript regex; matching topics are never mirrored."},
    {"metadata.url", "", "Required. The archive's metadata store (as the broker's key)."},
    {"storage.url", "", "Required. The archive's object store (as the broker's key)."},
    {"s3.endpoint", "", "S3 endpoint URL."},
    {"s3.region", "us-east-1", "S3 region."},
    {"s3.access.key", "", "S3 access key (default: AWS_ACCESS_KEY_ID)."},
    {"s3.secret.key", "", "S3 secret key (default: AWS_SECRET_ACCESS_KEY)."},
    {"s3.path.style", "true", "Path-style S3 URLs."},
    {"flush.bytes", "8388608", "Ingest object size that triggers a flush."},
    {"flush.ms", "50", "Longest time a read record waits before its flush."},
    {"batch.max.bytes", "1048576", "Bound on one rebuilt record batch."},
    {"archive.compression.type", "none",
     "Codec of the rebuilt batches: none gzip snappy lz4 zstd."},
    {"topic.discovery.interval.ms", "30000", "How often new topics and partitions are looked for."},
    {"lease.timeout.ms", "15000",
     "The mirror holds the lease 'mirror:<mirror.name>' for this long, renewed every third of it; "
     "a standby process with the same mirror.name takes over this long after the holder died."},
    {"mirror.max.members", "64",
     "Most processes sharing one mirror.name (member slots 'mirror:<name>/member/<k>')."},
    {"put.concurrency", "4", "Ingest-object PUTs in flight (commits stay in order)."},
    {"groups", "",
     "Comma-separated source group ids to sync even when the source cannot list "
     "groups (they must still match groups.regex when it is set)."},
    {"groups.regex", "",
     "ECMAScript regex; committed offsets of matching source groups are copied 1:1 into the "
     "archive (groups active on the archive are left alone)."},
    {"group.sync.interval.ms", "5000", "How often group offsets are synced."},
    {"metrics.listener", "", "host:port serving Prometheus metrics at GET /metrics."},
    {"metrics.log.interval.ms", "10000", "Period of the lag/throughput log lines."},
    {"retention.assumed.ms", "-1",
     "retention.ms to assume for source topics whose config DescribeConfigs cannot read "
     "(-1: unknown, no retention-left metric)."},
    {"log.level", "info", "trace debug info warn error."},
};

}  // namespace

std::string mirror_config_help_text() {
  std::string out = "mirror configuration keys:\n";
  for (const auto& k : k_keys) {
    out += "  ";
    out += k.key;
    if (*k.def) out += std::string(" (default ") + k.def + ")";
    out += "\n      ";
    out += k.doc;
    out += "\n";
  }
  return out;
}

cresult<mirror_config> parse_mirror_config(const std::map<std::string, std::string>& props) {
  mirror_config c;
  for (const auto& [key, value] : props) {
    if (key.rfind("source.", 0) == 0) {
      if (key.size() == 7) return make_error(errc::invalid_config, "empty source. property");
      c.source_props[key.substr(7)] = value;
    } else if (key == "mirror.name") {
      c.name = value;
    } else if (key == "topics") {
      std::stringstream ss(value);
      std::string t;
      while (std::getline(ss, t, ',')) {
        t = trim(t);
        if (!t.empty()) c.topics.push_back(t);
      }
    } else if (key == "topics.regex") {
      c.topics_regex = value;
    } else if (key == "topics.exclude") {
      c.topics_exclude = value;
    } else if (key == "metadata.url") {
      c.metadata_url = value;
    } else if (key == "storage.url") {
      c.storage_url = value;
    } else if (key == "s3.endpoint") {
      c.s3_endpoint = value;
    } else if (key == "s3.region") {
      c.s3_region = value;
    } else if (key == "s3.access.key") {
      c.s3_access_key = value;
    } else if (key == "s3.secret.key") {
      c.s3_secret_key = value;
    } else if (key == "s3.path.style") {
      if (value != "true" && value != "false") {
        return make_error(errc::invalid_config, "s3.path.style: expected true or false");
      }
      c.s3_path_style = value == "true";
    } else if (key == "flush.bytes") {
      MIRROR_TRY(v, parse_int(key, value, 1024, int64_t{1} << 30));
      c.flush_bytes = static_cast<size_t>(v);
    } else if (key == "flush.ms") {
      MIRROR_TRY(v, parse_int(key, value, 0, 600000));
      c.flush_ms = v;
    } else if (key == "batch.max.bytes") {
      MIRROR_TRY(v, parse_int(key, value, 1024, int64_t{64} << 20));
      c.batch_max_bytes = static_cast<size_t>(v);
    } else if (key == "topic.discovery.interval.ms") {
      MIRROR_TRY(v, parse_int(key, value, 100, int64_t{24} * 3600 * 1000));
      c.discovery_interval_ms = v;
    } else if (key == "archive.compression.type") {
      static const char* names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
      int found = -1;
      for (int i = 0; i < 5; ++i) {
        if (value == names[i]) found = i;
      }
      if (found < 0) {
        return make_error(errc::invalid_config,
                          "archive.compression.type: expected none, gzip, snappy, lz4 or zstd");
      }
      c.compression = found;
    } else if (key == "lease.timeout.ms") {
      MIRROR_TRY(v, parse_int(key, value, 1000, int64_t{3600} * 1000));
      c.lease_timeout_ms = v;
    } else if (key == "mirror.max.members") {
      MIRROR_TRY(v, parse_int(key, value, 1, 1024));
      c.max_members = static_cast<int>(v);
    } else if (key == "put.concurrency") {
      MIRROR_TRY(v, parse_int(key, value, 1, 64));
      c.put_concurrency = static_cast<int>(v);
    } else if (key == "groups") {
      std::stringstream ss(value);
      std::string g;
      while (std::getline(ss, g, ',')) {
        g = trim(g);
        if (!g.empty()) c.groups.push_back(g);
      }
    } else if (key == "groups.regex") {
      c.groups_regex = value;
    } else if (key == "group.sync.interval.ms") {
      MIRROR_TRY(v, parse_int(key, value, 100, int64_t{24} * 3600 * 1000));
      c.group_sync_interval_ms = v;
    } else if (key == "metrics.listener") {
      c.metrics_listener = value;
    } else if (key == "metrics.log.interval.ms") {
      MIRROR_TRY(v, parse_int(key, value, 100, int64_t{24} * 3600 * 1000));
      c.metrics_log_interval_ms = v;
    } else if (key == "retention.assumed.ms") {
      MIRROR_TRY(v, parse_int(key, value, -1, INT64_MAX));
      c.retention_assumed_ms = v;
    } else if (key == "log.level") {
      c.log_level = value;
    } else {
      return make_error(errc::invalid_config, "unknown configuration key '" + key + "'");
    }
  }
  if (c.name.empty()) return make_error(errc::invalid_config, "mirror.name is required");
  if (c.source_props["bootstrap.servers"].empty()) {
    return make_error(errc::invalid_config, "source.bootstrap.servers is required");
  }
  if (c.topics.empty() && c.topics_regex.empty()) {
    return make_error(errc::invalid_config, "set topics and/or topics.regex");
  }
  if (c.metadata_url.empty()) return make_error(errc::invalid_config, "metadata.url is required");
  if (c.storage_url.empty()) return make_error(errc::invalid_config, "storage.url is required");
  MIRROR_TRY_VOID(check_regex("topics.regex", c.topics_regex));
  MIRROR_TRY_VOID(check_regex("topics.exclude", c.topics_exclude));
  MIRROR_TRY_VOID(check_regex("groups.regex", c.groups_regex));
  if (!c.source_props.count("isolation.level"))
    c.source_props["isolation.level"] = "read_committed";
  if (c.s3_access_key.empty()) {
    if (const char* v = std::getenv("AWS_ACCESS_KEY_ID")) c.s3_access_key = v;
  }
  if (c.s3_secret_key.empty()) {
    if (const char* v = std::getenv("AWS_SECRET_ACCESS_KEY")) c.s3_secret_key = v;
  }
  return c;
}

cresult<mirror_config> load_mirror_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(errc::invalid_config, "cannot read " + path);
  std::map<std::string, std::string> props;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == '!') continue;
    const auto eq = line.find_first_of("=:");
    if (eq == std::string::npos) {
      return make_error(errc::invalid_config,
                        path + ":" + std::to_string(n) + ": expected key=value");
    }
    props[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return parse_mirror_config(props);
}

}  // namespace sh::connector
