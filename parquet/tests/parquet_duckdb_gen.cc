// Writes Parquet files covering the schema's corner cases with record_writer, and expected.json
// describing every row, for tests/duckdb/check_record_writer.mjs to compare with what DuckDB
// reads. Usage: parquet_duckdb_gen OUT_DIR
//
// Files: corner_{none,snappy,zstd}.parquet (the same 3000 rows: null/empty/invalid-UTF-8 keys and
// values, headers with duplicate keys, null values, a non-UTF-8 key, none at all; negative
// partitions, offsets and timestamps for signed statistics; small row groups and pages so there
// are many of each), single_group.parquet (default options: one row group), empty.parquet (0
// rows), big_values.parquet (values larger than a page).
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "sh/parquet/internal/utf8.h"
#include "sh/parquet/record_writer.h"

namespace {

using sh::parquet::codec;
using sh::parquet::header_view;
using sh::parquet::record_row;
using sh::parquet::record_writer;
using sh::parquet::writer_options;

struct header {
  std::string key;
  std::optional<std::string> value;
};

struct row {
  std::string topic;
  int32_t partition;
  int64_t offset;
  int64_t timestamp;
  int32_t timestamp_type;
  std::optional<std::string> key, value;
  std::vector<header> headers;
};

std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

std::string quoted(std::string_view s) {
  std::string out(1, '"');
  out += s;
  out += '"';
  return out;
}

std::string opt_hex(const std::optional<std::string>& s) { return s ? quoted(hex(*s)) : "null"; }

std::vector<row> corner_rows(int n) {
  std::vector<row> rows;
  uint32_t rng = 12345;
  const auto next = [&] { return rng = rng * 1103515245u + 12345u; };
  const char* topics[] = {"alpha", "beta", "gamma-\xc3\xa9"};
  for (int i = 0; i < n; ++i) {
    row r;
    r.topic = topics[i % 3];
    r.partition = i % 5 - 1;
    r.offset = static_cast<int64_t>(i) * 3 - 100;
    r.timestamp = i == 0 ? -1 : 1700000000000LL + i * 7LL;
    r.timestamp_type = i % 2;
    switch (i % 7) {
      case 0:
        break;  // null key
      case 1:
        r.key = "";
        break;
      case 2:
        r.key = "\xff\xfe-" + std::to_string(i);
        break;
      case 3:
        r.key = "key-\xc3\xa9-" + std::to_string(i);
        break;
      case 4:
        r.key = std::string("nul\0", 4) + std::to_string(i);  // valid UTF-8 with a NUL
        break;
      default:
        r.key = "k" + std::to_string(i);
    }
    switch (i % 11) {
      case 0:
        break;  // null value
      case 1:
        r.value = "";
        break;
      case 2:
        r.value = std::string("\x00\x80\x01 bin", 7) + std::to_string(i);
        break;
      case 3: {
        std::string v;
        for (int k = 0; k < 300; ++k) v.push_back(static_cast<char>(' ' + next() % 90));
        r.value = v;
        break;
      }
      default:
        r.value = "{\"n\":" + std::to_string(i) + "}";
    }
    switch (i % 4) {
      case 0:
        break;  // no headers
      case 1:
        r.headers = {{"a", "1"}, {"a", std::nullopt}};
        break;
      case 2:
        r.headers = {{"h\xff", std::string("\x00\x01", 2)}, {"", ""}};
        break;
      default:
        r.headers = {{"x", "1"}, {"y", std::nullopt}, {"z", std::to_string(i)}};
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

bool write_file(const std::string& path, const std::vector<row>& rows, const writer_options& o) {
  auto w = record_writer::open(path, o);
  if (!w) {
    std::fprintf(stderr, "open %s: %s\n", path.c_str(), w.message().c_str());
    return false;
  }
  std::vector<header_view> hv;
  for (const row& r : rows) {
    hv.clear();
    for (const header& h : r.headers) {
      hv.push_back({h.key, h.value ? std::optional<std::string_view>(*h.value) : std::nullopt});
    }
    record_row rr{};
    rr.topic = r.topic;
    rr.partition = r.partition;
    rr.offset = r.offset;
    rr.timestamp_ms = r.timestamp;
    rr.timestamp_type = r.timestamp_type;
    if (r.key) rr.key = *r.key;
    if (r.value) rr.value = *r.value;
    rr.headers = hv;
    auto a = (*w)->append(rr);
    if (!a) {
      std::fprintf(stderr, "append: %s\n", a.message().c_str());
      return false;
    }
  }
  auto c = (*w)->close();
  if (!c) {
    std::fprintf(stderr, "close: %s\n", c.message().c_str());
    return false;
  }
  if ((*w)->rows_written() != rows.size()) {
    std::fprintf(stderr, "rows_written %llu != %zu\n",
                 static_cast<unsigned long long>((*w)->rows_written()), rows.size());
    return false;
  }
  return true;
}

// One JSON object per file: {file, min_row_groups, max_row_groups, rows: [...]}. Header keys are
// given as DuckDB must show them (invalid UTF-8 replaced by U+FFFD); key_utf8/value_utf8 as the
// hex of the bytes when valid UTF-8, else null.
std::string expected_json(const std::string& file, codec c, int min_groups, int max_groups,
                          const std::vector<row>& rows) {
  const char* cname = c == codec::none ? "UNCOMPRESSED" : c == codec::snappy ? "SNAPPY" : "ZSTD";
  std::string j = "{\"file\":\"" + file + "\",\"compression\":\"" + cname +
                  "\",\"min_row_groups\":" + std::to_string(min_groups) +
                  ",\"max_row_groups\":" + std::to_string(max_groups) + ",\"rows\":[";
  for (size_t i = 0; i < rows.size(); ++i) {
    const row& r = rows[i];
    const auto utf8 = [](const std::optional<std::string>& s) {
      return s && sh::parquet::valid_utf8(*s) ? quoted(hex(*s)) : std::string("null");
    };
    if (i) j += ",";
    j += "{\"topic\":\"" + hex(r.topic) + "\",\"partition\":" + std::to_string(r.partition) +
         ",\"offset\":\"" + std::to_string(r.offset) + "\",\"timestamp\":\"" +
         std::to_string(r.timestamp) + "\",\"timestamp_type\":" + std::to_string(r.timestamp_type) +
         ",\"key\":" + opt_hex(r.key) + ",\"value\":" + opt_hex(r.value) +
         ",\"key_utf8\":" + utf8(r.key) + ",\"value_utf8\":" + utf8(r.value) + ",\"headers\":[";
    for (size_t k = 0; k < r.headers.size(); ++k) {
      if (k) j += ",";
      j += "{\"key\":\"" + hex(sh::parquet::sanitize_utf8(r.headers[k].key)) +
           "\",\"value\":" + opt_hex(r.headers[k].value) + "}";
    }
    j += "]}";
  }
  j += "]}";
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::string out = "[";
  const auto add = [&](const std::string& name, const std::vector<row>& rows,
                       const writer_options& o, int min_groups, int max_groups) {
    if (!write_file(dir + "/" + name, rows, o)) return false;
    if (out.size() > 1) out += ",";
    out += expected_json(name, o.compression, min_groups, max_groups, rows);
    return true;
  };

  const std::vector<row> corner = corner_rows(3000);
  writer_options small;
  small.row_group_bytes = 32 << 10;
  small.page_bytes = 4 << 10;
  for (codec c : {codec::none, codec::snappy, codec::zstd}) {
    small.compression = c;
    const char* name = c == codec::none ? "none" : c == codec::snappy ? "snappy" : "zstd";
    // 3000 rows of roughly 100-400 bytes: several hundred KiB, so more than 4 groups of 32 KiB
    // whatever the codec.
    std::string file = "corner_";
    file += name;
    file += ".parquet";
    if (!add(file, corner, small, 4, 3000)) return 1;
  }
  if (!add("single_group.parquet", corner, writer_options{}, 1, 1)) return 1;
  // 1000 distinct topics: the topic dictionary passes page_bytes and falls back to PLAIN pages
  // within a row group.
  std::vector<row> many = corner;
  for (size_t i = 0; i < many.size(); ++i) many[i].topic = "topic-" + std::to_string(i % 1000);
  writer_options mo;
  mo.compression = codec::none;
  mo.page_bytes = 1 << 10;
  mo.row_group_bytes = 128 << 10;
  if (!add("many_topics.parquet", many, mo, 2, 3000)) return 1;
  if (!add("empty.parquet", {}, writer_options{}, 0, 0)) return 1;

  std::vector<row> big = corner_rows(40);
  for (size_t i = 0; i < big.size(); ++i) {
    if (big[i].value) big[i].value = std::string(20000 + i * 1000, static_cast<char>('a' + i % 26));
  }
  writer_options bo;
  bo.page_bytes = 8 << 10;  // every value is bigger than a page
  bo.row_group_bytes = 1 << 20;
  bo.compression = codec::snappy;
  if (!add("big_values.parquet", big, bo, 1, 40)) return 1;

  out += "]";
  FILE* f = std::fopen((dir + "/expected.json").c_str(), "wb");
  if (f == nullptr || std::fwrite(out.data(), 1, out.size(), f) != out.size() ||
      std::fclose(f) != 0) {
    std::perror("expected.json");
    return 1;
  }
  return 0;
}
