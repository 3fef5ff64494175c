#include "topic_configs.h"

#include <algorithm>
#include <charconv>
#include <limits>

namespace sh::broker {
namespace {

// Retention, segment and compaction settings are stored and reported now; the compactor and
// retention tasks read them when they run (see README.md for which ones are enforced today).
const std::vector<topic_config_def> k_defs = {
    {"archive.compression.type", "none", config_type::string,
     "Codec of compacted archive segments, overriding compression.type there: none (follow "
     "compression.type), uncompressed, gzip, snappy, lz4 or zstd. Records are unchanged."},
    {"cleanup.policy", "delete", config_type::list,
     "delete (time/size retention) and/or compact (key compaction, a later stage)."},
    {"compression.type", "producer", config_type::string,
     "Final compression of stored batches: producer keeps the producer's codec; uncompressed, "
     "gzip, snappy, lz4, zstd re-compress when segments are written."},
    {"delete.retention.ms", "86400000", config_type::long_type,
     "How long delete tombstones stay for compacted topics."},
    {"max.compaction.lag.ms", "9223372036854775807", config_type::long_type,
     "Longest time a record stays uncompacted."},
    {"max.message.bytes", "", config_type::int_type,
     "Largest record batch a producer may send to this topic (default: the broker's "
     "message.max.bytes)."},
    {"message.timestamp.type", "CreateTime", config_type::string,
     "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches on arrival."},
    {"min.compaction.lag.ms", "0", config_type::long_type,
     "Shortest time a record stays uncompacted."},
    {"min.insync.replicas", "1", config_type::int_type,
     "Accepted for compatibility; object storage replicates every committed write."},
    {"retention.bytes", "-1", config_type::long_type,
     "Per-partition size beyond which the oldest segments (or committed ranges not yet "
     "compacted) are deleted whole (-1: no limit; broker default log.retention.bytes)."},
    {"retention.ms", "-1", config_type::long_type,
     "Age (by record timestamp) beyond which whole segments are deleted (-1: keep forever, the "
     "archive default; broker default log.retention.ms)."},
    {"segment.bytes", "134217728", config_type::int_type,
     "Size at which the compactor writes a partition segment (broker default "
     "log.segment.bytes)."},
    {"segment.ms", "600000", config_type::long_type,
     "Age at which the compactor writes a partition segment even if it is small (broker default "
     "log.roll.ms)."},
};

std::optional<int64_t> parse_i64(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::string quoted(std::string_view value) {
  // Keep error messages bounded whatever the client sent.
  std::string out = "'";
  out.append(value.substr(0, 200));
  out.append(value.size() > 200 ? "...'" : "'");
  return out;
}

std::optional<std::string> check_range(std::string_view name, std::string_view value, int64_t min,
                                       int64_t max) {
  auto v = parse_i64(value);
  if (!v || *v < min || *v > max) {
    return "Invalid value " + quoted(value) + " for configuration " + std::string(name) +
           ": must be an integer in " + std::to_string(min) + ".." + std::to_string(max);
  }
  return std::nullopt;
}

std::optional<std::string> check_one_of(std::string_view name, std::string_view value,
                                        std::initializer_list<std::string_view> allowed) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return std::nullopt;
  std::string list;
  for (auto a : allowed) {
    if (!list.empty()) list.append(", ");
    list.append(a);
  }
  return "Invalid value " + quoted(value) + " for configuration " + std::string(name) +
         ": must be one of " + list;
}

}  // namespace

const std::vector<topic_config_def>& topic_config_defs() { return k_defs; }

const topic_config_def* find_topic_config(std::string_view name) {
  for (const auto& d : k_defs) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const char* topic_config_broker_key(std::string_view name) {
  if (name == "segment.bytes") return "log.segment.bytes";
  if (name == "segment.ms") return "log.roll.ms";
  if (name == "retention.ms") return "log.retention.ms";
  if (name == "retention.bytes") return "log.retention.bytes";
  if (name == "max.message.bytes") return "message.max.bytes";
  return nullptr;
}

std::optional<std::string> topic_config_broker_value(const topic_config_def& def,
                                                     const broker_config& cfg) {
  if (std::string_view(def.name) == "max.message.bytes") {
    return std::to_string(cfg.message_max_bytes);
  }
  const char* key = topic_config_broker_key(def.name);
  if (!key) return std::nullopt;
  auto it = cfg.raw.find(key);
  if (it == cfg.raw.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

std::string topic_config_default(const topic_config_def& def, const broker_config& cfg) {
  if (auto v = topic_config_broker_value(def, cfg)) return *v;
  return def.default_value;
}

std::string effective_topic_config(const std::map<std::string, std::string>& topic_configs,
                                   std::string_view name, const broker_config& cfg) {
  auto it = topic_configs.find(std::string(name));
  if (it != topic_configs.end()) return it->second;
  const topic_config_def* def = find_topic_config(name);
  return def ? topic_config_default(*def, cfg) : std::string();
}

std::vector<std::string> split_config_list(std::string_view value) {
  std::vector<std::string> out;
  while (!value.empty()) {
    auto comma = value.find(',');
    auto item = value.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return out;
}

std::string join_config_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out.push_back(',');
    out.append(i);
  }
  return out;
}

std::optional<std::string> validate_topic_config(std::string_view name, std::string_view value) {
  constexpr int64_t i32_max = std::numeric_limits<int32_t>::max();
  constexpr int64_t i64_max = std::numeric_limits<int64_t>::max();
  if (!find_topic_config(name)) {
    return "Unknown topic config name: " + std::string(name.substr(0, 200));
  }
  if (name == "cleanup.policy") {
    auto items = split_config_list(value);
    if (items.empty()) {
      return "Invalid value " + quoted(value) +
             " for configuration cleanup.policy: must be delete, compact or both";
    }
    for (const auto& i : items) {
      if (auto e = check_one_of(name, i, {"delete", "compact"})) return e;
    }
    return std::nullopt;
  }
  if (name == "compression.type") {
    return check_one_of(name, value, {"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"});
  }
  if (name == "archive.compression.type") {
    return check_one_of(name, value, {"none", "uncompressed", "gzip", "snappy", "lz4", "zstd"});
  }
  if (name == "message.timestamp.type") {
    return check_one_of(name, value, {"CreateTime", "LogAppendTime"});
  }
  if (name == "retention.ms" || name == "retention.bytes")
    return check_range(name, value, -1, i64_max);
  if (name == "segment.bytes") return check_range(name, value, 14, i32_max);
  if (name == "segment.ms") return check_range(name, value, 1, i64_max);
  if (name == "max.message.bytes") return check_range(name, value, 0, i32_max);
  if (name == "min.insync.replicas") return check_range(name, value, 1, i32_max);
  return check_range(name, value, 0, i64_max);  // the remaining *.ms settings
}

std::optional<std::string> validate_topic_configs(
    const std::map<std::string, std::string>& configs) {
  for (const auto& [k, v] : configs) {
    if (auto e = validate_topic_config(k, v)) return e;
  }
  return std::nullopt;
}

bool is_sensitive_broker_config(std::string_view key, std::string_view value) {
  for (std::string_view marker : {"secret", "password", "session.token", "ssl.key", "sasl.jaas"}) {
    if (key.find(marker) != std::string_view::npos) return true;
  }
  if (value.find("password=") != std::string_view::npos) return true;  // libpq key=value DSN
  // postgresql://user:password@host/db and the like.
  auto scheme = value.find("://");
  if (scheme != std::string_view::npos) {
    auto rest = value.substr(scheme + 3);
    auto at = rest.find('@');
    if (at != std::string_view::npos && rest.substr(0, at).find('/') == std::string_view::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace sh::broker
