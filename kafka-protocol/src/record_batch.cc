#include "sh/kafka/record_batch.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "sh/kafka/compression.h"
#include "sh/kafka/wire.h"

namespace sh::kafka {

const char* batch_errc_name(batch_errc e) noexcept {
  switch (e) {
    case batch_errc::ok:
      return "ok";
    case batch_errc::truncated:
      return "truncated";
    case batch_errc::bad_magic:
      return "bad_magic";
    case batch_errc::bad_crc:
      return "bad_crc";
    case batch_errc::bad_length:
      return "bad_length";
    case batch_errc::bad_record:
      return "bad_record";
    case batch_errc::unsupported_compression:
      return "unsupported_compression";
    case batch_errc::corrupt_compressed:
      return "corrupt_compressed";
    case batch_errc::decompressed_too_large:
      return "decompressed_too_large";
  }
  return "unknown";
}

namespace {

template <class T>
T load_be(const uint8_t* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(T));
  if constexpr (sizeof(T) == 2) v = static_cast<T>(__builtin_bswap16(static_cast<uint16_t>(v)));
  if constexpr (sizeof(T) == 4) v = static_cast<T>(__builtin_bswap32(static_cast<uint32_t>(v)));
  if constexpr (sizeof(T) == 8) v = static_cast<T>(__builtin_bswap64(static_cast<uint64_t>(v)));
  return v;
}

template <class T>
void store_be(uint8_t* p, T v) noexcept {
  if constexpr (sizeof(T) == 2) v = static_cast<T>(__builtin_bswap16(static_cast<uint16_t>(v)));
  if constexpr (sizeof(T) == 4) v = static_cast<T>(__builtin_bswap32(static_cast<uint32_t>(v)));
  if constexpr (sizeof(T) == 8) v = static_cast<T>(__builtin_bswap64(static_cast<uint64_t>(v)));
  std::memcpy(p, &v, sizeof(T));
}

}  // namespace

std::optional<batch_header> parse_batch_header(std::span<const uint8_t> b) noexcept {
  if (b.size() < batch_header_size) return std::nullopt;
  const uint8_t* p = b.data();
  batch_header h;
  h.base_offset = load_be<int64_t>(p + 0);
  h.batch_length = load_be<int32_t>(p + 8);
  h.partition_leader_epoch = load_be<int32_t>(p + 12);
  h.magic = static_cast<int8_t>(p[16]);
  h.crc = load_be<uint32_t>(p + 17);
  h.attributes = load_be<int16_t>(p + 21);
  h.last_offset_delta = load_be<int32_t>(p + 23);
  h.base_timestamp = load_be<int64_t>(p + 27);
  h.max_timestamp = load_be<int64_t>(p + 35);
  h.producer_id = load_be<int64_t>(p + 43);
  h.producer_epoch = load_be<int16_t>(p + 51);
  h.base_sequence = load_be<int32_t>(p + 53);
  h.records_count = load_be<int32_t>(p + 57);
  return h;
}

void write_batch_header(const batch_header& h, std::span<uint8_t> out) noexcept {
  if (out.size() < batch_header_size) return;
  uint8_t* p = out.data();
  store_be<int64_t>(p + 0, h.base_offset);
  store_be<int32_t>(p + 8, h.batch_length);
  store_be<int32_t>(p + 12, h.partition_leader_epoch);
  p[16] = static_cast<uint8_t>(h.magic);
  store_be<uint32_t>(p + 17, h.crc);
  store_be<int16_t>(p + 21, h.attributes);
  store_be<int32_t>(p + 23, h.last_offset_delta);
  store_be<int64_t>(p + 27, h.base_timestamp);
  store_be<int64_t>(p + 35, h.max_timestamp);
  store_be<int64_t>(p + 43, h.producer_id);
  store_be<int16_t>(p + 51, h.producer_epoch);
  store_be<int32_t>(p + 53, h.base_sequence);
  store_be<int32_t>(p + 57, h.records_count);
}

uint32_t compute_batch_crc(std::span<const uint8_t> batch) noexcept {
  if (batch.size() < batch_attributes_offset) return 0;
  return crc32c(0, batch.data() + batch_attributes_offset, batch.size() - batch_attributes_offset);
}

void set_base_offset(std::span<uint8_t> batch, int64_t base_offset) noexcept {
  if (batch.size() < 8) return;
  store_be<int64_t>(batch.data(), base_offset);
}

void set_partition_leader_epoch(std::span<uint8_t> batch, int32_t epoch) noexcept {
  if (batch.size() < batch_magic_offset) return;
  store_be<int32_t>(batch.data() + batch_partition_leader_epoch_offset, epoch);
}

void update_batch_crc(std::span<uint8_t> batch) noexcept {
  if (batch.size() < batch_header_size) return;
  store_be<uint32_t>(batch.data() + batch_crc_offset, compute_batch_crc(batch));
}

result<std::vector<batch_view>, batch_errc> split_batches(std::span<const uint8_t> records) {
  std::vector<batch_view> out;
  size_t pos = 0;
  while (pos < records.size()) {
    auto rest = records.subspan(pos);
    auto where = [&] { return " at byte " + std::to_string(pos); };
    // The magic byte sits at offset 16 in every message format, so check it before anything
    // that only holds for magic 2.
    if (rest.size() <= batch_magic_offset) {
      return make_error(batch_errc::truncated, "partial batch header" + where());
    }
    const int8_t magic = static_cast<int8_t>(rest[batch_magic_offset]);
    if (magic != current_magic) {
      return make_error(batch_errc::bad_magic, "magic " + std::to_string(magic) + where());
    }
    const int32_t batch_length = load_be<int32_t>(rest.data() + 8);
    if (batch_length < static_cast<int32_t>(batch_header_size - batch_log_overhead)) {
      return make_error(batch_errc::bad_length,
                        "batch_length " + std::to_string(batch_length) + where());
    }
    const size_t total = batch_log_overhead + static_cast<size_t>(batch_length);
    if (total > rest.size()) {
      return make_error(batch_errc::truncated, "batch of " + std::to_string(total) + " bytes, " +
                                                   std::to_string(rest.size()) + " left" + where());
    }
    auto bytes = rest.first(total);
    auto h = parse_batch_header(bytes);  // total >= batch_header_size here
    const uint32_t crc = compute_batch_crc(bytes);
    if (crc != h->crc) {
      return make_error(batch_errc::bad_crc, "crc mismatch" + where());
    }
    out.push_back(batch_view{*h, bytes});
    pos += total;
  }
  return out;
}

// --- records ---

result<record_reader, batch_errc> record_reader::open(const batch_view& batch,
                                                      size_t max_decompressed) {
  if (batch.header.records_count < 0) {
    return make_error(batch_errc::bad_record, "negative records_count");
  }
  const int bits = batch.header.compression_bits();
  if (bits == 0) return record_reader(batch.records_bytes(), batch.header.records_count);
  if (bits > static_cast<int>(compression_type::zstd)) {
    return make_error(batch_errc::unsupported_compression, "codec " + std::to_string(bits));
  }
  auto plain = decompress(batch.header.compression(), batch.records_bytes(), max_decompressed);
  if (!plain) return plain.error();
  record_reader r({}, batch.header.records_count);
  r._owned = std::move(*plain);
  r._data = r._owned;
  return r;
}

bool record_reader::next(record_view& out) {
  if (_err != batch_errc::ok) return false;
  if (_read == _count) {
    // Bytes after the last counted record are a framing error, as in Kafka.
    if (_pos != _data.size()) _err = batch_errc::bad_record;
    return false;
  }
  byte_reader outer(_data.subspan(_pos));
  const int32_t length = outer.read_varint();
  // The batch's length was validated already; a record overrunning it is a framing error.
  if (!outer.ok() || length < 0 || static_cast<size_t>(length) > outer.remaining()) {
    _err = batch_errc::bad_record;
    return false;
  }
  const size_t header_bytes = outer.position();
  byte_reader r(outer.rest().first(static_cast<size_t>(length)));
  out.attributes = r.read_int8();
  out.timestamp_delta = r.read_varlong();
  out.offset_delta = r.read_varint();
  auto read_blob = [&r]() -> std::optional<std::optional<std::span<const uint8_t>>> {
    const int32_t n = r.read_varint();
    if (!r.ok() || n < -1) return std::nullopt;  // invalid
    if (n == -1) return std::optional<std::span<const uint8_t>>();
    auto s = r.read_raw(static_cast<size_t>(n));
    if (!r.ok()) return std::nullopt;
    return std::optional<std::span<const uint8_t>>(s);
  };
  auto key = read_blob();
  auto value = key ? read_blob() : std::nullopt;
  if (!key || !value) {
    _err = batch_errc::bad_record;
    return false;
  }
  out.key = *key;
  out.value = *value;
  const int32_t header_count = r.read_varint();
  // Each header takes at least two bytes, which bounds the count by the bytes left.
  if (!r.ok() || header_count < 0 || static_cast<size_t>(header_count) > r.remaining()) {
    _err = batch_errc::bad_record;
    return false;
  }
  out.headers.clear();
  for (int32_t i = 0; i < header_count; ++i) {
    const int32_t klen = r.read_varint();
    if (!r.ok() || klen < 0) {
      _err = batch_errc::bad_record;
      return false;
    }
    auto k = r.read_raw(static_cast<size_t>(klen));
    auto v = read_blob();
    if (!r.ok() || !v) {
      _err = batch_errc::bad_record;
      return false;
    }
    out.headers.push_back(
        header_view{std::string_view(reinterpret_cast<const char*>(k.data()), k.size()), *v});
  }
  if (!r.ok() || r.remaining() != 0) {
    _err = batch_errc::bad_record;
    return false;
  }
  _pos += header_bytes + static_cast<size_t>(length);
  ++_read;
  return true;
}

// --- building ---

void append_record(std::vector<uint8_t>& out, const record_spec& rec, int32_t offset_delta) {
  byte_writer body;
  body.write_int8(rec.attributes);
  body.write_varlong(rec.timestamp_delta);
  body.write_varint(offset_delta);
  auto blob = [&body](const std::optional<std::string>& s) {
    if (!s) {
      body.write_varint(-1);
      return;
    }
    body.write_varint(static_cast<int32_t>(s->size()));
    body.write_raw({reinterpret_cast<const uint8_t*>(s->data()), s->size()});
  };
  blob(rec.key);
  blob(rec.value);
  body.write_varint(static_cast<int32_t>(rec.headers.size()));
  for (const auto& h : rec.headers) {
    body.write_varint(static_cast<int32_t>(h.key.size()));
    body.write_raw({reinterpret_cast<const uint8_t*>(h.key.data()), h.key.size()});
    blob(h.value);
  }
  byte_writer w(std::move(out));
  w.write_varint(static_cast<int32_t>(body.size()));
  w.write_raw({body.data(), body.size()});
  out = w.take();
}

std::vector<uint8_t> build_batch(const batch_build_options& o,
                                 const std::vector<record_spec>& records) {
  std::vector<uint8_t> out(batch_header_size, 0);
  int64_t max_delta = 0;
  int32_t max_offset_delta = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const int32_t od = r.offset_delta.value_or(static_cast<int32_t>(i));
    append_record(out, r, od);
    max_delta = std::max(max_delta, r.timestamp_delta);
    max_offset_delta = std::max(max_offset_delta, od);
  }
  int16_t attributes = o.attributes;
  const int bits = attributes & 0x7;
  if (bits >= 1 && bits <= 4) {
    auto packed =
        compress(static_cast<compression_type>(bits),
                 std::span<const uint8_t>(out).subspan(batch_header_size), o.compression_level);
    if (packed) {
      out.resize(batch_header_size);
      out.insert(out.end(), packed->begin(), packed->end());
    } else {
      attributes = static_cast<int16_t>(attributes & ~0x7);
    }
  }
  batch_header h;
  h.base_offset = o.base_offset;
  h.batch_length = static_cast<int32_t>(out.size() - batch_log_overhead);
  h.partition_leader_epoch = o.partition_leader_epoch;
  h.magic = current_magic;
  h.attributes = attributes;
  h.last_offset_delta = o.last_offset_delta.value_or(max_offset_delta);
  h.base_timestamp = o.base_timestamp;
  h.max_timestamp = o.max_timestamp.value_or(o.base_timestamp + max_delta);
  h.producer_id = o.producer_id;
  h.producer_epoch = o.producer_epoch;
  h.base_sequence = o.base_sequence;
  h.records_count = o.records_count.value_or(static_cast<int32_t>(records.size()));
  write_batch_header(h, out);
  update_batch_crc(out);
  return out;
}

}  // namespace sh::kafka
