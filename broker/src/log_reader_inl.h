#pragma once
#include <span>

namespace sh::broker {
namespace detail {
inline int32_t load_be32(const uint8_t* p) {
  return static_cast<int32_t>((uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
                              (uint32_t(p[2]) << 8) | uint32_t(p[3]));
}
inline void store_be64(uint8_t* p, int64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v & 0xff);
    v = static_cast<int64_t>(static_cast<uint64_t>(v) >> 8);
  }
}
}  // namespace detail

inline void patch_base_offset(uint8_t* batch, int64_t base_offset) {
  detail::store_be64(batch, base_offset);
}

inline int64_t stored_base_offset(const uint8_t* batch) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | batch[i];
  return static_cast<int64_t>(v);
}

template <class Fn>
bool for_each_batch_in_range(std::span<const uint8_t> range, int64_t base_offset, Fn&& fn) {
  // Batch layout: baseOffset(8) batchLength(4) partitionLeaderEpoch(4) magic(1) crc(4)
  // attributes(2) lastOffsetDelta(4) ...; batchLength counts the bytes after itself.
  constexpr size_t last_offset_delta_at = 23;
  size_t pos = 0;
  int64_t next = base_offset;
  while (pos < range.size()) {
    if (range.size() - pos < last_offset_delta_at + 4) return false;
    const int32_t batch_length = detail::load_be32(range.data() + pos + 8);
    if (batch_length < 49 || static_cast<size_t>(batch_length) > range.size() - pos - 12) {
      return false;
    }
    const size_t total = 12 + static_cast<size_t>(batch_length);
    const int32_t last_delta = detail::load_be32(range.data() + pos + last_offset_delta_at);
    if (last_delta < 0) return false;
    const int64_t last = next + last_delta;
    if (!fn(range.subspan(pos, total), next, last)) return true;
    next = last + 1;
    pos += total;
  }
  return true;
}

}  // namespace sh::broker
