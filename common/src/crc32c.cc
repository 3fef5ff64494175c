#include "sh/common/crc32c.h"

#include <array>
#include <bit>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace sh {
namespace {

constexpr uint32_t poly = 0x82F63B78u;

using tables_t = std::array<std::array<uint32_t, 256>, 8>;

// Slicing-by-8 tables, built at compile time.
constexpr tables_t make_tables() {
  tables_t t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
    t[0][i] = c;
  }
  for (size_t s = 1; s < 8; ++s) {
    for (uint32_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}

constexpr tables_t tables = make_tables();

uint32_t portable(uint32_t crc, const uint8_t* p, size_t n) noexcept {
  crc = ~crc;
  while (n >= 8) {
    uint32_t lo;
    uint32_t hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    if constexpr (std::endian::native == std::endian::big) {
      lo = __builtin_bswap32(lo);
      hi = __builtin_bswap32(hi);
    }
    lo ^= crc;
    crc = tables[7][lo & 0xff] ^ tables[6][(lo >> 8) & 0xff] ^ tables[5][(lo >> 16) & 0xff] ^
          tables[4][lo >> 24] ^ tables[3][hi & 0xff] ^ tables[2][(hi >> 8) & 0xff] ^
          tables[1][(hi >> 16) & 0xff] ^ tables[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = (crc >> 8) ^ tables[0][(crc ^ *p++) & 0xff];
  return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t hardware(uint32_t crc, const uint8_t* p,
                                                    size_t n) noexcept {
  uint64_t c = ~crc;
  // Byte steps up to 8-byte alignment, so the 8-byte loads below never straddle a line needlessly.
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    --n;
  }
  // One dependent stream already runs at several GB/s, well above what a broker core needs; three
  // interleaved streams would hide the instruction's latency at the cost of a combine step.
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}

// __builtin_cpu_init is required when the check runs in a static initializer.
const bool have_sse42 = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2") != 0;
}();
#endif

}  // namespace

uint32_t crc32c_extend(uint32_t crc, std::span<const uint8_t> data) noexcept {
#if defined(__x86_64__)
  if (have_sse42) return hardware(crc, data.data(), data.size());
#endif
  return portable(crc, data.data(), data.size());
}

uint32_t crc32c_portable(uint32_t crc, std::span<const uint8_t> data) noexcept {
  return portable(crc, data.data(), data.size());
}

bool crc32c_hardware_available() noexcept {
#if defined(__x86_64__)
  // Not the cached flag: a caller from another static initializer may run before it is set.
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2") != 0;
#else
  return false;
#endif
}

uint32_t crc32c_hardware(uint32_t crc, std::span<const uint8_t> data) noexcept {
#if defined(__x86_64__)
  if (crc32c_hardware_available()) return hardware(crc, data.data(), data.size());
#endif
  return portable(crc, data.data(), data.size());
}

}  // namespace sh
