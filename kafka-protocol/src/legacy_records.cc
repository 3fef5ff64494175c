#include "sh/kafka/legacy_records.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "sh/kafka/compression.h"
#include "sh/kafka/wire.h"

namespace sh::kafka {

namespace {

constexpr size_t kLogOverhead = 12;     // offset + message_size
constexpr size_t kMinMessageV0 = 14;    // crc + magic + attributes + key len + value len
constexpr size_t kMinMessageV1 = 22;    // + timestamp
constexpr int kTimestampTypeBit = 0x8;  // magic 1 attribute

struct legacy_message {
  int8_t magic = 0;
  int8_t attributes = 0;
  int64_t timestamp = -1;
  std::optional<std::span<const uint8_t>> key;
  std::optional<std::span<const uint8_t>> value;
};

// XXH32 for inputs shorter than 16 bytes (an LZ4 frame descriptor is at most 14).
uint32_t xxh32_short(const uint8_t* p, size_t len, uint32_t seed) {
  constexpr uint32_t p1 = 2654435761u, p2 = 2246822519u, p3 = 3266489917u, p4 = 668265263u,
                     p5 = 374761393u;
  auto rotl = [](uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
  uint32_t h = seed + p5 + static_cast<uint32_t>(len);
  size_t i = 0;
  for (; i + 4 <= len; i += 4) {
    uint32_t v;
    std::memcpy(&v, p + i, 4);  // little-endian read, as XXH32 defines
    h += v * p3;
    h = rotl(h, 17) * p4;
  }
  for (; i < len; ++i) {
    h += p[i] * p5;
    h = rotl(h, 11) * p1;
  }
  h ^= h >> 15;
  h *= p2;
  h ^= h >> 13;
  h *= p3;
  h ^= h >> 16;
  return h;
}

// Magic-0 LZ4 data was written with a frame-descriptor checksum computed over the wrong bytes
// (KAFKA-3160). Rewrites the checksum byte so a standard LZ4 frame decoder accepts it.
std::vector<uint8_t> fix_lz4_header_checksum(std::span<const uint8_t> in) {
  std::vector<uint8_t> out(in.begin(), in.end());
  if (out.size() < 7) return out;
  const uint8_t flg = out[4];
  size_t desc_len = 2 + ((flg & 0x08) ? 8 : 0) + ((flg & 0x01) ? 4 : 0);
  if (out.size() < 4 + desc_len + 1) return out;
  out[4 + desc_len] = static_cast<uint8_t>((xxh32_short(out.data() + 4, desc_len, 0) >> 8) & 0xff);
  return out;
}

class converter {
 public:
  explicit converter(const legacy_conversion_options& o) : _opts(o) {}

  // Walks one message set; nested = inside a compressed wrapper.
  result<void, batch_errc> walk(std::span<const uint8_t> set, bool nested,
                                std::optional<int64_t> wrapper_log_append_ts) {
    size_t pos = 0;
    if (set.empty()) return make_error(batch_errc::bad_record, "empty message set");
    while (pos < set.size()) {
      auto where = [&] { return " at byte " + std::to_string(pos); };
      if (set.size() - pos < kLogOverhead) {
        return make_error(nested ? batch_errc::bad_record : batch_errc::truncated,
                          "partial entry" + where());
      }
      byte_reader r(set.subspan(pos, kLogOverhead));
      (void)r.read_int64();  // producer-side offsets carry no meaning here
      const int32_t size = r.read_int32();
      if (size < 0 || static_cast<size_t>(size) < kMinMessageV0) {
        return make_error(batch_errc::bad_length, "message_size " + std::to_string(size) + where());
      }
      if (static_cast<size_t>(size) > set.size() - pos - kLogOverhead) {
        return make_error(nested ? batch_errc::bad_record : batch_errc::truncated,
                          "partial message" + where());
      }
      auto msg = set.subspan(pos + kLogOverhead, static_cast<size_t>(size));
      auto parsed = parse(msg);
      if (!parsed) return make_error(parsed.code(), parsed.message() + where());
      auto res = take(*parsed, nested, wrapper_log_append_ts);
      if (!res) return res;
      pos += kLogOverhead + static_cast<size_t>(size);
    }
    return {};
  }

  std::vector<record_spec>& records() { return _records; }
  std::vector<int64_t>& timestamps() { return _timestamps; }
  std::optional<compression_type> first_codec() const { return _first_codec; }
  bool log_append_time() const { return _log_append; }

 private:
  result<legacy_message, batch_errc> parse(std::span<const uint8_t> msg) {
    byte_reader r(msg);
    const uint32_t crc = r.read_uint32();
    legacy_message m;
    m.magic = r.read_int8();
    if (m.magic != 0 && m.magic != 1) {
      return make_error(batch_errc::bad_magic, "magic " + std::to_string(m.magic));
    }
    if (m.magic == 1 && msg.size() < kMinMessageV1) {
      return make_error(batch_errc::bad_length, "short magic-1 message");
    }
    const uint32_t actual =
        static_cast<uint32_t>(::crc32(0L, msg.data() + 4, static_cast<uInt>(msg.size() - 4)));
    if (crc != actual) return make_error(batch_errc::bad_crc, "message crc mismatch");
    m.attributes = r.read_int8();
    if (m.magic == 1) m.timestamp = r.read_int64();
    m.key = r.read_nullable_bytes_view();
    m.value = r.read_nullable_bytes_view();
    if (!r.ok() || r.remaining() != 0) {
      return make_error(batch_errc::bad_record, "key/value lengths don't fill the message");
    }
    return m;
  }

  result<void, batch_errc> take(const legacy_message& m, bool nested,
                                std::optional<int64_t> wrapper_log_append_ts) {
    const int codec = m.attributes & 0x7;
    const bool log_append = m.magic == 1 && (m.attributes & kTimestampTypeBit) != 0;
    if (codec == 0) {
      int64_t ts = m.timestamp;
      if (wrapper_log_append_ts) ts = *wrapper_log_append_ts;
      if (log_append) _log_append = true;
      record_spec rec;
      if (m.key) rec.key.emplace(reinterpret_cast<const char*>(m.key->data()), m.key->size());
      if (m.value) {
        rec.value.emplace(reinterpret_cast<const char*>(m.value->data()), m.value->size());
      }
      _records.push_back(std::move(rec));
      _timestamps.push_back(ts);
      return {};
    }
    if (nested) return make_error(batch_errc::bad_record, "nested compressed message");
    if (codec > static_cast<int>(compression_type::lz4)) {
      return make_error(batch_errc::unsupported_compression,
                        "legacy codec " + std::to_string(codec));
    }
    if (!m.value) return make_error(batch_errc::bad_record, "compressed message without value");
    const auto type = static_cast<compression_type>(codec);
    if (!_first_codec) _first_codec = type;
    auto input = *m.value;
    std::vector<uint8_t> patched;
    if (type == compression_type::lz4 && m.magic == 0) {
      patched = fix_lz4_header_checksum(input);
      input = patched;
    }
    auto inner = decompress(type, input, _opts.max_decompressed - _decompressed);
    if (!inner) return inner.error();
    _decompressed += inner->size();
    std::optional<int64_t> inner_ts;
    if (log_append) {
      inner_ts = m.timestamp;
      _log_append = true;
    }
    // The records refer to the inner buffer; keep it alive until the batch is built.
    _buffers.push_back(std::move(*inner));
    return walk(_buffers.back(), true, inner_ts);
  }

  const legacy_conversion_options& _opts;
  std::vector<record_spec> _records;
  std::vector<int64_t> _timestamps;
  std::vector<std::vector<uint8_t>> _buffers;
  std::optional<compression_type> _first_codec;
  size_t _decompressed = 0;
  bool _log_append = false;
};

}  // namespace

std::optional<int8_t> records_magic(std::span<const uint8_t> records) noexcept {
  if (records.size() <= batch_magic_offset) return std::nullopt;
  return static_cast<int8_t>(records[batch_magic_offset]);
}

result<std::vector<uint8_t>, batch_errc> convert_legacy_to_v2(
    std::span<const uint8_t> message_set, const legacy_conversion_options& options) {
  converter c(options);
  auto walked = c.walk(message_set, false, std::nullopt);
  if (!walked) return walked.error();
  auto& recs = c.records();
  auto& ts = c.timestamps();
  if (recs.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return make_error(batch_errc::bad_record, "too many messages");
  }
  // Base timestamp is the first message's (Kafka's choice); deltas may be negative.
  const int64_t base_ts = ts.front();
  int64_t max_ts = ts.front();
  for (size_t i = 0; i < recs.size(); ++i) {
    recs[i].timestamp_delta = ts[i] - base_ts;
    max_ts = std::max(max_ts, ts[i]);
  }
  const compression_type codec =
      options.output_compression.value_or(c.first_codec().value_or(compression_type::none));
  batch_build_options o;
  o.base_timestamp = base_ts;
  o.max_timestamp = max_ts;
  o.attributes =
      static_cast<int16_t>(static_cast<int>(codec) | (c.log_append_time() ? kTimestampTypeBit : 0));
  return build_batch(o, recs);
}

result<std::vector<uint8_t>, batch_errc> convert_v2_to_legacy(std::span<const uint8_t> batches,
                                                              int8_t magic, int64_t from_offset,
                                                              size_t max_decompressed) {
  if (magic != 0 && magic != 1)
    return make_error(batch_errc::bad_magic, "target magic must be 0 or 1");
  auto split = split_batches(batches);
  if (!split) return make_error(split.code(), split.message());
  std::vector<uint8_t> out;
  out.reserve(batches.size() + batches.size() / 4);
  auto put_be32 = [&out](uint32_t v) {
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  auto put_be64 = [&out](uint64_t v) {
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  auto put_bytes = [&](const std::optional<std::span<const uint8_t>>& b) {
    if (!b) {
      put_be32(0xffffffffu);
      return;
    }
    put_be32(static_cast<uint32_t>(b->size()));
    out.insert(out.end(), b->begin(), b->end());
  };
  for (const auto& batch : *split) {
    if (batch.header.is_control()) continue;
    const bool log_append = batch.header.ts_type() == timestamp_type::log_append_time;
    auto walked = for_each_record(
        batch,
        [&](const record_view& rec) {
          const int64_t offset = batch.header.base_offset + rec.offset_delta;
          if (offset < from_offset) return;
          put_be64(static_cast<uint64_t>(offset));
          const size_t size_at = out.size();
          put_be32(0);  // message size, patched below
          const size_t crc_at = out.size();
          put_be32(0);  // crc, patched below
          out.push_back(static_cast<uint8_t>(magic));
          out.push_back(static_cast<uint8_t>(magic == 1 && log_append ? kTimestampTypeBit : 0));
          if (magic == 1) {
            put_be64(static_cast<uint64_t>(log_append ? batch.header.max_timestamp
                                                      : batch.header.base_timestamp +
                                                            rec.timestamp_delta));
          }
          put_bytes(rec.key);
          put_bytes(rec.value);
          const uint32_t size = static_cast<uint32_t>(out.size() - crc_at);
          const uint32_t crc = static_cast<uint32_t>(
              ::crc32(0L, out.data() + crc_at + 4, static_cast<uInt>(out.size() - crc_at - 4)));
          for (int i = 0; i < 4; ++i) {
            out[size_at + i] = static_cast<uint8_t>(size >> (8 * (3 - i)));
            out[crc_at + i] = static_cast<uint8_t>(crc >> (8 * (3 - i)));
          }
        },
        max_decompressed);
    if (!walked) return make_error(walked.code(), walked.message());
  }
  return out;
}

}  // namespace sh::kafka
