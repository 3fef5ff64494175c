#pragma once
// The mirror bridge: copies live Kafka topics into the archive with their offsets preserved.
//
// A mirror runs on the calling thread (run_mirror blocks until stop is requested or a fatal
// error). librdkafka keeps its own threads; the metadata and object stores are called
// synchronously from the mirror thread.
#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "sh/common/result.h"

namespace sh::connector {

enum class errc {
  ok = 0,
  invalid_config,
  source_error,
  storage_error,
  metadata_error,
  fenced,
};

template <class T>
using cresult = sh::result<T, errc>;

struct mirror_config {
  std::string name;                                 // mirror.name
  std::map<std::string, std::string> source_props;  // source.* without the prefix
  std::vector<std::string> topics;                  // topics
  std::string topics_regex;                         // topics.regex (ECMAScript, whole name)
  std::string topics_exclude;                       // topics.exclude (ECMAScript, whole name)
  std::string metadata_url;
  std::string storage_url;
  std::string s3_endpoint;
  std::string s3_region = "us-east-1";
  std::string s3_access_key;
  std::string s3_secret_key;
  bool s3_path_style = true;
  size_t flush_bytes = size_t{8} << 20;      // flush.bytes: one ingest object at most this big
  int64_t flush_ms = 50;                     // flush.ms: oldest pending record waits at most this
  size_t batch_max_bytes = size_t{1} << 20;  // batch.max.bytes: rebuilt batch size bound
  int compression = 0;                       // archive.compression.type as Kafka codec bits
  int64_t discovery_interval_ms = 30000;     // topic.discovery.interval.ms
  int64_t lease_timeout_ms = 15000;          // lease.timeout.ms: a dead mirror's takeover delay
  int max_members = 64;                      // mirror.max.members: member slots probed
  int put_concurrency = 4;                   // put.concurrency: object PUTs in flight
  std::vector<std::string> groups;           // groups: group ids to probe besides the listed ones
  std::string groups_regex;                  // groups.regex (ECMAScript, whole id); empty: no sync
  int64_t group_sync_interval_ms = 5000;     // group.sync.interval.ms
  std::string metrics_listener;              // metrics.listener host:port (empty: none)
  int64_t metrics_log_interval_ms = 10000;   // metrics.log.interval.ms: periodic log lines
  int64_t retention_assumed_ms = -1;  // retention.assumed.ms: when DescribeConfigs cannot tell
  std::string log_level = "info";
};

// Reads a Kafka-style properties file. Unknown keys are rejected (errc::invalid_config).
cresult<mirror_config> load_mirror_config(const std::string& path);
cresult<mirror_config> parse_mirror_config(const std::map<std::string, std::string>& props);
std::string mirror_config_help_text();

// The commit metadata string the mirror writes with synced group offsets: an archive offset
// with any other metadata was committed by a consumer of the archive.
std::string mirror_group_marker(const std::string& mirror_name);

// Runs the mirror until `stop` becomes true (then flushes what it has read and returns) or a
// fatal error (fenced, conflicting archive content, bad config).
cresult<void> run_mirror(const mirror_config& config, const std::atomic<bool>& stop);

// Compares the archive with the source for every partition the mirror has a checkpoint for
// (only `topic` when not empty), over [max(source log start, archive log start), checkpoint):
// first/last offset, record count and a digest over offsets, timestamps and their type, keys,
// values and headers. Writes one line per partition to `report`; true when all are identical.
cresult<bool> verify_mirror(const mirror_config& config, const std::string& topic, FILE* report);

// `streamhouse mirror ...` (argv[1] == "mirror"): parses arguments, installs SIGINT/SIGTERM
// handlers, runs the mirror. Returns the process exit code.
int run_mirror_command(int argc, char** argv);

}  // namespace sh::connector
