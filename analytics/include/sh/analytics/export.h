#pragma once
// Export of archive records to JSON lines, CSV or Parquet (`streamhouse export`). See
// analytics/README.md for the output formats and docs/analytics.md for recipes.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "sh/analytics/reader.h"

namespace sh::analytics {

enum class export_format { jsonl, csv, parquet };
// How keys, values and header values appear in JSON lines and CSV (Parquet keeps raw bytes and
// adds key_utf8 / value_utf8 columns). utf8: the bytes as text when they are valid UTF-8,
// otherwise with each invalid sequence replaced by U+FFFD (counted in export_summary);
// base64: standard base64 (RFC 4648, padded), exact for any bytes.
enum class binary_encoding { utf8, base64 };
enum class parquet_codec { none, snappy, zstd };

struct export_options {
  std::string topic;
  std::optional<int32_t> partition;  // nullopt: every partition, in ascending order
  read_range range;
  export_format format = export_format::jsonl;
  std::string output;  // file path; "-" = stdout (jsonl and csv only)
  binary_encoding binary = binary_encoding::utf8;
  parquet_codec compression = parquet_codec::zstd;
  uint64_t row_group_bytes = 64ull << 20;
  // A progress line ("\r...") on this stream about twice a second; null: none.
  FILE* progress = nullptr;
};

struct export_summary {
  uint64_t records = 0;
  uint64_t partitions = 0;
  uint64_t bytes_written = 0;  // size of the output (file size for Parquet)
  uint64_t payload_bytes = 0;  // sum of key + value + header bytes exported
  uint64_t invalid_utf8 = 0;   // keys/values/headers replaced under binary_encoding::utf8
  double seconds = 0;
  read_stats stats;
};

// Reads options.topic through `reader` and writes the output. The output file is complete only
// on success (Parquet: written under a temporary name, renamed at the end).
aresult<export_summary> run_export(archive_reader& reader, const export_options& options);

// Parses "jsonl" | "csv" | "parquet".
std::optional<export_format> parse_format(std::string_view name);

// `streamhouse export --config FILE --topic T ...`: argv[1] is "export". Returns the exit code
// (0 ok, 1 failure, 2 usage).
int run_export_command(int argc, char** argv);

}  // namespace sh::analytics
