#pragma once
// Broker configuration: a Kafka-style properties file, validated against one table of known keys.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sh/common/result.h"

namespace sh::broker {

enum class config_errc { ok = 0, io_error, unknown_key, bad_value, syntax };
template <class T>
using config_result = sh::result<T, config_errc>;

// One known key: its name, default (empty = unset) and what it means (for --help).
struct config_key {
  const char* name;
  const char* default_value;
  const char* doc;
};
const std::vector<config_key>& known_config_keys();
std::string config_help_text();

struct listener {
  std::string name;  // PLAINTEXT
  std::string host;
  uint16_t port = 0;
};

struct broker_config {
  std::vector<listener> listeners;
  std::vector<listener> advertised_listeners;
  int32_t node_id = 0;
  std::string cluster_id;
  std::string data_dir;
  std::string metadata_url;
  std::string storage_url;
  int32_t num_partitions = 1;
  bool auto_create_topics = true;
  int32_t num_io_threads = 2;
  int32_t num_blocking_threads = 8;
  int64_t socket_request_max_bytes = 100 * 1024 * 1024;
  int64_t connections_max_idle_ms = 600000;
  int64_t queued_max_request_bytes = 1024 * 1024 * 1024;
  int64_t max_inflight_bytes_per_connection = 100 * 1024 * 1024;
  int64_t ingest_flush_bytes = 8 * 1024 * 1024;
  int64_t ingest_flush_ms = 250;
  int64_t message_max_bytes = 1048588;
  std::string log_level = "info";
  int64_t read_cache_bytes = 256 * 1024 * 1024;
  int64_t read_cache_disk_bytes = 0;  // local disk tier under the memory cache; 0: off
  std::string read_cache_disk_dir;    // default <data.dir>/read-cache
  // storage.url=s3://bucket/prefix: how to reach the service. Credentials fall back to
  // AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN.
  std::string s3_endpoint;
  std::string s3_region = "us-east-1";
  std::string s3_access_key;
  std::string s3_secret_key;
  std::string s3_session_token;
  bool s3_path_style = true;
  bool local_direct_io = true;  // local directory store: O_DIRECT object writes
  int64_t s3_multipart_threshold_bytes = 64 * 1024 * 1024;  // larger objects go multipart; 0: never
  int64_t s3_multipart_part_bytes = 16 * 1024 * 1024;
  // Every key as given (after defaults), so later issues can read new keys without plumbing.
  std::map<std::string, std::string> raw;
};

// Parses "key=value" lines ('#'/'!' comments, blank lines, surrounding spaces trimmed).
config_result<std::map<std::string, std::string>> parse_properties(const std::string& text);
// Validates keys and values, applies defaults. Unknown keys are an error naming all of them.
config_result<broker_config> make_broker_config(const std::map<std::string, std::string>& props);
// Reads the file, then applies overrides: environment variables STREAMHOUSE_<KEY> (upper case,
// dots as underscores, e.g. STREAMHOUSE_NODE_ID) for known keys, then `overrides` (--set k=v).
config_result<broker_config> load_broker_config(
    const std::string& path, const std::map<std::string, std::string>& overrides = {});
config_result<listener> parse_listener(const std::string& spec);

}  // namespace sh::broker
