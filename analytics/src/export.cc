#include "sh/analytics/export.h"

#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#ifdef SH_ANALYTICS_HAVE_PARQUET
#include "sh/parquet/record_writer.h"
#endif

namespace sh::analytics {
namespace {

using clock_type = std::chrono::steady_clock;

// ---- text encodings ----

// Length of the valid UTF-8 sequence starting at s[i] (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0 if it is not one.
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto c = static_cast<uint8_t>(s[i]);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<uint8_t>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (cc & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

constexpr char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void append_base64(std::string& out, std::string_view in) {
  size_t i = 0;
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = uint32_t(p[i]) << 16 | uint32_t(p[i + 1]) << 8 | p[i + 2];
    out += b64_chars[v >> 18];
    out += b64_chars[(v >> 12) & 63];
    out += b64_chars[(v >> 6) & 63];
    out += b64_chars[v & 63];
  }
  if (in.size() - i == 1) {
    const uint32_t v = uint32_t(p[i]) << 16;
    out += b64_chars[v >> 18];
    out += b64_chars[(v >> 12) & 63];
    out += "==";
  } else if (in.size() - i == 2) {
    const uint32_t v = uint32_t(p[i]) << 16 | uint32_t(p[i + 1]) << 8;
    out += b64_chars[v >> 18];
    out += b64_chars[(v >> 12) & 63];
    out += b64_chars[(v >> 6) & 63];
    out += '=';
  }
}

// Appends `in` as the inside of a JSON string: UTF-8 kept, invalid sequences replaced by U+FFFD
// (returns true if any was).
bool append_json_text(std::string& out, std::string_view in) {
  bool replaced = false;
  size_t i = 0;
  while (i < in.size()) {
    // Plain printable ASCII is copied in runs (the common case for text payloads).
    size_t j = i;
    while (j < in.size()) {
      const auto cj = static_cast<uint8_t>(in[j]);
      if (cj < 0x20 || cj >= 0x7F || cj == '"' || cj == '\\') break;
      ++j;
    }
    if (j > i) {
      out.append(in.data() + i, j - i);
      i = j;
      if (i == in.size()) break;
    }
    const auto c = static_cast<uint8_t>(in[i]);
    if (c >= 0x80) {
      const size_t n = utf8_sequence(in, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";
        replaced = true;
        ++i;
      } else {
        out.append(in.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  return replaced;
}

// ---- sinks ----

class sink {
 public:
  virtual ~sink() = default;
  virtual aresult<void> write(const record& r) = 0;
  virtual aresult<void> finish() = 0;
  virtual uint64_t bytes_written() const = 0;
  uint64_t invalid_utf8 = 0;
};

// Buffered text output to a FILE* (a file opened here, or stdout).
class text_sink : public sink {
 public:
  text_sink(FILE* f, bool owned, std::string path, binary_encoding enc)
      : _f(f), _owned(owned), _path(std::move(path)), _enc(enc) {
    _buf.reserve(flush_at + (64 << 10));
  }
  ~text_sink() override {
    if (_owned && _f) std::fclose(_f);
  }
  uint64_t bytes_written() const override { return _written; }
  aresult<void> finish() override {
    auto r = flush();
    if (!r) return r;
    if (std::fflush(_f) != 0) return io_error();
    if (_owned) {
      const int rc = std::fclose(_f);
      _f = nullptr;
      if (rc != 0) return io_error();
    }
    return {};
  }

 protected:
  static constexpr size_t flush_at = 1 << 20;
  aresult<void> maybe_flush() { return _buf.size() >= flush_at ? flush() : aresult<void>{}; }
  aresult<void> flush() {
    if (!_buf.empty() && std::fwrite(_buf.data(), 1, _buf.size(), _f) != _buf.size()) {
      return io_error();
    }
    _written += _buf.size();
    _buf.clear();
    return {};
  }
  aresult<void> io_error() {
    return make_error(errc::io_error, "writing " + _path + ": " + std::strerror(errno));
  }
  // A JSON value for bytes: "text" or "base64", per the encoding.
  void json_bytes(std::string& out, std::string_view b) {
    out += '"';
    if (_enc == binary_encoding::base64) {
      append_base64(out, b);
    } else if (append_json_text(out, b)) {
      ++invalid_utf8;
    }
    out += '"';
  }
  void json_opt_bytes(std::string& out, const std::optional<std::string_view>& b) {
    if (b) {
      json_bytes(out, *b);
    } else {
      out += "null";
    }
  }
  void json_headers(std::string& out, std::span<const record_header> hs) {
    out += '[';
    for (size_t i = 0; i < hs.size(); ++i) {
      if (i) out += ',';
      out += "{\"key\":\"";
      // Header keys are Kafka strings (UTF-8): always text.
      if (append_json_text(out, hs[i].key)) ++invalid_utf8;
      out += "\",\"value\":";
      json_opt_bytes(out, hs[i].value);
      out += '}';
    }
    out += ']';
  }

  FILE* _f;
  bool _owned;
  std::string _path;
  binary_encoding _enc;
  std::string _buf;
  uint64_t _written = 0;
};

class jsonl_sink : public text_sink {
 public:
  using text_sink::text_sink;
  aresult<void> write(const record& r) override {
    std::string& o = _buf;
    o += "{\"topic\":\"";
    append_json_text(o, r.topic);
    o += "\",\"partition\":";
    o += std::to_string(r.partition);
    o += ",\"offset\":";
    o += std::to_string(r.offset);
    o += ",\"timestamp\":";
    o += std::to_string(r.timestamp);
    o += ",\"timestamp_type\":";
    o += std::to_string(r.timestamp_type);
    o += ",\"key\":";
    json_opt_bytes(o, r.key);
    o += ",\"value\":";
    json_opt_bytes(o, r.value);
    o += ",\"headers\":";
    json_headers(o, r.headers);
    o += "}\n";
    return maybe_flush();
  }
};

// RFC 4180: comma separated, CRLF-free "\n" line ends, a header row. A null key/value is an
// empty unquoted field; any non-null one is quoted (so "" is an empty, non-null value).
class csv_sink : public text_sink {
 public:
  csv_sink(FILE* f, bool owned, std::string path, binary_encoding enc)
      : text_sink(f, owned, std::move(path), enc) {
    _buf += "topic,partition,offset,timestamp,timestamp_type,key,value,headers\n";
  }
  aresult<void> write(const record& r) override {
    std::string& o = _buf;
    quoted(o, r.topic, false);
    o += ',';
    o += std::to_string(r.partition);
    o += ',';
    o += std::to_string(r.offset);
    o += ',';
    o += std::to_string(r.timestamp);
    o += ',';
    o += std::to_string(r.timestamp_type);
    o += ',';
    if (r.key) quoted(o, *r.key, true);
    o += ',';
    if (r.value) quoted(o, *r.value, true);
    o += ',';
    _tmp.clear();
    json_headers(_tmp, r.headers);
    quoted(o, _tmp, false);
    o += '\n';
    return maybe_flush();
  }

 private:
  void quoted(std::string& o, std::string_view v, bool bytes) {
    std::string_view src = v;
    if (bytes && _enc == binary_encoding::base64) {
      _field.clear();
      append_base64(_field, v);
      src = _field;
    } else if (!valid_utf8(v)) {
      // Text: invalid sequences replaced by U+FFFD.
      _field.clear();
      for (size_t i = 0; i < v.size();) {
        const size_t n = utf8_sequence(v, i);
        if (n == 0) {
          _field += "\xEF\xBF\xBD";
          ++i;
        } else {
          _field.append(v.data() + i, n);
          i += n;
        }
      }
      if (bytes) ++invalid_utf8;
      src = _field;
    }
    o += '"';
    size_t from = 0;
    for (size_t q = src.find('"'); q != std::string_view::npos; q = src.find('"', q + 1)) {
      o.append(src.data() + from, q + 1 - from);
      o += '"';
      from = q + 1;
    }
    o.append(src.data() + from, src.size() - from);
    o += '"';
  }
  std::string _tmp;
  std::string _field;
};

#ifdef SH_ANALYTICS_HAVE_PARQUET
class parquet_sink : public sink {
 public:
  static aresult<std::unique_ptr<sink>> open(const export_options& o) {
    parquet::writer_options w;
    w.compression = o.compression == parquet_codec::none     ? parquet::codec::none
                    : o.compression == parquet_codec::snappy ? parquet::codec::snappy
                                                             : parquet::codec::zstd;
    w.row_group_bytes = o.row_group_bytes;
    auto pw = parquet::record_writer::open(o.output, w);
    if (!pw) return make_error(errc::invalid_argument, "parquet " + o.output + ": " + pw.message());
    return std::unique_ptr<sink>(new parquet_sink(std::move(*pw), o.output));
  }
  aresult<void> write(const record& r) override {
    _hs.clear();
    for (const auto& h : r.headers) _hs.push_back({h.key, h.value});
    parquet::record_row row{r.topic,          r.partition, r.offset, r.timestamp,
                            r.timestamp_type, r.key,       r.value,  _hs};
    auto a = _w->append(row);
    if (!a) return make_error(errc::io_error, "parquet " + _path + ": " + a.message());
    return {};
  }
  aresult<void> finish() override {
    auto c = _w->close();
    if (!c) return make_error(errc::io_error, "parquet " + _path + ": " + c.message());
    struct stat st {};
    if (::stat(_path.c_str(), &st) == 0) _size = static_cast<uint64_t>(st.st_size);
    return {};
  }
  uint64_t bytes_written() const override { return _size; }

 private:
  parquet_sink(std::unique_ptr<parquet::record_writer> w, std::string path)
      : _w(std::move(w)), _path(std::move(path)) {}
  std::unique_ptr<parquet::record_writer> _w;
  std::string _path;
  std::vector<parquet::header_view> _hs;
  uint64_t _size = 0;
};
#endif

aresult<std::unique_ptr<sink>> open_sink(const export_options& o) {
  if (o.output.empty()) return make_error(errc::invalid_argument, "no output path");
  if (o.format == export_format::parquet) {
#ifdef SH_ANALYTICS_HAVE_PARQUET
    if (o.output == "-") {
      return make_error(errc::invalid_argument, "parquet needs a file path, not stdout");
    }
    return parquet_sink::open(o);
#else
    return make_error(errc::invalid_argument, "this build has no Parquet writer");
#endif
  }
  FILE* f = stdout;
  const bool owned = o.output != "-";
  if (owned) {
    f = std::fopen(o.output.c_str(), "wb");
    if (!f) {
      return make_error(errc::io_error, "cannot create " + o.output + ": " + std::strerror(errno));
    }
  }
  if (o.format == export_format::csv) {
    return std::unique_ptr<sink>(new csv_sink(f, owned, o.output, o.binary));
  }
  return std::unique_ptr<sink>(new jsonl_sink(f, owned, o.output, o.binary));
}

}  // namespace

std::optional<export_format> parse_format(std::string_view name) {
  if (name == "jsonl" || name == "json") return export_format::jsonl;
  if (name == "csv") return export_format::csv;
  if (name == "parquet") return export_format::parquet;
  return std::nullopt;
}

aresult<export_summary> run_export(archive_reader& reader, const export_options& options) {
  const auto t0 = clock_type::now();
  export_summary sum;
  std::vector<int32_t> parts;
  if (options.partition) {
    parts.push_back(*options.partition);
  } else {
    auto ps = reader.list_partitions(options.topic);
    if (!ps) return ps.error();
    for (const auto& p : *ps) parts.push_back(p.partition);
  }
  auto out = open_sink(options);
  if (!out) return out.error();
  auto next_progress = t0;
  aresult<void> write_error;
  for (int32_t p : parts) {
    auto r = reader.read(options.topic, p, options.range, [&](const record& rec) {
      auto w = (*out)->write(rec);
      if (!w) {
        write_error = w;
        return false;
      }
      ++sum.records;
      sum.payload_bytes += (rec.key ? rec.key->size() : 0) + (rec.value ? rec.value->size() : 0);
      for (const auto& h : rec.headers) {
        sum.payload_bytes += h.key.size() + (h.value ? h.value->size() : 0);
      }
      // The clock is looked at on the first record, then every 1024th.
      if (options.progress && (sum.records & 1023) == 1) {
        const auto now = clock_type::now();
        if (now >= next_progress) {
          next_progress = now + std::chrono::milliseconds(500);
          const double s = std::chrono::duration<double>(now - t0).count();
          std::fprintf(options.progress,
                       "\r%s-%d offset %lld: %llu records, %.1f MiB payload, %.0f records/s   ",
                       options.topic.c_str(), p, static_cast<long long>(rec.offset),
                       static_cast<unsigned long long>(sum.records),
                       static_cast<double>(sum.payload_bytes) / (1 << 20),
                       s > 0 ? static_cast<double>(sum.records) / s : 0.0);
          std::fflush(options.progress);
        }
      }
      return true;
    });
    if (!write_error) return write_error.error();
    if (!r) return r.error();
    ++sum.partitions;
  }
  auto f = (*out)->finish();
  if (!f) return f.error();
  sum.bytes_written = (*out)->bytes_written();
  sum.invalid_utf8 = (*out)->invalid_utf8;
  sum.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  sum.stats = reader.stats();
  if (options.progress) {
    std::fprintf(options.progress, "\r%80s\r", "");
    std::fflush(options.progress);
  }
  return sum;
}

}  // namespace sh::analytics
