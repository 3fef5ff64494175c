#pragma once
// CRC32C for storage's formats: the names storage has always used, forwarding to the one
// implementation in common (sh/common/crc32c.h; SSE4.2 when present, slicing-by-8 otherwise).
#include <cstdint>
#include <span>

#include "sh/common/crc32c.h"

namespace sh::storage {

using sh::crc32c;
using sh::crc32c_extend;

// The table path regardless of CPU support, so tests can check both against each other.
inline uint32_t crc32c_extend_portable_for_test(uint32_t crc,
                                                std::span<const uint8_t> data) noexcept {
  return sh::crc32c_portable(crc, data);
}

}  // namespace sh::storage
