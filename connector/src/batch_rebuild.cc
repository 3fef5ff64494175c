#include "batch_rebuild.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "sh/kafka/compression.h"

namespace sh::connector {
namespace {

size_t varint_size(int64_t v) {
  uint64_t z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  size_t n = 1;
  while (z >= 0x80) {
    z >>= 7;
    ++n;
  }
  return n;
}

uint8_t* put_varint(uint8_t* p, int64_t v) {
  uint64_t z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  while (z >= 0x80) {
    *p++ = static_cast<uint8_t>(z | 0x80);
    z >>= 7;
  }
  *p++ = static_cast<uint8_t>(z);
  return p;
}

uint8_t* put_bytes(uint8_t* p, const std::optional<std::string_view>& s) {
  if (!s) return put_varint(p, -1);
  p = put_varint(p, static_cast<int64_t>(s->size()));
  if (!s->empty()) std::memcpy(p, s->data(), s->size());
  return p + s->size();
}

size_t bytes_size(const std::optional<std::string_view>& s) {
  return s ? varint_size(static_cast<int64_t>(s->size())) + s->size() : 1;
}

// Appends one record in the v2 record encoding (attributes 0).
void append(std::vector<uint8_t>& out, const source_record& r, int64_t ts_delta, int32_t od) {
  size_t body = 1 + varint_size(ts_delta) + varint_size(od) + bytes_size(r.key) +
                bytes_size(r.value) + varint_size(static_cast<int64_t>(r.headers.size()));
  for (const auto& h : r.headers) {
    body += bytes_size(h.key) + bytes_size(h.value);
  }
  const size_t at = out.size();
  out.resize(at + varint_size(static_cast<int64_t>(body)) + body);
  uint8_t* p = out.data() + at;
  p = put_varint(p, static_cast<int64_t>(body));
  *p++ = 0;
  p = put_varint(p, ts_delta);
  p = put_varint(p, od);
  p = put_bytes(p, r.key);
  p = put_bytes(p, r.value);
  p = put_varint(p, static_cast<int64_t>(r.headers.size()));
  for (const auto& h : r.headers) {
    p = put_bytes(p, h.key);
    p = put_bytes(p, h.value);
  }
}

}  // namespace

std::vector<rebuilt_batch> rebuild_batches(std::span<const source_record> records,
                                           size_t batch_max_bytes, int compression) {
  std::vector<rebuilt_batch> out;
  if (records.empty()) return out;
  size_t i = 0;
  int64_t batch_base = records.front().offset;
  while (i < records.size()) {
    const source_record& first = records[i];
    size_t bytes = 0;
    int64_t max_ts = first.timestamp;
    size_t j = i;
    // First pass: where this batch ends.
    for (; j < records.size(); ++j) {
      const source_record& r = records[j];
      if (j > i) {
        if (r.log_append_time != first.log_append_time) break;
        if (r.log_append_time && r.timestamp != first.timestamp) break;
        if (bytes + r.size > batch_max_bytes) break;
        // Offset deltas are int32: a gap that large (impossible in practice) ends the batch.
        if (r.offset - batch_base > INT32_MAX / 2) break;
      } else if (r.offset - batch_base > INT32_MAX / 2) {
        batch_base = r.offset;  // lone record: start the batch at it (a gap between ranges)
      }
      max_ts = std::max(max_ts, r.timestamp);
      bytes += r.size;
    }
    rebuilt_batch b;
    b.bytes.reserve(kafka::batch_header_size + bytes + 64);
    b.bytes.resize(kafka::batch_header_size);
    for (size_t k = i; k < j; ++k) {
      const source_record& r = records[k];
      append(b.bytes, r, r.log_append_time ? 0 : r.timestamp - first.timestamp,
             static_cast<int32_t>(r.offset - batch_base));
    }
    int16_t attributes = static_cast<int16_t>(first.log_append_time ? 0x8 : 0);
    if (compression >= 1 && compression <= 4) {
      auto packed =
          kafka::compress(static_cast<kafka::compression_type>(compression),
                          std::span<const uint8_t>(b.bytes).subspan(kafka::batch_header_size), 0);
      if (packed) {
        b.bytes.resize(kafka::batch_header_size);
        b.bytes.insert(b.bytes.end(), packed->begin(), packed->end());
        attributes = static_cast<int16_t>(attributes | compression);
      }
    }
    const int32_t last_delta = static_cast<int32_t>(records[j - 1].offset - batch_base);
    kafka::batch_header h;
    h.base_offset = batch_base;
    h.batch_length = static_cast<int32_t>(b.bytes.size() - kafka::batch_log_overhead);
    h.partition_leader_epoch = -1;
    h.magic = 2;
    h.attributes = attributes;
    h.last_offset_delta = last_delta;
    h.base_timestamp = first.timestamp;
    h.max_timestamp = max_ts;
    h.producer_id = -1;
    h.producer_epoch = -1;
    h.base_sequence = -1;
    h.records_count = static_cast<int32_t>(j - i);
    kafka::write_batch_header(h, b.bytes);
    kafka::update_batch_crc(b.bytes);
    b.offset_count = last_delta + 1;
    b.max_timestamp = max_ts;
    b.first_timestamp = first.timestamp;
    out.push_back(std::move(b));
    batch_base = records[j - 1].offset + 1;
    i = j;
  }
  return out;
}

}  // namespace sh::connector
