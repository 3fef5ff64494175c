#include "sh/kafka/wire.h"

#include <limits>

namespace sh::kafka {

const char* decode_errc_name(decode_errc e) noexcept {
  switch (e) {
    case decode_errc::ok:
      return "ok";
    case decode_errc::truncated:
      return "truncated";
    case decode_errc::negative_length:
      return "negative_length";
    case decode_errc::too_large:
      return "too_large";
    case decode_errc::bad_varint:
      return "bad_varint";
    case decode_errc::invalid_value:
      return "invalid_value";
    case decode_errc::unsupported_version:
      return "unsupported_version";
  }
  return "unknown";
}

uuid byte_reader::read_uuid() noexcept {
  uuid u{};
  auto raw = read_raw(u.size());
  if (!raw.empty()) std::memcpy(u.data(), raw.data(), u.size());
  return u;
}

// Same acceptance rule as Kafka's ByteUtils: at most 5 bytes; bits beyond 32 are dropped.
uint32_t byte_reader::read_unsigned_varint() noexcept {
  if (!ok()) return 0;
  uint32_t value = 0;
  for (int shift = 0; shift <= 28; shift += 7) {
    if (_pos >= _data.size()) {
      fail(decode_errc::truncated);
      return 0;
    }
    uint8_t b = _data[_pos++];
    value |= static_cast<uint32_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return value;
  }
  fail(decode_errc::bad_varint);
  return 0;
}

uint64_t byte_reader::read_unsigned_varlong() noexcept {
  if (!ok()) return 0;
  uint64_t value = 0;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (_pos >= _data.size()) {
      fail(decode_errc::truncated);
      return 0;
    }
    uint8_t b = _data[_pos++];
    value |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return value;
  }
  fail(decode_errc::bad_varint);
  return 0;
}

std::span<const uint8_t> byte_reader::read_raw(size_t n) noexcept {
  if (!ok()) return {};
  if (remaining() < n) {
    fail(decode_errc::truncated);
    return {};
  }
  auto s = _data.subspan(_pos, n);
  _pos += n;
  return s;
}

bool byte_reader::check_length(int64_t len) noexcept {
  if (!ok()) return false;
  if (len < 0) {
    fail(decode_errc::negative_length);
    return false;
  }
  if (static_cast<uint64_t>(len) > remaining()) {
    fail(decode_errc::truncated);
    return false;
  }
  return true;
}

namespace {
std::string to_string(std::span<const uint8_t> s) {
  return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}
std::vector<uint8_t> to_vector(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }
}  // namespace

std::optional<std::string> byte_reader::read_nullable_string() {
  int16_t len = read_int16();
  if (!ok()) return std::nullopt;
  if (len == -1) return std::nullopt;
  if (!check_length(len)) return std::nullopt;
  return to_string(read_raw(static_cast<size_t>(len)));
}

std::string byte_reader::read_string() {
  int16_t len = read_int16();
  if (!ok()) return {};
  if (len == -1) {
    fail(decode_errc::invalid_value);
    return {};
  }
  if (!check_length(len)) return {};
  return to_string(read_raw(static_cast<size_t>(len)));
}

std::optional<std::string> byte_reader::read_compact_nullable_string() {
  uint32_t n = read_unsigned_varint();
  if (!ok() || n == 0) return std::nullopt;
  if (!check_length(static_cast<int64_t>(n) - 1)) return std::nullopt;
  return to_string(read_raw(n - 1));
}

std::string byte_reader::read_compact_string() {
  uint32_t n = read_unsigned_varint();
  if (!ok()) return {};
  if (n == 0) {
    fail(decode_errc::invalid_value);
    return {};
  }
  if (!check_length(static_cast<int64_t>(n) - 1)) return {};
  return to_string(read_raw(n - 1));
}

std::optional<std::span<const uint8_t>> byte_reader::read_nullable_bytes_view() noexcept {
  int32_t len = read_int32();
  if (!ok() || len == -1) return std::nullopt;
  if (!check_length(len)) return std::nullopt;
  return read_raw(static_cast<size_t>(len));
}

std::optional<std::span<const uint8_t>> byte_reader::read_compact_nullable_bytes_view() noexcept {
  uint32_t n = read_unsigned_varint();
  if (!ok() || n == 0) return std::nullopt;
  if (!check_length(static_cast<int64_t>(n) - 1)) return std::nullopt;
  return read_raw(n - 1);
}

std::optional<std::vector<uint8_t>> byte_reader::read_nullable_bytes() {
  auto v = read_nullable_bytes_view();
  if (!v) return std::nullopt;
  return to_vector(*v);
}

std::vector<uint8_t> byte_reader::read_bytes() {
  int32_t len = read_int32();
  if (!ok()) return {};
  if (len == -1) {
    fail(decode_errc::invalid_value);
    return {};
  }
  if (!check_length(len)) return {};
  return to_vector(read_raw(static_cast<size_t>(len)));
}

std::optional<std::vector<uint8_t>> byte_reader::read_compact_nullable_bytes() {
  auto v = read_compact_nullable_bytes_view();
  if (!v) return std::nullopt;
  return to_vector(*v);
}

std::vector<uint8_t> byte_reader::read_compact_bytes() {
  uint32_t n = read_unsigned_varint();
  if (!ok()) return {};
  if (n == 0) {
    fail(decode_errc::invalid_value);
    return {};
  }
  if (!check_length(static_cast<int64_t>(n) - 1)) return {};
  return to_vector(read_raw(n - 1));
}

int32_t byte_reader::read_array_length() noexcept {
  int32_t n = read_int32();
  if (!ok()) return 0;
  if (n == -1) return -1;
  if (n < 0) {
    fail(decode_errc::negative_length);
    return 0;
  }
  if (static_cast<size_t>(n) > remaining()) {
    fail(decode_errc::too_large);
    return 0;
  }
  return n;
}

int32_t byte_reader::read_compact_array_length() noexcept {
  uint32_t n = read_unsigned_varint();
  if (!ok()) return 0;
  if (n == 0) return -1;
  if (n - 1 > remaining() || n - 1 > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
    fail(decode_errc::too_large);
    return 0;
  }
  return static_cast<int32_t>(n - 1);
}

void byte_writer::write_unsigned_varint(uint32_t v) {
  uint8_t tmp[5];
  size_t n = 0;
  while (v >= 0x80) {
    tmp[n++] = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  tmp[n++] = static_cast<uint8_t>(v);
  _buf.insert(_buf.end(), tmp, tmp + n);
}

void byte_writer::write_unsigned_varlong(uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  while (v >= 0x80) {
    tmp[n++] = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  tmp[n++] = static_cast<uint8_t>(v);
  _buf.insert(_buf.end(), tmp, tmp + n);
}

namespace {
std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
}  // namespace

void byte_writer::write_string(std::string_view s) {
  if (s.size() > static_cast<size_t>(std::numeric_limits<int16_t>::max())) {
    _overflow = true;
    s = s.substr(0, std::numeric_limits<int16_t>::max());
  }
  write_int16(static_cast<int16_t>(s.size()));
  write_raw(as_bytes(s));
}

void byte_writer::write_nullable_string(const std::optional<std::string>& s) {
  if (!s) {
    write_int16(-1);
    return;
  }
  write_string(*s);
}

void byte_writer::write_compact_string(std::string_view s) {
  if (s.size() >= std::numeric_limits<uint32_t>::max()) {
    _overflow = true;
    s = s.substr(0, std::numeric_limits<uint32_t>::max() - 1);
  }
  write_unsigned_varint(static_cast<uint32_t>(s.size()) + 1);
  write_raw(as_bytes(s));
}

void byte_writer::write_compact_nullable_string(const std::optional<std::string>& s) {
  if (!s) {
    write_unsigned_varint(0);
    return;
  }
  write_compact_string(*s);
}

void byte_writer::write_bytes(std::span<const uint8_t> b) {
  if (b.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    _overflow = true;
    b = b.first(std::numeric_limits<int32_t>::max());
  }
  write_int32(static_cast<int32_t>(b.size()));
  write_raw(b);
}

void byte_writer::write_nullable_bytes(const std::optional<std::vector<uint8_t>>& b) {
  if (!b) {
    write_int32(-1);
    return;
  }
  write_bytes(*b);
}

void byte_writer::write_compact_bytes(std::span<const uint8_t> b) {
  if (b.size() >= std::numeric_limits<uint32_t>::max()) {
    _overflow = true;
    b = b.first(std::numeric_limits<uint32_t>::max() - 1);
  }
  write_unsigned_varint(static_cast<uint32_t>(b.size()) + 1);
  write_raw(b);
}

void byte_writer::write_compact_nullable_bytes(const std::optional<std::vector<uint8_t>>& b) {
  if (!b) {
    write_unsigned_varint(0);
    return;
  }
  write_compact_bytes(*b);
}

void byte_writer::patch_int32(size_t pos, int32_t v) noexcept {
  if (pos + 4 > _buf.size()) {
    _overflow = true;
    return;
  }
  uint32_t be = __builtin_bswap32(static_cast<uint32_t>(v));
  std::memcpy(_buf.data() + pos, &be, 4);
}

void write_tagged_field(byte_writer& w, const tagged_field& t) {
  w.write_unsigned_varint(t.tag);
  w.write_unsigned_varint(static_cast<uint32_t>(t.data.size()));
  w.write_raw(t.data);
}

void write_unknown_tags_below(byte_writer& w, const std::vector<tagged_field>& unknown,
                              size_t& next, uint32_t below) {
  while (next < unknown.size() && unknown[next].tag < below) write_tagged_field(w, unknown[next++]);
}

void write_remaining_unknown_tags(byte_writer& w, const std::vector<tagged_field>& unknown,
                                  size_t next) {
  for (; next < unknown.size(); ++next) write_tagged_field(w, unknown[next]);
}

}  // namespace sh::kafka
