#include "sh/broker/config.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace sh::broker {
namespace {

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

template <class T>
config_result<T> parse_int(const std::string& key, const std::string& v, T min, T max) {
  T out{};
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size() || out < min || out > max) {
    return make_error(config_errc::bad_value,
                      fmt::format("{}={}: expected an integer in [{}, {}]", key, v, min, max));
  }
  return out;
}

config_result<bool> parse_bool(const std::string& key, const std::string& v) {
  if (v == "true") return true;
  if (v == "false") return false;
  return make_error(config_errc::bad_value, fmt::format("{}={}: expected true or false", key, v));
}

config_result<std::vector<listener>> parse_listeners(const std::string& key, const std::string& v) {
  std::vector<listener> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (item.empty()) continue;
    auto l = parse_listener(item);
    if (!l) return make_error(config_errc::bad_value, fmt::format("{}: {}", key, l.message()));
    out.push_back(*l);
  }
  if (out.empty()) return make_error(config_errc::bad_value, fmt::format("{} is empty", key));
  return out;
}

}  // namespace

const std::vector<config_key>& known_config_keys() {
  static const std::vector<config_key> keys = {
      {"listeners", "PLAINTEXT://127.0.0.1:9092",
       "Comma-separated NAME://host:port the broker binds (only PLAINTEXT for now)."},
      {"advertised.listeners", "", "What clients are told to connect to (default: listeners)."},
      {"node.id", "0", "This broker's id, unique among brokers sharing one metadata store."},
      {"cluster.id", "streamhouse", "Cluster id reported in Metadata responses."},
      {"data.dir", "./streamhouse-data",
       "Local state: the embedded SQLite database and object directory when metadata.url / "
       "storage.url are unset."},
      {"metadata.url", "", "sqlite path (default <data.dir>/metadata.db) or postgresql:// URL."},
      {"storage.url", "", "file:///path (default <data.dir>/objects) or s3://bucket/prefix."},
      {"num.partitions", "1", "Partitions of auto-created topics and CreateTopics with -1."},
      {"default.replication.factor", "1",
       "Accepted for compatibility; durability comes from the object store."},
      {"auto.create.topics.enable", "true", "Create unknown topics on Metadata and Produce."},
      {"num.io.threads", "2", "Threads serving network I/O and request handling."},
      {"num.blocking.threads", "8", "Bounded pool for blocking metadata and storage calls."},
      {"socket.request.max.bytes", "104857600", "Largest request frame accepted."},
      {"connections.max.idle.ms", "600000", "Idle connections are closed after this long."},
      {"queued.max.request.bytes", "1073741824",
       "Request bytes all connections may hold in flight before reading pauses."},
      {"max.inflight.bytes.per.connection", "104857600",
       "Request bytes one connection may hold in flight before reading it pauses."},
      {"ingest.flush.bytes", "8388608", "Flush the open ingest object at this size."},
      {"ingest.flush.ms", "",
       "Flush the open ingest object this long after its first batch (default 250; 5 on a "
       "local-directory store)."},
      {"message.max.bytes", "1048588", "Largest record batch accepted (after compression)."},
      {"log.level", "info", "trace, debug, info, warn, error."},
      {"mirror.config", "",
       "A mirror properties file (see `streamhouse mirror --help`): run that mirror inside this "
       "broker process, stopped with it."},
      {"read.cache.bytes", "268435456", "Memory for cached object ranges on the fetch path."},
      {"read.cache.disk.bytes", "0",
       "Local disk for cached object ranges, under the memory cache (0: no disk tier)."},
      {"read.cache.disk.dir", "",
       "Directory of the disk cache (default <data.dir>/read-cache); its *.rc files are deleted "
       "at start."},
      {"group.initial.rebalance.delay.ms", "",
       "Wait for more members before the first rebalance of an empty group (default 3000)."},
      {"group.min.session.timeout.ms", "",
       "Smallest session timeout members may ask for "
       "(default 6000)."},
      {"group.max.session.timeout.ms", "",
       "Largest session timeout members may ask for "
       "(default 1800000)."},
      {"group.coordinator.lease.ms", "",
       "Lease that makes a broker a group's coordinator (default 30000)."},
      {"log.segment.bytes", "",
       "Default segment.bytes of topics: compact into a segment at this size (default "
       "134217728)."},
      {"log.roll.ms", "",
       "Default segment.ms of topics: compact at this age even if small (default 600000)."},
      {"log.retention.ms", "",
       "Default retention.ms of topics (default -1: keep forever, the archive default)."},
      {"log.retention.bytes", "",
       "Default retention.bytes of topics, per partition (default -1: no limit)."},
      {"compaction.interval.ms", "",
       "Pause between compaction / retention / garbage collection passes (default 10000)."},
      {"object.gc.grace.ms", "",
       "How long an object stays after losing its last index row, and how long an unregistered "
       "object must stay unregistered before the orphan sweep deletes it (default 300000)."},
      {"object.sweep.interval.ms", "",
       "Pause between orphan sweeps, each listing the bucket (default 3600000)."},
      {"compaction.lease.ms", "",
       "Lease that makes a broker a partition's compactor; a crashed broker's partitions are "
       "taken over after it (default 60000)."},
      {"s3.endpoint", "",
       "S3 endpoint URL, e.g. http://127.0.0.1:9000 (default: AWS for s3.region)."},
      {"s3.region", "us-east-1", "S3 region used for signing."},
      {"s3.access.key", "", "S3 access key (default: AWS_ACCESS_KEY_ID)."},
      {"s3.secret.key", "", "S3 secret key (default: AWS_SECRET_ACCESS_KEY)."},
      {"s3.multipart.threshold.bytes", "67108864",
       "Objects larger than this are uploaded in parts (0: never)."},
      {"s3.multipart.part.bytes", "16777216", "Part size of multipart uploads (5 MiB .. 5 GiB)."},
      {"s3.path.style", "true",
       "true: <endpoint>/<bucket>/<key>; false: virtual-hosted <bucket>.<host>."},
      {"local.direct.io", "true",
       "Local directory store: write objects with O_DIRECT (less CPU per produced byte; fresh "
       "objects are not left in the page cache). Falls back to buffered writes where refused."},
  };
  return keys;
}

std::string config_help_text() {
  std::string out = "Configuration keys (properties file, key=value):\n";
  for (const auto& k : known_config_keys()) {
    out += fmt::format("  {:<28} {}{}\n", k.name, k.doc,
                       *k.default_value ? fmt::format(" [default: {}]", k.default_value) : "");
  }
  return out;
}

config_result<listener> parse_listener(const std::string& spec) {
  auto sep = spec.find("://");
  if (sep == std::string::npos) {
    return make_error(config_errc::bad_value, fmt::format("'{}': expected NAME://host:port", spec));
  }
  listener l;
  l.name = spec.substr(0, sep);
  std::string hostport = spec.substr(sep + 3);
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos) {
    return make_error(config_errc::bad_value, fmt::format("'{}': missing port", spec));
  }
  l.host = hostport.substr(0, colon);
  if (l.host.size() >= 2 && l.host.front() == '[' && l.host.back() == ']') {
    l.host = l.host.substr(1, l.host.size() - 2);
  }
  auto port = parse_int<int32_t>("port", hostport.substr(colon + 1), 0, 65535);
  if (!port) return make_error(config_errc::bad_value, fmt::format("'{}': bad port", spec));
  l.port = static_cast<uint16_t>(*port);
  if (l.name != "PLAINTEXT") {
    return make_error(config_errc::bad_value,
                      fmt::format("'{}': only PLAINTEXT listeners are supported", spec));
  }
  return l;
}

config_result<std::map<std::string, std::string>> parse_properties(const std::string& text) {
  std::map<std::string, std::string> out;
  std::stringstream ss(text);
  std::string line;
  int line_no = 0;
  while (std::getline(ss, line)) {
    ++line_no;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == '!') continue;
    auto eq = t.find_first_of("=:");
    if (eq == std::string::npos) {
      return make_error(config_errc::syntax,
                        fmt::format("line {}: expected key=value, got '{}'", line_no, t));
    }
    out[trim(std::string_view(t).substr(0, eq))] = trim(std::string_view(t).substr(eq + 1));
  }
  return out;
}

config_result<broker_config> make_broker_config(const std::map<std::string, std::string>& props) {
  std::set<std::string> known;
  for (const auto& k : known_config_keys()) known.insert(k.name);
  std::vector<std::string> unknown;
  for (const auto& [k, v] : props) {
    if (!known.count(k)) unknown.push_back(k);
  }
  if (!unknown.empty()) {
    return make_error(config_errc::unknown_key,
                      fmt::format("unknown configuration key(s): {} (see --help for the list)",
                                  fmt::join(unknown, ", ")));
  }
  broker_config c;
  for (const auto& k : known_config_keys()) c.raw[k.name] = k.default_value;
  for (const auto& [k, v] : props) c.raw[k] = v;
  const auto& r = c.raw;

#define SH_TRY_ASSIGN(target, expr)                      \
  do {                                                   \
    auto _r = (expr);                                    \
    if (!_r) return make_error(_r.code(), _r.message()); \
    target = std::move(*_r);                             \
  } while (0)

  SH_TRY_ASSIGN(c.listeners, parse_listeners("listeners", r.at("listeners")));
  if (r.at("advertised.listeners").empty()) {
    c.advertised_listeners = c.listeners;
  } else {
    SH_TRY_ASSIGN(c.advertised_listeners,
                  parse_listeners("advertised.listeners", r.at("advertised.listeners")));
  }
  SH_TRY_ASSIGN(c.node_id, parse_int<int32_t>("node.id", r.at("node.id"), 0, 1 << 30));
  c.cluster_id = r.at("cluster.id");
  c.data_dir = r.at("data.dir");
  if (c.data_dir.empty()) return make_error(config_errc::bad_value, "data.dir is empty");
  c.metadata_url = r.at("metadata.url");
  if (c.metadata_url.empty()) c.metadata_url = c.data_dir + "/metadata.db";
  c.storage_url = r.at("storage.url");
  if (c.storage_url.empty()) c.storage_url = c.data_dir + "/objects";
  SH_TRY_ASSIGN(c.num_partitions,
                parse_int<int32_t>("num.partitions", r.at("num.partitions"), 1, 100000));
  (void)parse_int<int32_t>("default.replication.factor", r.at("default.replication.factor"), 1,
                           1000);
  SH_TRY_ASSIGN(c.auto_create_topics,
                parse_bool("auto.create.topics.enable", r.at("auto.create.topics.enable")));
  SH_TRY_ASSIGN(c.num_io_threads,
                parse_int<int32_t>("num.io.threads", r.at("num.io.threads"), 1, 256));
  SH_TRY_ASSIGN(c.num_blocking_threads,
                parse_int<int32_t>("num.blocking.threads", r.at("num.blocking.threads"), 1, 1024));
  SH_TRY_ASSIGN(c.socket_request_max_bytes,
                parse_int<int64_t>("socket.request.max.bytes", r.at("socket.request.max.bytes"),
                                   1024, int64_t{1} << 31));
  SH_TRY_ASSIGN(c.connections_max_idle_ms,
                parse_int<int64_t>("connections.max.idle.ms", r.at("connections.max.idle.ms"), 1,
                                   int64_t{1} << 40));
  SH_TRY_ASSIGN(c.queued_max_request_bytes,
                parse_int<int64_t>("queued.max.request.bytes", r.at("queued.max.request.bytes"),
                                   1024, int64_t{1} << 40));
  SH_TRY_ASSIGN(
      c.max_inflight_bytes_per_connection,
      parse_int<int64_t>("max.inflight.bytes.per.connection",
                         r.at("max.inflight.bytes.per.connection"), 1024, int64_t{1} << 40));
  SH_TRY_ASSIGN(
      c.ingest_flush_bytes,
      parse_int<int64_t>("ingest.flush.bytes", r.at("ingest.flush.bytes"), 1, int64_t{1} << 32));
  const bool local_store = c.storage_url.rfind("s3://", 0) != 0;
  if (r.at("ingest.flush.ms").empty()) {
    c.ingest_flush_ms = local_store ? 5 : 250;
  } else {
    SH_TRY_ASSIGN(c.ingest_flush_ms,
                  parse_int<int64_t>("ingest.flush.ms", r.at("ingest.flush.ms"), 0, 3600000));
  }
  SH_TRY_ASSIGN(
      c.message_max_bytes,
      parse_int<int64_t>("message.max.bytes", r.at("message.max.bytes"), 1024, int64_t{1} << 30));
  c.log_level = r.at("log.level");
  static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "error"};
  if (!levels.count(c.log_level)) {
    return make_error(config_errc::bad_value,
                      fmt::format("log.level={}: unknown level", c.log_level));
  }
  SH_TRY_ASSIGN(c.read_cache_bytes, parse_int<int64_t>("read.cache.bytes", r.at("read.cache.bytes"),
                                                       0, int64_t{1} << 42));
  SH_TRY_ASSIGN(c.read_cache_disk_bytes,
                parse_int<int64_t>("read.cache.disk.bytes", r.at("read.cache.disk.bytes"), 0,
                                   int64_t{1} << 50));
  c.read_cache_disk_dir = r.at("read.cache.disk.dir");
  if (c.read_cache_disk_dir.empty()) c.read_cache_disk_dir = c.data_dir + "/read-cache";
  auto env_or = [](const std::string& v, const char* env) {
    if (!v.empty()) return v;
    const char* e = std::getenv(env);
    return std::string(e ? e : "");
  };
  c.s3_endpoint = r.at("s3.endpoint");
  c.s3_region = r.at("s3.region");
  c.s3_access_key = env_or(r.at("s3.access.key"), "AWS_ACCESS_KEY_ID");
  c.s3_secret_key = env_or(r.at("s3.secret.key"), "AWS_SECRET_ACCESS_KEY");
  c.s3_session_token = env_or("", "AWS_SESSION_TOKEN");
  SH_TRY_ASSIGN(c.s3_path_style, parse_bool("s3.path.style", r.at("s3.path.style")));
  SH_TRY_ASSIGN(c.local_direct_io, parse_bool("local.direct.io", r.at("local.direct.io")));
  SH_TRY_ASSIGN(c.s3_multipart_threshold_bytes,
                parse_int<int64_t>("s3.multipart.threshold.bytes",
                                   r.at("s3.multipart.threshold.bytes"), 0, int64_t{1} << 42));
  SH_TRY_ASSIGN(c.s3_multipart_part_bytes,
                parse_int<int64_t>("s3.multipart.part.bytes", r.at("s3.multipart.part.bytes"),
                                   int64_t{5} << 20, int64_t{5} << 30));
  if (!local_store && (c.s3_access_key.empty() || c.s3_secret_key.empty())) {
    return make_error(config_errc::bad_value,
                      "storage.url is s3:// but no credentials: set s3.access.key and "
                      "s3.secret.key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
  }
  for (const char* key : {"group.initial.rebalance.delay.ms", "group.min.session.timeout.ms",
                          "group.max.session.timeout.ms", "group.coordinator.lease.ms"}) {
    if (const auto& v = r.at(key); !v.empty()) {
      auto parsed = parse_int<int64_t>(key, v, 0, int64_t{1} << 40);
      if (!parsed) return make_error(parsed.code(), parsed.message());
    }
  }
  // Compaction, retention and garbage collection keys (read by broker/src/compaction).
  for (auto [key, min] : {std::pair<const char*, int64_t>{"log.segment.bytes", 14},
                          {"log.roll.ms", 1},
                          {"log.retention.ms", -1},
                          {"log.retention.bytes", -1},
                          {"compaction.interval.ms", 1},
                          {"object.gc.grace.ms", 0},
                          {"object.sweep.interval.ms", 1},
                          {"compaction.lease.ms", 1}}) {
    if (const auto& v = r.at(key); !v.empty()) {
      int64_t max = std::string_view(key) == "log.segment.bytes" ? int64_t{2147483647}
                                                                 : int64_t{1} << 62;
      auto parsed = parse_int<int64_t>(key, v, min, max);
      if (!parsed) return make_error(parsed.code(), parsed.message());
    }
  }
#undef SH_TRY_ASSIGN
  return c;
}

config_result<broker_config> load_broker_config(
    const std::string& path, const std::map<std::string, std::string>& overrides) {
  std::ifstream in(path);
  if (!in)
    return make_error(config_errc::io_error, fmt::format("cannot read config file {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto props = parse_properties(ss.str());
  if (!props) return make_error(props.code(), fmt::format("{}: {}", path, props.message()));
  for (const auto& k : known_config_keys()) {
    std::string env = "STREAMHOUSE_";
    for (const char* ch = k.name; *ch; ++ch) {
      env += *ch == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(*ch)));
    }
    if (const char* v = std::getenv(env.c_str())) (*props)[k.name] = v;
  }
  for (const auto& [k, v] : overrides) (*props)[k] = v;
  auto cfg = make_broker_config(*props);
  if (!cfg) return make_error(cfg.code(), fmt::format("{}: {}", path, cfg.message()));
  return cfg;
}

}  // namespace sh::broker
