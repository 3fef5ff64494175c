// The Parquet writer: one row group buffered in memory (encoded, compressed pages per column),
// written to the temporary file when it reaches row_group_bytes; the footer (FileMetaData in the
// Thrift compact protocol) at close(). See parquet/README.md for the schema and file layout.
#include "sh/parquet/record_writer.h"

#include <fcntl.h>
#include <snappy.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <vector>

#include "sh/parquet/internal/rle_hybrid.h"
#include "sh/parquet/internal/thrift_compact.h"
#include "sh/parquet/internal/utf8.h"

namespace sh::parquet {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::io_error:
      return "io_error";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::closed:
      return "closed";
  }
  return "unknown";
}

namespace {

using thrift::compact_writer;
using thrift::ctype;

// Parquet enum values (parquet.thrift).
enum class ptype : int32_t { int32 = 1, int64 = 2, byte_array = 6 };
enum repetition : int32_t { required = 0, optional = 1, repeated = 2 };
constexpr int32_t k_converted_utf8 = 0;
constexpr int32_t k_converted_list = 3;
constexpr int32_t k_converted_timestamp_millis = 9;
constexpr int32_t k_encoding_plain = 0;
constexpr int32_t k_encoding_rle = 3;
constexpr int32_t k_encoding_rle_dictionary = 8;
constexpr int32_t k_page_data = 0;
constexpr int32_t k_page_dictionary = 2;

// The largest key, value, or sum of a row's header bytes. Keeps every page (at most page_bytes
// plus one row) far below Parquet's 2 GiB i32 page sizes.
constexpr uint64_t k_max_field_bytes = 1ull << 30;
constexpr uint64_t k_max_page_bytes = 1ull << 30;

int32_t codec_id(codec c) {
  switch (c) {
    case codec::none:
      return 0;
    case codec::snappy:
      return 1;
    case codec::zstd:
      return 6;
  }
  return 0;
}

// Leaf columns in schema order.
enum col : size_t {
  c_topic,
  c_partition,
  c_offset,
  c_timestamp,
  c_timestamp_type,
  c_key,
  c_value,
  c_key_utf8,
  c_value_utf8,
  c_header_key,
  c_header_value,
  k_columns
};

struct column_spec {
  std::vector<std::string> path;
  ptype type;
  int max_def;
  int max_rep;
  bool min_max;     // keep min/max statistics
  bool dictionary;  // dictionary-encode (falls back to PLAIN when the dictionary grows too big)
};

const std::array<column_spec, k_columns>& columns() {
  static const std::array<column_spec, k_columns> specs{{
      // topic is usually one value for a whole export: a dictionary makes it nearly free.
      {{"topic"}, ptype::byte_array, 0, 0, true, true},
      {{"partition"}, ptype::int32, 0, 0, true, false},
      {{"offset"}, ptype::int64, 0, 0, true, false},
      {{"timestamp"}, ptype::int64, 0, 0, true, false},
      {{"timestamp_type"}, ptype::int32, 0, 0, true, false},
      {{"key"}, ptype::byte_array, 1, 0, false, false},
      {{"value"}, ptype::byte_array, 1, 0, false, false},
      {{"key_utf8"}, ptype::byte_array, 1, 0, false, false},
      {{"value_utf8"}, ptype::byte_array, 1, 0, false, false},
      // optional group headers (LIST) { repeated group list { required group element {
      //   required binary key (STRING); optional binary value; } } }
      {{"headers", "list", "element", "key"}, ptype::byte_array, 2, 1, false, false},
      {{"headers", "list", "element", "value"}, ptype::byte_array, 3, 1, false, false},
  }};
  return specs;
}

void put_le32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_le64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

struct statistics {
  int64_t null_count = 0;
  bool has_min_max = false;
  int64_t imin = 0, imax = 0;
  std::string smin, smax;

  void add_int(int64_t v) {
    if (!has_min_max) {
      imin = imax = v;
      has_min_max = true;
    } else {
      if (v < imin) imin = v;
      if (v > imax) imax = v;
    }
  }
  // Unsigned byte-wise order (TypeDefinedOrder for BYTE_ARRAY / STRING); string_view compares
  // like memcmp.
  void add_bytes(std::string_view v) {
    if (!has_min_max) {
      smin = smax = v;
      has_min_max = true;
    } else {
      if (v < std::string_view(smin)) smin = v;
      if (v > std::string_view(smax)) smax = v;
    }
  }
};

// What the footer needs about one written column chunk.
struct chunk_meta {
  int64_t num_values = 0;
  int64_t uncompressed = 0;  // page headers included, as the spec defines the totals
  int64_t compressed = 0;
  int64_t data_page_offset = 0;
  int64_t dictionary_page_offset = -1;  // -1: no dictionary page
  bool plain_pages = false;
  statistics stats;
};

struct row_group_meta {
  int64_t num_rows = 0;
  int64_t file_offset = 0;
  std::array<chunk_meta, k_columns> chunks;
};

struct column_state {
  // Current page: PLAIN values and levels, not yet encoded.
  std::string values;
  std::vector<uint8_t> def;
  std::vector<uint8_t> rep;
  int64_t page_values = 0;  // level entries (values + nulls + empty lists)
  // Current chunk: finished pages (header + compressed body).
  std::string chunk;
  int64_t chunk_values = 0;
  int64_t chunk_uncompressed = 0;
  statistics stats;
  bool plain_pages = false;  // the chunk has PLAIN data pages
  // Dictionary (columns with column_spec::dictionary): the chunk's entries, PLAIN-encoded, and
  // this page's indices. dict_on is cleared for the rest of the chunk when the dictionary passes
  // page_bytes (the pages written so far keep using it; later pages are PLAIN).
  bool dict_on = false;
  std::unordered_map<std::string, uint32_t> dict_index;
  std::string dict_values;
  std::vector<uint32_t> indices;
  std::string last_entry;  // the previous row's value and index: topics repeat row after row
  uint32_t last_index = 0;
  bool has_last = false;

  uint64_t page_size() const {
    return values.size() + indices.size() + def.size() / 4 + rep.size() / 4;
  }
  void reset_dictionary(bool on) {
    dict_on = on;
    dict_index.clear();
    dict_values.clear();
    has_last = false;
  }
};

}  // namespace

struct record_writer::impl {
  std::string path;
  std::string tmp_path;
  writer_options options;
  int fd = -1;
  bool closed = false;
  bool failed = false;
  uint64_t rows = 0;
  int64_t file_pos = 0;
  int64_t group_rows = 0;
  std::array<column_state, k_columns> cols;
  std::vector<row_group_meta> groups;
  ZSTD_CCtx* zstd = nullptr;
  std::string scratch;     // page body before compression
  std::string compressed;  // page body after compression
  std::string header_buf;  // page header

  ~impl() {
    if (zstd != nullptr) ZSTD_freeCCtx(zstd);
    if (fd >= 0) {
      ::close(fd);
      ::unlink(tmp_path.c_str());
    }
  }

  presult<void> fail(std::string what) {
    failed = true;
    return sh::make_error(errc::io_error, what + " " + tmp_path + ": " + std::strerror(errno));
  }

  presult<void> write_all(std::string_view data) {
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail("write");
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    file_pos += static_cast<int64_t>(data.size());
    return {};
  }

  presult<void> compress(std::string_view in, std::string& out) {
    out.clear();
    switch (options.compression) {
      case codec::none:
        out.assign(in);
        return {};
      case codec::snappy: {
        out.resize(snappy::MaxCompressedLength(in.size()));
        size_t n = 0;
        snappy::RawCompress(in.data(), in.size(), out.data(), &n);
        out.resize(n);
        return {};
      }
      case codec::zstd: {
        out.resize(ZSTD_compressBound(in.size()));
        // Level 1: exports are throughput-bound; higher levels buy little on record data.
        const size_t n = ZSTD_compressCCtx(zstd, out.data(), out.size(), in.data(), in.size(), 1);
        if (ZSTD_isError(n)) {
          failed = true;
          return sh::make_error(errc::io_error,
                                std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
        }
        out.resize(n);
        return {};
      }
    }
    return {};
  }

  // Encodes the current page of column `c` (levels + values), compresses it and appends header
  // and body to the column's chunk buffer.
  presult<void> flush_page(size_t c) {
    column_state& s = cols[c];
    if (s.page_values == 0) return {};
    const column_spec& spec = columns()[c];
    scratch.clear();
    // Data page v1: repetition levels, then definition levels, each as a 4-byte little-endian
    // length followed by the RLE/bit-packed hybrid; then the PLAIN values.
    for (int pass = 0; pass < 2; ++pass) {
      const int max_level = pass == 0 ? spec.max_rep : spec.max_def;
      if (max_level == 0) continue;
      const std::vector<uint8_t>& levels = pass == 0 ? s.rep : s.def;
      const size_t at = scratch.size();
      put_le32(scratch, 0);
      rle_hybrid_encode(levels, level_bit_width(max_level), scratch);
      const auto len = static_cast<uint32_t>(scratch.size() - at - 4);
      for (int i = 0; i < 4; ++i) scratch[at + i] = static_cast<char>((len >> (8 * i)) & 0xff);
    }
    const bool dict_page = !s.indices.empty();
    if (dict_page) {
      // RLE_DICTIONARY: one byte of bit width, then the indices in the RLE/bit-packed hybrid.
      const int width = index_bit_width(static_cast<uint32_t>(s.dict_index.size()));
      scratch.push_back(static_cast<char>(width));
      rle_hybrid_encode(std::span<const uint32_t>(s.indices), width, scratch);
    } else {
      scratch.append(s.values);
      s.plain_pages = true;
    }
    auto r = compress(scratch, compressed);
    if (!r) return r;

    header_buf.clear();
    compact_writer w(header_buf);
    w.begin_struct();  // PageHeader
    w.field_i32(1, k_page_data);
    w.field_i32(2, static_cast<int32_t>(scratch.size()));
    w.field_i32(3, static_cast<int32_t>(compressed.size()));
    w.field_struct_begin(5);  // DataPageHeader
    w.field_i32(1, static_cast<int32_t>(s.page_values));
    w.field_i32(2, dict_page ? k_encoding_rle_dictionary : k_encoding_plain);
    w.field_i32(3, k_encoding_rle);
    w.field_i32(4, k_encoding_rle);
    w.end_struct();
    w.end_struct();

    s.chunk.append(header_buf);
    s.chunk.append(compressed);
    s.chunk_uncompressed += static_cast<int64_t>(header_buf.size() + scratch.size());
    s.chunk_values += s.page_values;
    s.values.clear();
    s.indices.clear();
    s.def.clear();
    s.rep.clear();
    s.page_values = 0;
    return {};
  }

  uint64_t buffered_bytes() const {
    uint64_t n = 0;
    for (const auto& s : cols) n += s.chunk.size() + s.page_size() + s.dict_values.size();
    return n;
  }

  presult<void> flush_row_group() {
    if (group_rows == 0) return {};
    row_group_meta g;
    g.num_rows = group_rows;
    g.file_offset = file_pos;
    for (size_t c = 0; c < k_columns; ++c) {
      auto r = flush_page(c);
      if (!r) return r;
      column_state& s = cols[c];
      chunk_meta& m = g.chunks[c];
      if (!s.dict_index.empty()) {
        // The dictionary page comes first in the chunk; it is complete only now.
        r = compress(s.dict_values, compressed);
        if (!r) return r;
        header_buf.clear();
        compact_writer w(header_buf);
        w.begin_struct();  // PageHeader
        w.field_i32(1, k_page_dictionary);
        w.field_i32(2, static_cast<int32_t>(s.dict_values.size()));
        w.field_i32(3, static_cast<int32_t>(compressed.size()));
        w.field_struct_begin(7);  // DictionaryPageHeader
        w.field_i32(1, static_cast<int32_t>(s.dict_index.size()));
        w.field_i32(2, k_encoding_plain);
        w.end_struct();
        w.end_struct();
        m.dictionary_page_offset = file_pos;
        m.uncompressed += static_cast<int64_t>(header_buf.size() + s.dict_values.size());
        m.compressed += static_cast<int64_t>(header_buf.size() + compressed.size());
        r = write_all(header_buf);
        if (!r) return r;
        r = write_all(compressed);
        if (!r) return r;
      }
      m.data_page_offset = file_pos;
      m.num_values = s.chunk_values;
      m.uncompressed += s.chunk_uncompressed;
      m.compressed += static_cast<int64_t>(s.chunk.size());
      m.plain_pages = s.plain_pages;
      m.stats = std::move(s.stats);
      r = write_all(s.chunk);
      if (!r) return r;
      s.chunk.clear();
      s.chunk_values = 0;
      s.chunk_uncompressed = 0;
      s.stats = statistics{};
      s.plain_pages = false;
      s.reset_dictionary(columns()[c].dictionary);
    }
    groups.push_back(std::move(g));
    group_rows = 0;
    return {};
  }

  std::string footer() const;
};

namespace {

void write_statistics(compact_writer& w, int16_t id, const column_spec& spec,
                      const statistics& st) {
  w.field_struct_begin(id);
  w.field_i64(3, st.null_count);
  if (spec.min_max && st.has_min_max) {
    std::string mn, mx;
    if (spec.type == ptype::int32) {
      put_le32(mn, static_cast<uint32_t>(st.imin));
      put_le32(mx, static_cast<uint32_t>(st.imax));
    } else if (spec.type == ptype::int64) {
      put_le64(mn, static_cast<uint64_t>(st.imin));
      put_le64(mx, static_cast<uint64_t>(st.imax));
    } else {
      mn = st.smin;
      mx = st.smax;
    }
    w.field_binary(5, mx);
    w.field_binary(6, mn);
    w.field_bool(7, true);
    w.field_bool(8, true);
  }
  w.end_struct();
}

// SchemaElement fields: 1 type, 3 repetition_type, 4 name, 5 num_children, 6 converted_type,
// 10 logicalType.
void schema_leaf(compact_writer& w, const char* name, ptype t, repetition rep,
                 int32_t converted = -1, int logical = 0) {
  w.begin_struct();
  w.field_i32(1, static_cast<int32_t>(t));
  w.field_i32(3, rep);
  w.field_binary(4, name);
  if (converted >= 0) w.field_i32(6, converted);
  if (logical == 1) {  // STRING
    w.field_struct_begin(10);
    w.field_struct_begin(1);
    w.end_struct();
    w.end_struct();
  } else if (logical == 8) {  // TIMESTAMP(isAdjustedToUTC = true, unit = MILLIS)
    w.field_struct_begin(10);
    w.field_struct_begin(8);
    w.field_bool(1, true);
    w.field_struct_begin(2);  // TimeUnit
    w.field_struct_begin(1);  // MILLIS
    w.end_struct();
    w.end_struct();
    w.end_struct();
    w.end_struct();
  }
  w.end_struct();
}

void schema_group(compact_writer& w, const char* name, int rep, int32_t children,
                  bool list = false) {
  w.begin_struct();
  if (rep >= 0) w.field_i32(3, rep);
  w.field_binary(4, name);
  w.field_i32(5, children);
  if (list) {
    w.field_i32(6, k_converted_list);
    w.field_struct_begin(10);
    w.field_struct_begin(3);  // ListType
    w.end_struct();
    w.end_struct();
  }
  w.end_struct();
}

}  // namespace

std::string record_writer::impl::footer() const {
  std::string out;
  compact_writer w(out);
  w.begin_struct();   // FileMetaData
  w.field_i32(1, 2);  // version
  w.field_list_begin(2, ctype::structure, 15);
  schema_group(w, "schema", -1, 10);
  schema_leaf(w, "topic", ptype::byte_array, required, k_converted_utf8, 1);
  schema_leaf(w, "partition", ptype::int32, required);
  schema_leaf(w, "offset", ptype::int64, required);
  schema_leaf(w, "timestamp", ptype::int64, required, k_converted_timestamp_millis, 8);
  schema_leaf(w, "timestamp_type", ptype::int32, required);
  schema_leaf(w, "key", ptype::byte_array, optional);
  schema_leaf(w, "value", ptype::byte_array, optional);
  schema_leaf(w, "key_utf8", ptype::byte_array, optional, k_converted_utf8, 1);
  schema_leaf(w, "value_utf8", ptype::byte_array, optional, k_converted_utf8, 1);
  schema_group(w, "headers", optional, 1, true);
  schema_group(w, "list", repeated, 1);
  schema_group(w, "element", required, 2);
  schema_leaf(w, "key", ptype::byte_array, required, k_converted_utf8, 1);
  schema_leaf(w, "value", ptype::byte_array, optional);

  w.field_i64(3, static_cast<int64_t>(rows));
  w.field_list_begin(4, ctype::structure, static_cast<uint32_t>(groups.size()));
  for (const row_group_meta& g : groups) {
    w.begin_struct();  // RowGroup
    w.field_list_begin(1, ctype::structure, k_columns);
    int64_t total_uncompressed = 0, total_compressed = 0;
    for (size_t c = 0; c < k_columns; ++c) {
      const column_spec& spec = columns()[c];
      const chunk_meta& m = g.chunks[c];
      total_uncompressed += m.uncompressed;
      total_compressed += m.compressed;
      const bool dict = m.dictionary_page_offset >= 0;
      const int64_t chunk_start = dict ? m.dictionary_page_offset : m.data_page_offset;
      w.begin_struct();  // ColumnChunk
      w.field_i64(2, chunk_start);
      w.field_struct_begin(3);  // ColumnMetaData
      w.field_i32(1, static_cast<int32_t>(spec.type));
      // PLAIN for PLAIN pages and the dictionary page, RLE for levels, RLE_DICTIONARY for
      // dictionary-encoded pages.
      std::vector<int32_t> encodings{k_encoding_plain};
      if (spec.max_def > 0 || spec.max_rep > 0) encodings.push_back(k_encoding_rle);
      if (dict) encodings.push_back(k_encoding_rle_dictionary);
      w.field_list_begin(2, ctype::i32, static_cast<uint32_t>(encodings.size()));
      for (int32_t e : encodings) w.elem_i32(e);
      w.field_list_begin(3, ctype::binary, static_cast<uint32_t>(spec.path.size()));
      for (const std::string& p : spec.path) w.elem_binary(p);
      w.field_i32(4, codec_id(options.compression));
      w.field_i64(5, m.num_values);
      w.field_i64(6, m.uncompressed);
      w.field_i64(7, m.compressed);
      w.field_i64(9, m.data_page_offset);
      if (dict) w.field_i64(11, m.dictionary_page_offset);
      // Nested (headers) columns get no statistics: their null count is ambiguous across levels.
      if (spec.max_rep == 0) write_statistics(w, 12, spec, m.stats);
      w.end_struct();
      w.end_struct();
    }
    w.field_i64(2, total_uncompressed);
    w.field_i64(3, g.num_rows);
    w.field_i64(5, g.file_offset);
    w.field_i64(6, total_compressed);
    w.end_struct();
  }
  w.field_binary(6, "streamhouse");
  // column_orders: TypeDefinedOrder for every leaf, so readers trust min_value/max_value.
  w.field_list_begin(7, ctype::structure, k_columns);
  for (size_t c = 0; c < k_columns; ++c) {
    w.begin_struct();         // ColumnOrder (union)
    w.field_struct_begin(1);  // TYPE_ORDER
    w.end_struct();
    w.end_struct();
  }
  w.end_struct();
  return out;
}

record_writer::record_writer(std::unique_ptr<impl> impl) : _impl(std::move(impl)) {}

record_writer::~record_writer() = default;

presult<std::unique_ptr<record_writer>> record_writer::open(const std::string& path,
                                                            const writer_options& options) {
  if (path.empty()) return sh::make_error(errc::invalid_argument, "empty output path");
  if (options.row_group_bytes == 0)
    return sh::make_error(errc::invalid_argument, "row_group_bytes must be > 0");
  if (options.page_bytes == 0 || options.page_bytes > k_max_page_bytes)
    return sh::make_error(errc::invalid_argument, "page_bytes must be in 1..1 GiB");
  if (options.compression != codec::none && options.compression != codec::snappy &&
      options.compression != codec::zstd)
    return sh::make_error(errc::invalid_argument, "unknown compression codec");
  auto im = std::make_unique<impl>();
  for (size_t c = 0; c < k_columns; ++c) im->cols[c].reset_dictionary(columns()[c].dictionary);
  im->path = path;
  im->options = options;
  static std::atomic<uint64_t> counter{0};
  im->tmp_path = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  if (options.compression == codec::zstd) {
    im->zstd = ZSTD_createCCtx();
    if (im->zstd == nullptr) return sh::make_error(errc::io_error, "ZSTD_createCCtx failed");
  }
  im->fd = ::open(im->tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (im->fd < 0) {
    return sh::make_error(errc::io_error,
                          "cannot create " + im->tmp_path + ": " + std::strerror(errno));
  }
  auto r = im->write_all("PAR1");
  if (!r) return r.error();
  return std::unique_ptr<record_writer>(new record_writer(std::move(im)));
}

presult<void> record_writer::append(const record_row& row) {
  impl& m = *_impl;
  if (m.closed) return sh::make_error(errc::closed, "writer is closed");
  if (m.failed) return sh::make_error(errc::closed, "writer failed earlier");
  if (!valid_utf8(row.topic))
    return sh::make_error(errc::invalid_argument, "topic is not valid UTF-8");
  if (row.key && row.key->size() > k_max_field_bytes)
    return sh::make_error(errc::invalid_argument, "key over 1 GiB");
  if (row.value && row.value->size() > k_max_field_bytes)
    return sh::make_error(errc::invalid_argument, "value over 1 GiB");
  uint64_t header_bytes = 0;
  for (const header_view& h : row.headers) {
    header_bytes += h.key.size() + 4 + (h.value ? h.value->size() + 4 : 0);
  }
  if (header_bytes > k_max_field_bytes)
    return sh::make_error(errc::invalid_argument, "headers over 1 GiB");

  const bool key_utf8 = row.key && valid_utf8(*row.key);
  const bool value_utf8 = row.value && valid_utf8(*row.value);

  // Bytes each column's page gains from this row; a page that would pass page_bytes is flushed
  // first, so pages hold whole rows and stay near page_bytes.
  const auto bytes_len = [](const std::optional<std::string_view>& v) -> uint64_t {
    return v ? v->size() + 4 : 0;
  };
  std::array<uint64_t, k_columns> add{};
  add[c_topic] = row.topic.size() + 4;
  add[c_partition] = 4;
  add[c_offset] = 8;
  add[c_timestamp] = 8;
  add[c_timestamp_type] = 4;
  add[c_key] = bytes_len(row.key);
  add[c_value] = bytes_len(row.value);
  add[c_key_utf8] = key_utf8 ? add[c_key] : 0;
  add[c_value_utf8] = value_utf8 ? add[c_value] : 0;
  add[c_header_key] = header_bytes;  // both header columns together; close enough for a bound
  add[c_header_value] = 0;
  for (size_t c = 0; c < k_columns; ++c) {
    column_state& s = m.cols[c];
    if (s.page_values > 0 && s.page_size() + add[c] > m.options.page_bytes) {
      auto r = m.flush_page(c);
      if (!r) return r;
    }
  }

  const auto put_required_bytes = [&](size_t c, std::string_view v) {
    column_state& s = m.cols[c];
    put_le32(s.values, static_cast<uint32_t>(v.size()));
    s.values.append(v);
    s.stats.add_bytes(v);
    ++s.page_values;
  };
  const auto put_i32 = [&](size_t c, int32_t v) {
    column_state& s = m.cols[c];
    put_le32(s.values, static_cast<uint32_t>(v));
    s.stats.add_int(v);
    ++s.page_values;
  };
  const auto put_i64 = [&](size_t c, int64_t v) {
    column_state& s = m.cols[c];
    put_le64(s.values, static_cast<uint64_t>(v));
    s.stats.add_int(v);
    ++s.page_values;
  };
  const auto put_optional_bytes = [&](size_t c, const std::optional<std::string_view>& v) {
    column_state& s = m.cols[c];
    if (v) {
      put_le32(s.values, static_cast<uint32_t>(v->size()));
      s.values.append(*v);
      s.def.push_back(1);
    } else {
      s.def.push_back(0);
      ++s.stats.null_count;
    }
    ++s.page_values;
  };

  {
    column_state& s = m.cols[c_topic];
    if (s.dict_on) {
      if (!s.has_last || s.last_entry != row.topic) {
        const auto [it, inserted] = s.dict_index.try_emplace(
            std::string(row.topic), static_cast<uint32_t>(s.dict_index.size()));
        if (inserted) {
          put_le32(s.dict_values, static_cast<uint32_t>(row.topic.size()));
          s.dict_values.append(row.topic);
        }
        s.last_entry.assign(row.topic);
        s.last_index = it->second;
        s.has_last = true;
      }
      s.indices.push_back(s.last_index);
      s.stats.add_bytes(row.topic);
      ++s.page_values;
      if (s.dict_values.size() > m.options.page_bytes) {
        // Too many distinct values for a dictionary to pay: PLAIN for the rest of the chunk.
        auto r = m.flush_page(c_topic);
        if (!r) return r;
        s.dict_on = false;
      }
    } else {
      put_required_bytes(c_topic, row.topic);
    }
  }
  put_i32(c_partition, row.partition);
  put_i64(c_offset, row.offset);
  put_i64(c_timestamp, row.timestamp_ms);
  put_i32(c_timestamp_type, row.timestamp_type);
  put_optional_bytes(c_key, row.key);
  put_optional_bytes(c_value, row.value);
  put_optional_bytes(c_key_utf8, key_utf8 ? row.key : std::nullopt);
  put_optional_bytes(c_value_utf8, value_utf8 ? row.value : std::nullopt);

  // headers: a record with no headers is an empty list (definition level 1), never a null one.
  column_state& hk = m.cols[c_header_key];
  column_state& hv = m.cols[c_header_value];
  if (row.headers.empty()) {
    hk.rep.push_back(0);
    hk.def.push_back(1);
    hv.rep.push_back(0);
    hv.def.push_back(1);
    ++hk.page_values;
    ++hv.page_values;
  } else {
    uint8_t rep = 0;
    for (const header_view& h : row.headers) {
      hk.rep.push_back(rep);
      hk.def.push_back(2);
      // The schema declares the key a STRING: a key that is not UTF-8 gets U+FFFD for its bad
      // bytes instead of failing the export.
      if (valid_utf8(h.key)) {
        put_le32(hk.values, static_cast<uint32_t>(h.key.size()));
        hk.values.append(h.key);
      } else {
        const std::string fixed = sanitize_utf8(h.key);
        put_le32(hk.values, static_cast<uint32_t>(fixed.size()));
        hk.values.append(fixed);
      }
      hv.rep.push_back(rep);
      if (h.value) {
        hv.def.push_back(3);
        put_le32(hv.values, static_cast<uint32_t>(h.value->size()));
        hv.values.append(*h.value);
      } else {
        hv.def.push_back(2);
      }
      ++hk.page_values;
      ++hv.page_values;
      rep = 1;
    }
  }

  ++m.rows;
  ++m.group_rows;
  if (m.buffered_bytes() >= m.options.row_group_bytes) {
    auto r = m.flush_row_group();
    if (!r) return r;
  }
  return {};
}

presult<void> record_writer::close() {
  impl& m = *_impl;
  if (m.closed) return sh::make_error(errc::closed, "writer is closed");
  if (m.failed) return sh::make_error(errc::closed, "writer failed earlier");
  m.closed = true;
  auto r = m.flush_row_group();
  if (!r) return r;
  std::string tail = m.footer();
  put_le32(tail, static_cast<uint32_t>(tail.size()));
  tail.append("PAR1");
  r = m.write_all(tail);
  if (!r) return r;
  if (::fsync(m.fd) != 0) return m.fail("fsync");
  if (::close(m.fd) != 0) {
    m.fd = -1;
    ::unlink(m.tmp_path.c_str());
    return m.fail("close");
  }
  m.fd = -1;
  if (::rename(m.tmp_path.c_str(), m.path.c_str()) != 0) {
    auto e = m.fail("rename to " + m.path + " from");
    ::unlink(m.tmp_path.c_str());
    return e;
  }
  // Make the rename itself durable.
  std::string dir = m.path;
  const size_t slash = dir.rfind('/');
  dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : dir.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

uint64_t record_writer::rows_written() const { return _impl->rows; }

}  // namespace sh::parquet
