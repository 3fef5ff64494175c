#pragma once
// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum Kafka record batches and
// StreamHouse footers use. Uses the SSE4.2 crc32 instruction when the CPU has it, else a
// slicing-by-8 table. Pure functions; thread-safe.
#include <cstdint>
#include <span>

namespace sh::storage {

// Continues a CRC: crc32c_extend(crc32c(a), b) == crc32c(a + b). Start from 0.
uint32_t crc32c_extend(uint32_t crc, std::span<const uint8_t> data) noexcept;
inline uint32_t crc32c(std::span<const uint8_t> data) noexcept { return crc32c_extend(0, data); }

// The table path regardless of CPU support, so tests can check both against each other.
uint32_t crc32c_extend_portable_for_test(uint32_t crc, std::span<const uint8_t> data) noexcept;

}  // namespace sh::storage
