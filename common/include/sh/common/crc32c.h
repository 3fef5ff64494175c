#pragma once
// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of Kafka record batches and
// of StreamHouse's object footers and caches. One implementation for every module: the SSE4.2
// crc32 instruction when the CPU has it (checked once), a slicing-by-8 table otherwise. Pure
// functions; thread-safe.
#include <cstdint>
#include <span>

namespace sh {

// Continues a CRC: crc32c_extend(crc32c(a), b) == crc32c(a + b). Start from 0.
uint32_t crc32c_extend(uint32_t crc, std::span<const uint8_t> data) noexcept;
inline uint32_t crc32c(std::span<const uint8_t> data) noexcept { return crc32c_extend(0, data); }

// The table path regardless of CPU support (tests check both paths against each other).
uint32_t crc32c_portable(uint32_t crc, std::span<const uint8_t> data) noexcept;
// Whether crc32c_hardware may be called on this CPU.
bool crc32c_hardware_available() noexcept;
// The SSE4.2 path; only when crc32c_hardware_available() (elsewhere: the table path).
uint32_t crc32c_hardware(uint32_t crc, std::span<const uint8_t> data) noexcept;

}  // namespace sh
