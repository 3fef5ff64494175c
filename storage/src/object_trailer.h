#pragma once
// The footer framing shared by ingest objects and segments:
//   [data][footer bytes][u32 LE footer length][u32 LE CRC32C of the footer][8-byte magic]
// Internal to storage.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "sh/storage/object_store.h"

namespace sh::storage::detail {

inline constexpr size_t trailer_size = 16;

// Appends footer + trailer to `out`.
void append_footer(bytes& out, std::span<const uint8_t> footer, std::string_view magic);

// From at least the last 16 bytes of an object: bytes from the end holding footer + trailer.
// `what` names the object kind in messages ("ingest object", "segment").
sresult<uint64_t> tail_size(std::span<const uint8_t> tail, uint64_t object_size,
                            std::string_view magic, std::string_view what);

// The footer's bytes inside `tail` (the object's final bytes), checksum verified.
sresult<std::span<const uint8_t>> footer_bytes(std::span<const uint8_t> tail, uint64_t object_size,
                                               std::string_view magic, std::string_view what);

struct fetched_tail {
  bytes tail;  // the object's last bytes: footer + trailer at least
  uint64_t object_size = 0;
};
// head + one ranged GET of a guessed tail, + one more if the footer is bigger than the guess.
// Errors carry the key.
sresult<fetched_tail> fetch_tail(object_store& store, const std::string& key,
                                 std::string_view magic, std::string_view what);

std::string hex32(uint32_t v);

}  // namespace sh::storage::detail
