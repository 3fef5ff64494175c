#include "object_trailer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "sh/storage/crc32c.h"

namespace sh::storage::detail {
namespace {

void put_u32_le(bytes& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint32_t get_u32_le(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// First tail read: the trailer plus a footer of about a thousand entries, so that one ranged
// GET nearly always suffices.
constexpr uint64_t tail_guess = 64 * 1024;

}  // namespace

std::string hex32(uint32_t v) {
  char buf[11];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

void append_footer(bytes& out, std::span<const uint8_t> footer, std::string_view magic) {
  out.insert(out.end(), footer.begin(), footer.end());
  put_u32_le(out, static_cast<uint32_t>(footer.size()));
  put_u32_le(out, crc32c(footer));
  out.insert(out.end(), magic.begin(), magic.end());
}

sresult<uint64_t> tail_size(std::span<const uint8_t> tail, uint64_t object_size,
                            std::string_view magic, std::string_view what) {
  const std::string w(what);
  if (tail.size() > object_size) {
    return make_error(errc::invalid_argument, w + " footer: tail of " +
                                                  std::to_string(tail.size()) +
                                                  " bytes is longer than the object (" +
                                                  std::to_string(object_size) + " bytes)");
  }
  if (object_size < trailer_size) {
    return make_error(errc::corrupt, w + " truncated: " + std::to_string(object_size) +
                                         " bytes is shorter than the 16-byte trailer");
  }
  if (tail.size() < trailer_size) {
    return make_error(errc::invalid_argument,
                      w + " footer: need at least the last 16 bytes of the object, got " +
                          std::to_string(tail.size()));
  }
  const uint8_t* t = tail.data() + tail.size() - trailer_size;
  if (std::memcmp(t + 8, magic.data(), 8) != 0) {
    return make_error(errc::corrupt,
                      w + ": bad magic in the last 8 bytes (not a " + w + ", or truncated)");
  }
  const uint64_t need = uint64_t{get_u32_le(t)} + trailer_size;
  if (need > object_size) {
    return make_error(errc::corrupt, w + ": footer length " + std::to_string(need - trailer_size) +
                                         " exceeds the object size " + std::to_string(object_size));
  }
  return need;
}

sresult<std::span<const uint8_t>> footer_bytes(std::span<const uint8_t> tail, uint64_t object_size,
                                               std::string_view magic, std::string_view what) {
  auto need = tail_size(tail, object_size, magic, what);
  if (!need) return need.error();
  if (*need > tail.size()) {
    return make_error(errc::invalid_argument,
                      std::string(what) + " footer: the last " + std::to_string(*need) +
                          " bytes of the object are needed, got " + std::to_string(tail.size()));
  }
  const uint8_t* t = tail.data() + tail.size() - trailer_size;
  const uint32_t len = get_u32_le(t);
  const uint32_t stored = get_u32_le(t + 4);
  std::span<const uint8_t> footer(t - len, len);
  const uint32_t actual = crc32c(footer);
  if (actual != stored) {
    return make_error(errc::corrupt, std::string(what) + ": footer checksum mismatch (stored " +
                                         hex32(stored) + ", computed " + hex32(actual) + ")");
  }
  return footer;
}

sresult<fetched_tail> fetch_tail(object_store& store, const std::string& key,
                                 std::string_view magic, std::string_view what) {
  auto with_key = [&](error_info<errc> e) {
    e.message = key + ": " + e.message;
    return e;
  };
  auto info = store.head(key);
  if (!info) return info.error();
  fetched_tail out;
  out.object_size = info->size;
  const uint64_t size = info->size;
  if (size < trailer_size) {
    return with_key(make_error(errc::corrupt, std::string(what) +
                                                  " truncated: " + std::to_string(size) +
                                                  " bytes is shorter than the 16-byte trailer"));
  }
  const uint64_t want = std::min(size, tail_guess);
  auto tail = store.get_range(key, size - want, want);
  if (!tail) return tail.error();
  if (tail->size() != want) {
    return with_key(make_error(errc::corrupt, "object changed size while reading its footer"));
  }
  auto need = tail_size(*tail, size, magic, what);
  if (!need) return with_key(need.error());
  if (*need > want) {
    auto more = store.get_range(key, size - *need, *need - want);
    if (!more) return more.error();
    if (more->size() != *need - want) {
      return with_key(make_error(errc::corrupt, "object changed size while reading its footer"));
    }
    more->insert(more->end(), tail->begin(), tail->end());
    tail = std::move(more);
  }
  out.tail = std::move(*tail);
  return out;
}

}  // namespace sh::storage::detail
