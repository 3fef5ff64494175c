#pragma once
// Kafka wire primitives: a bounds-checked reader with a sticky error and an appending writer.
//
// Every read validates lengths against the bytes that remain BEFORE allocating, so a hostile
// frame can make a decode fail but never read out of bounds or allocate more than the frame size.
// Once a read fails the reader stays failed: later reads return zero values and the first error
// is kept, so generated decoders check ok() once per struct instead of after every field.
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sh/common/result.h"

namespace sh::kafka {

enum class decode_errc {
  ok = 0,
  truncated,            // a read (or a string/bytes length) runs past the end of the input
  negative_length,      // a length or count below -1 (or -1 where null is not allowed)
  too_large,            // an array count larger than the bytes that remain
  bad_varint,           // a varint longer than its type allows
  invalid_value,        // null in a non-nullable field, or another impossible value
  unsupported_version,  // a version outside the message's valid range
};

const char* decode_errc_name(decode_errc e) noexcept;

using uuid = std::array<uint8_t, 16>;

// A tagged field this code doesn't know; kept verbatim so a re-encode preserves it.
struct tagged_field {
  uint32_t tag = 0;
  std::vector<uint8_t> data;
  bool operator==(const tagged_field&) const = default;
};

class byte_reader {
 public:
  byte_reader() noexcept = default;
  explicit byte_reader(std::span<const uint8_t> data) noexcept : _data(data) {}

  bool ok() const noexcept { return _err == decode_errc::ok; }
  decode_errc error() const noexcept { return _err; }
  size_t position() const noexcept { return _pos; }
  size_t remaining() const noexcept { return _data.size() - _pos; }
  std::span<const uint8_t> rest() const noexcept { return _data.subspan(_pos); }
  // Records the first error only; later errors are usually consequences of the first.
  void fail(decode_errc e) noexcept {
    if (_err == decode_errc::ok) _err = e;
  }

  int8_t read_int8() noexcept { return static_cast<int8_t>(read_be<uint8_t>()); }
  int16_t read_int16() noexcept { return static_cast<int16_t>(read_be<uint16_t>()); }
  int32_t read_int32() noexcept { return static_cast<int32_t>(read_be<uint32_t>()); }
  int64_t read_int64() noexcept { return static_cast<int64_t>(read_be<uint64_t>()); }
  uint16_t read_uint16() noexcept { return read_be<uint16_t>(); }
  uint32_t read_uint32() noexcept { return read_be<uint32_t>(); }
  double read_float64() noexcept { return std::bit_cast<double>(read_be<uint64_t>()); }
  // Kafka treats any non-zero byte as true.
  bool read_bool() noexcept { return read_be<uint8_t>() != 0; }
  uuid read_uuid() noexcept;

  uint32_t read_unsigned_varint() noexcept;
  uint64_t read_unsigned_varlong() noexcept;
  int32_t read_varint() noexcept {  // zigzag
    uint32_t v = read_unsigned_varint();
    return static_cast<int32_t>((v >> 1) ^ (~(v & 1) + 1));
  }
  int64_t read_varlong() noexcept {  // zigzag
    uint64_t v = read_unsigned_varlong();
    return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
  }

  // Raw bytes: a view into the input (valid while the input is).
  std::span<const uint8_t> read_raw(size_t n) noexcept;
  void skip(size_t n) noexcept { (void)read_raw(n); }

  // Classic encodings: int16 length for strings, int32 length for bytes, -1 = null.
  std::string read_string();
  std::optional<std::string> read_nullable_string();
  std::vector<uint8_t> read_bytes();
  std::optional<std::vector<uint8_t>> read_nullable_bytes();
  // Compact encodings: unsigned varint length + 1, 0 = null.
  std::string read_compact_string();
  std::optional<std::string> read_compact_nullable_string();
  std::vector<uint8_t> read_compact_bytes();
  std::optional<std::vector<uint8_t>> read_compact_nullable_bytes();

  // Zero-copy variants of the bytes readers (nullopt = null).
  std::optional<std::span<const uint8_t>> read_nullable_bytes_view() noexcept;
  std::optional<std::span<const uint8_t>> read_compact_nullable_bytes_view() noexcept;

  // Array counts; -1 means null. A count larger than the remaining bytes fails with too_large
  // (every element takes at least one byte in practice), so callers may reserve() the count.
  int32_t read_array_length() noexcept;
  int32_t read_compact_array_length() noexcept;

 private:
  template <class T>
  T read_be() noexcept {
    if (_err != decode_errc::ok) return 0;
    if (remaining() < sizeof(T)) {
      fail(decode_errc::truncated);
      return 0;
    }
    T v;
    std::memcpy(&v, _data.data() + _pos, sizeof(T));
    _pos += sizeof(T);
    if constexpr (sizeof(T) > 1 && std::endian::native == std::endian::little) {
      v = byteswap(v);
    }
    return v;
  }
  template <class T>
  static T byteswap(T v) noexcept {
    if constexpr (sizeof(T) == 2) return __builtin_bswap16(v);
    if constexpr (sizeof(T) == 4) return __builtin_bswap32(v);
    if constexpr (sizeof(T) == 8) return __builtin_bswap64(v);
    return v;
  }
  // Validates a decoded length (-1 = null handled by the caller) against remaining().
  bool check_length(int64_t len) noexcept;

  std::span<const uint8_t> _data;
  size_t _pos = 0;
  decode_errc _err = decode_errc::ok;
};

class byte_writer {
 public:
  byte_writer() = default;
  // Appends to an existing buffer (e.g. after a frame header already written).
  explicit byte_writer(std::vector<uint8_t> buf) : _buf(std::move(buf)) {}

  const uint8_t* data() const noexcept { return _buf.data(); }
  size_t size() const noexcept { return _buf.size(); }
  std::vector<uint8_t>& buffer() noexcept { return _buf; }
  std::vector<uint8_t> take() noexcept { return std::move(_buf); }
  void reserve(size_t n) { _buf.reserve(n); }
  // False once a value could not be represented (e.g. a classic string over 32767 bytes); the
  // output is then not a valid encoding.
  bool ok() const noexcept { return !_overflow; }

  void write_int8(int8_t v) { _buf.push_back(static_cast<uint8_t>(v)); }
  void write_int16(int16_t v) { write_be(static_cast<uint16_t>(v)); }
  void write_int32(int32_t v) { write_be(static_cast<uint32_t>(v)); }
  void write_int64(int64_t v) { write_be(static_cast<uint64_t>(v)); }
  void write_uint16(uint16_t v) { write_be(v); }
  void write_uint32(uint32_t v) { write_be(v); }
  void write_float64(double v) { write_be(std::bit_cast<uint64_t>(v)); }
  void write_bool(bool v) { _buf.push_back(v ? 1 : 0); }
  void write_uuid(const uuid& v) { write_raw(v); }

  void write_unsigned_varint(uint32_t v);
  void write_unsigned_varlong(uint64_t v);
  void write_varint(int32_t v) {
    write_unsigned_varint((static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31));
  }
  void write_varlong(int64_t v) {
    write_unsigned_varlong((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }

  void write_raw(std::span<const uint8_t> bytes) {
    _buf.insert(_buf.end(), bytes.begin(), bytes.end());
  }

  void write_string(std::string_view s);
  void write_nullable_string(const std::optional<std::string>& s);
  void write_compact_string(std::string_view s);
  void write_compact_nullable_string(const std::optional<std::string>& s);
  void write_bytes(std::span<const uint8_t> b);
  void write_nullable_bytes(const std::optional<std::vector<uint8_t>>& b);
  void write_compact_bytes(std::span<const uint8_t> b);
  void write_compact_nullable_bytes(const std::optional<std::vector<uint8_t>>& b);
  // -1 (or any negative) writes null.
  void write_array_length(int32_t n) { write_int32(n < 0 ? -1 : n); }
  void write_compact_array_length(int32_t n) {
    write_unsigned_varint(n < 0 ? 0u : static_cast<uint32_t>(n) + 1);
  }

  // Overwrites 4 bytes at pos (a length prefix reserved earlier with write_int32(0)).
  void patch_int32(size_t pos, int32_t v) noexcept;

 private:
  template <class T>
  void write_be(T v) {
    if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
    if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
    if constexpr (sizeof(T) == 8) v = __builtin_bswap64(v);
    static_assert(std::endian::native == std::endian::little, "big-endian hosts not supported");
    size_t at = _buf.size();
    _buf.resize(at + sizeof(T));
    std::memcpy(_buf.data() + at, &v, sizeof(T));
  }

  std::vector<uint8_t> _buf;
  bool _overflow = false;
};

// Tagged-field helpers for generated encoders. Unknown tags are kept in the order they were
// decoded (ascending on the wire) and merged with known tags so the output stays sorted.
void write_tagged_field(byte_writer& w, const tagged_field& t);
// Writes unknown[next...] while their tag is below `below`, advancing next.
void write_unknown_tags_below(byte_writer& w, const std::vector<tagged_field>& unknown,
                              size_t& next, uint32_t below);
void write_remaining_unknown_tags(byte_writer& w, const std::vector<tagged_field>& unknown,
                                  size_t next);

// Size in bytes of an unsigned varint.
constexpr size_t unsigned_varint_size(uint64_t v) noexcept {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Encodes a message body (no frame length, no header) at a version.
template <class M>
std::vector<uint8_t> encode_message(const M& m, int16_t version) {
  byte_writer w;
  m.encode(w, version);
  return w.take();
}

// Decodes a message body. Trailing bytes are tolerated for forward compatibility (a newer peer
// may append fields we don't know); their count goes to *trailing_bytes when given.
template <class M>
result<M, decode_errc> decode_message(std::span<const uint8_t> bytes, int16_t version,
                                      size_t* trailing_bytes = nullptr) {
  byte_reader r(bytes);
  M m;
  if (!m.decode(r, version)) {
    return make_error(r.error(), std::string(decode_errc_name(r.error())) + " at byte " +
                                     std::to_string(r.position()));
  }
  if (trailing_bytes) *trailing_bytes = r.remaining();
  return m;
}

}  // namespace sh::kafka
