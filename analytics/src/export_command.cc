// `streamhouse export`: argument parsing around archive_reader + run_export. The archive is
// found through the broker's own properties file (metadata.url, storage.url, s3.*), read with
// the broker's config loader so keys, defaults and STREAMHOUSE_* overrides mean the same thing.
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>

#include "sh/analytics/export.h"
#include "sh/broker/config.h"

namespace sh::analytics {
namespace {

void export_usage(FILE* out) {
  std::fprintf(
      out,
      "usage: streamhouse export --config FILE --topic T --format jsonl|csv|parquet --output PATH\n"
      "         [--partition P] [--from-offset N] [--to-offset N] [--from-time T] [--to-time T]\n"
      "         [--binary utf8|base64] [--segments-only] [--compression none|snappy|zstd]\n"
      "         [--row-group-bytes N] [--set key=value]...\n"
      "\n"
      "Reads a topic straight from the archive (no broker needed) and writes one file.\n"
      "  --config FILE      the broker's properties file: metadata.url, storage.url, s3.*\n"
      "  --partition P      one partition (default: all, in order)\n"
      "  --from/to-offset   inclusive offset bounds\n"
      "  --from/to-time     inclusive timestamp bounds: epoch ms or ISO 8601\n"
      "                     (2026-01-31T12:00:00Z, 2026-01-31T12:00:00.250+01:00, 2026-01-31)\n"
      "  --output PATH      file to write ('-' = stdout for jsonl/csv)\n"
      "  --binary utf8      keys/values as text, invalid UTF-8 replaced by U+FFFD (default)\n"
      "  --binary base64    keys/values base64 encoded (exact bytes)\n"
      "  --segments-only    read only the .seg objects of storage.url (no metadata database):\n"
      "                     sees compacted data only\n"
      "  --compression C    Parquet page compression (default zstd)\n");
}

bool parse_i64(const char* s, int64_t& out) {
  const char* end = s + std::strlen(s);
  auto [p, ec] = std::from_chars(s, end, out);
  return ec == std::errc() && p == end && p != s;
}

}  // namespace

int run_export_command(int argc, char** argv) {
  std::string config_path;
  std::map<std::string, std::string> overrides;
  export_options o;
  bool segments_only = false;
  bool have_format = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      export_usage(stdout);
      return 0;
    }
    if (a == "--segments-only") {
      segments_only = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "streamhouse export: %s needs a value (see --help)\n", a.c_str());
      return 2;
    }
    const char* v = argv[++i];
    int64_t n = 0;
    auto need_int = [&](const char* what) {
      if (parse_i64(v, n)) return true;
      std::fprintf(stderr, "streamhouse export: %s expects an integer, got '%s'\n", what, v);
      return false;
    };
    auto need_time = [&](const char* what) {
      auto t = parse_time(v);
      if (t) {
        n = *t;
        return true;
      }
      std::fprintf(stderr, "streamhouse export: %s: %s\n", what, t.message().c_str());
      return false;
    };
    if (a == "--config") {
      config_path = v;
    } else if (a == "--set") {
      const std::string kv = v;
      const auto eq = kv.find('=');
      if (eq == std::string::npos) {
        std::fprintf(stderr, "streamhouse export: --set expects key=value, got '%s'\n", v);
        return 2;
      }
      overrides[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (a == "--topic") {
      o.topic = v;
    } else if (a == "--partition") {
      if (!need_int("--partition")) return 2;
      if (n < 0 || n > INT32_MAX) {
        std::fprintf(stderr, "streamhouse export: --partition out of range\n");
        return 2;
      }
      o.partition = static_cast<int32_t>(n);
    } else if (a == "--from-offset") {
      if (!need_int("--from-offset")) return 2;
      o.range.from_offset = n;
    } else if (a == "--to-offset") {
      if (!need_int("--to-offset")) return 2;
      o.range.to_offset = n;
    } else if (a == "--from-time") {
      if (!need_time("--from-time")) return 2;
      o.range.from_time = n;
    } else if (a == "--to-time") {
      if (!need_time("--to-time")) return 2;
      o.range.to_time = n;
    } else if (a == "--format") {
      auto f = parse_format(v);
      if (!f) {
        std::fprintf(stderr, "streamhouse export: --format jsonl, csv or parquet, not '%s'\n", v);
        return 2;
      }
      o.format = *f;
      have_format = true;
    } else if (a == "--output") {
      o.output = v;
    } else if (a == "--binary") {
      if (!std::strcmp(v, "utf8")) {
        o.binary = binary_encoding::utf8;
      } else if (!std::strcmp(v, "base64")) {
        o.binary = binary_encoding::base64;
      } else {
        std::fprintf(stderr, "streamhouse export: --binary utf8 or base64, not '%s'\n", v);
        return 2;
      }
    } else if (a == "--compression") {
      if (!std::strcmp(v, "none")) {
        o.compression = parquet_codec::none;
      } else if (!std::strcmp(v, "snappy")) {
        o.compression = parquet_codec::snappy;
      } else if (!std::strcmp(v, "zstd")) {
        o.compression = parquet_codec::zstd;
      } else {
        std::fprintf(stderr, "streamhouse export: --compression none, snappy or zstd\n");
        return 2;
      }
    } else if (a == "--row-group-bytes") {
      if (!need_int("--row-group-bytes")) return 2;
      if (n < 1) {
        std::fprintf(stderr, "streamhouse export: --row-group-bytes must be positive\n");
        return 2;
      }
      o.row_group_bytes = static_cast<uint64_t>(n);
    } else {
      std::fprintf(stderr, "streamhouse export: unexpected argument '%s'\n", a.c_str());
      return 2;
    }
  }
  if (config_path.empty() || o.topic.empty() || o.output.empty() || !have_format) {
    std::fprintf(stderr,
                 "streamhouse export: --config, --topic, --format and --output are required "
                 "(see --help)\n");
    return 2;
  }
  if (o.range.from_offset > o.range.to_offset || o.range.from_time > o.range.to_time) {
    std::fprintf(stderr, "streamhouse export: a lower bound is above its upper bound\n");
    return 2;
  }
  auto cfg = sh::broker::load_broker_config(config_path, overrides);
  if (!cfg) {
    std::fprintf(stderr, "streamhouse export: %s\n", cfg.message().c_str());
    return 2;
  }
  source_options src;
  src.metadata_url = cfg->metadata_url;
  src.storage_url = cfg->storage_url;
  src.s3.endpoint = cfg->s3_endpoint;
  src.s3.region = cfg->s3_region;
  src.s3.access_key = cfg->s3_access_key;
  src.s3.secret_key = cfg->s3_secret_key;
  src.s3.session_token = cfg->s3_session_token;
  src.s3.path_style = cfg->s3_path_style;
  src.segments_only = segments_only;
  auto reader = archive_reader::open(src);
  if (!reader) {
    std::fprintf(stderr, "streamhouse export: %s\n", reader.message().c_str());
    return 1;
  }
  if (segments_only) {
    std::fprintf(stderr,
                 "streamhouse export: segment-only mode: reading the .seg objects of %s only; "
                 "records not compacted into segments yet are NOT included\n",
                 src.storage_url.c_str());
  }
  if (::isatty(STDERR_FILENO) && !(o.output == "-" && ::isatty(STDOUT_FILENO))) {
    o.progress = stderr;
  }
  auto sum = run_export(**reader, o);
  if (!sum) {
    std::fprintf(stderr, "streamhouse export: %s (%s)\n", sum.message().c_str(),
                 to_string(sum.code()));
    return 1;
  }
  const double s = sum->seconds > 0 ? sum->seconds : 1e-9;
  std::fprintf(stderr,
               "streamhouse export: %llu records from %llu partition(s) of %s in %.2f s "
               "(%.0f records/s, %.1f MB/s of keys+values+headers) -> %s (%llu bytes)%s\n",
               static_cast<unsigned long long>(sum->records),
               static_cast<unsigned long long>(sum->partitions), o.topic.c_str(), sum->seconds,
               static_cast<double>(sum->records) / s,
               static_cast<double>(sum->payload_bytes) / 1e6 / s, o.output.c_str(),
               static_cast<unsigned long long>(sum->bytes_written),
               segments_only ? " [segment-only: compacted data only]" : "");
  std::fprintf(stderr,
               "streamhouse export: read %llu ranges (%llu bytes), %llu batches decoded, %llu "
               "skipped on their header, %llu segments and %llu index rows skipped unread\n",
               static_cast<unsigned long long>(sum->stats.ranges_fetched),
               static_cast<unsigned long long>(sum->stats.bytes_fetched),
               static_cast<unsigned long long>(sum->stats.batches_read),
               static_cast<unsigned long long>(sum->stats.batches_skipped),
               static_cast<unsigned long long>(sum->stats.segments_skipped),
               static_cast<unsigned long long>(sum->stats.index_entries_skipped));
  if (sum->invalid_utf8) {
    std::fprintf(stderr,
                 "streamhouse export: %llu keys/values/headers were not valid UTF-8 (invalid "
                 "bytes replaced by U+FFFD; --binary base64 keeps exact bytes)\n",
                 static_cast<unsigned long long>(sum->invalid_utf8));
  }
  return 0;
}

}  // namespace sh::analytics
