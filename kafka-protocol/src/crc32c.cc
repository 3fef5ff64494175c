// sh::kafka's CRC32C names (declared in record_batch.h) forward to the one implementation in
// common (sh/common/crc32c.h), which storage uses as well.
#include "sh/common/crc32c.h"

#include "sh/kafka/record_batch.h"

namespace sh::kafka {

uint32_t crc32c_portable(uint32_t crc, const uint8_t* data, size_t n) noexcept {
  return sh::crc32c_portable(crc, std::span<const uint8_t>(data, n));
}

bool crc32c_hardware_available() noexcept { return sh::crc32c_hardware_available(); }

uint32_t crc32c_hardware(uint32_t crc, const uint8_t* data, size_t n) noexcept {
  return sh::crc32c_hardware(crc, std::span<const uint8_t>(data, n));
}

uint32_t crc32c(uint32_t crc, const uint8_t* data, size_t n) noexcept {
  return sh::crc32c_extend(crc, std::span<const uint8_t>(data, n));
}

}  // namespace sh::kafka
