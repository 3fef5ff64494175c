#include "sh/storage/segment.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <limits>

#include "object_trailer.h"
#include "sh/storage/crc32c.h"
#include "streamhouse_storage.pb.h"

namespace sh::storage {
namespace {

constexpr std::string_view what = "segment";
constexpr std::string_view magic{segment_magic, 8};

int64_t be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return static_cast<int64_t>(v);
}
int32_t be32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = v << 8 | p[i];
  return static_cast<int32_t>(v);
}
void put_be64(uint8_t* p, int64_t v) {
  auto u = static_cast<uint64_t>(v);
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(u);
    u >>= 8;
  }
}

}  // namespace

uint64_t segment_info::position_for_offset(int64_t offset) const {
  auto it = std::upper_bound(index.begin(), index.end(), offset,
                             [](int64_t o, const segment_index_entry& e) { return o < e.offset; });
  return it == index.begin() ? 0 : std::prev(it)->position;
}

uint64_t segment_info::position_for_timestamp(int64_t ts) const {
  auto it =
      std::lower_bound(index.begin(), index.end(), ts,
                       [](const segment_index_entry& e, int64_t t) { return e.max_timestamp < t; });
  return it == index.begin() ? 0 : std::prev(it)->position;
}

uint64_t segment_info::scan_end(uint64_t position) const {
  auto it =
      std::upper_bound(index.begin(), index.end(), position,
                       [](uint64_t p, const segment_index_entry& e) { return p < e.position; });
  return it == index.end() ? data_length : it->position;
}

segment_builder::segment_builder(std::string writer_id, std::string topic, int32_t partition,
                                 uint32_t index_interval)
    : _writer_id(std::move(writer_id)),
      _topic(std::move(topic)),
      _partition(partition),
      _index_interval(std::max<uint32_t>(1, index_interval)) {}

std::optional<int64_t> segment_builder::next_offset() const {
  if (_batch_count == 0) return std::nullopt;
  return _info.last_offset + 1;
}

sresult<void> segment_builder::add(std::span<const uint8_t> batch, int64_t base_offset) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::invalid_argument,
                      "segment " + _topic + "/" + std::to_string(_partition) +
                          ": batch at offset " + std::to_string(base_offset) + ": " + why);
  };
  if (batch.size() < batch_header_size) return bad("shorter than a magic-2 batch header");
  const int32_t batch_length = be32(batch.data() + 8);
  if (batch_length < 0 || static_cast<uint64_t>(batch_length) + 12 != batch.size()) {
    return bad("batchLength " + std::to_string(batch_length) + " does not match its " +
               std::to_string(batch.size()) + " bytes");
  }
  if (batch[16] != 2) return bad("magic " + std::to_string(batch[16]) + " is not 2");
  const int32_t last_delta = be32(batch.data() + 23);
  const int64_t first_ts = be64(batch.data() + 27);
  const int64_t max_ts = be64(batch.data() + 35);
  const int32_t records = be32(batch.data() + 57);
  if (last_delta < 0 || records < 0) return bad("negative lastOffsetDelta or recordCount");
  if (base_offset < 0 || base_offset > std::numeric_limits<int64_t>::max() - last_delta) {
    return bad("offset out of range");
  }
  if (_batch_count > 0 && base_offset <= _info.last_offset) {
    return bad("not after the previous batch's last offset " + std::to_string(_info.last_offset));
  }

  const uint64_t position = _data.size();
  _data.insert(_data.end(), batch.begin(), batch.end());
  put_be64(_data.data() + position, base_offset);
  _crc = crc32c_extend(_crc, std::span(_data).subspan(position));
  if (_batch_count == 0) {
    _info.base_offset = base_offset;
    _info.min_timestamp = first_ts;
    _info.max_timestamp = max_ts;
  } else {
    _info.min_timestamp = std::min(_info.min_timestamp, first_ts);
    _info.max_timestamp = std::max(_info.max_timestamp, max_ts);
  }
  _info.last_offset = base_offset + last_delta;
  _info.record_count += records;
  if (_batch_count == 0 || position - _last_indexed_position >= _index_interval) {
    _info.index.push_back({base_offset, position, _info.max_timestamp});
    _last_indexed_position = position;
  }
  ++_batch_count;
  return {};
}

segment_builder::finished segment_builder::finish() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return finish(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

segment_builder::finished segment_builder::finish(int64_t created_at_ms) {
  finished out;
  out.info = std::move(_info);
  out.info.format_version = segment_format_version;
  out.info.created_at_ms = created_at_ms;
  out.info.writer_id = _writer_id;
  out.info.topic = _topic;
  out.info.partition = _partition;
  out.info.batch_count = _batch_count;
  out.info.data_length = _data.size();
  out.info.data_crc32c = _crc;
  out.info.index_interval = _index_interval;

  streamhouse::storage::v1::SegmentFooter pb;
  pb.set_format_version(segment_format_version);
  pb.set_created_at_ms(created_at_ms);
  pb.set_writer_id(_writer_id);
  pb.set_topic(_topic);
  pb.set_partition(_partition);
  pb.set_base_offset(out.info.base_offset);
  pb.set_last_offset(out.info.last_offset);
  pb.set_min_timestamp(out.info.min_timestamp);
  pb.set_max_timestamp(out.info.max_timestamp);
  pb.set_record_count(out.info.record_count);
  pb.set_batch_count(_batch_count);
  pb.set_data_length(_data.size());
  pb.set_data_crc32c(_crc);
  pb.set_index_interval(_index_interval);
  for (const auto& e : out.info.index) {
    auto* pe = pb.add_index();
    pe->set_offset(e.offset);
    pe->set_position(e.position);
    pe->set_max_timestamp(e.max_timestamp);
  }
  const std::string encoded = pb.SerializeAsString();
  out.data = std::move(_data);
  out.data.reserve(out.data.size() + encoded.size() + detail::trailer_size);
  detail::append_footer(out.data,
                        {reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size()}, magic);

  _data = bytes{};
  _info = segment_info{};
  _batch_count = 0;
  _last_indexed_position = 0;
  _crc = 0;
  return out;
}

sresult<uint64_t> segment_tail_size(std::span<const uint8_t> tail, uint64_t object_size) {
  return detail::tail_size(tail, object_size, magic, what);
}

sresult<segment_info> parse_segment_footer(std::span<const uint8_t> tail, uint64_t object_size) {
  auto footer = detail::footer_bytes(tail, object_size, magic, what);
  if (!footer) return footer.error();
  streamhouse::storage::v1::SegmentFooter pb;
  if (footer->size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !pb.ParseFromArray(footer->data(), static_cast<int>(footer->size()))) {
    return make_error(errc::corrupt, "segment: footer is not a valid SegmentFooter message");
  }
  if (pb.format_version() != segment_format_version) {
    if (pb.format_version() > segment_format_version) {
      return make_error(errc::unsupported, "segment: format_version " +
                                               std::to_string(pb.format_version()) +
                                               " is newer than this reader (" +
                                               std::to_string(segment_format_version) + ")");
    }
    return make_error(errc::corrupt, "segment: format_version " +
                                         std::to_string(pb.format_version()) + " is invalid");
  }
  segment_info info;
  info.format_version = pb.format_version();
  info.created_at_ms = pb.created_at_ms();
  info.writer_id = pb.writer_id();
  info.topic = pb.topic();
  info.partition = pb.partition();
  info.base_offset = pb.base_offset();
  info.last_offset = pb.last_offset();
  info.min_timestamp = pb.min_timestamp();
  info.max_timestamp = pb.max_timestamp();
  info.record_count = pb.record_count();
  info.batch_count = pb.batch_count();
  info.data_length = pb.data_length();
  info.data_crc32c = pb.data_crc32c();
  info.index_interval = pb.index_interval();
  auto bad = [&](const std::string& why) {
    return make_error(errc::corrupt, "segment " + info.topic + "/" +
                                         std::to_string(info.partition) + ": footer " + why);
  };
  const uint64_t data_end = object_size - footer->size() - detail::trailer_size;
  if (info.data_length != data_end) {
    return bad("data_length " + std::to_string(info.data_length) + " does not match the " +
               std::to_string(data_end) + " bytes before the footer");
  }
  if (info.topic.empty()) return bad("has an empty topic");
  if (info.partition < 0) return bad("has a negative partition");
  if (info.record_count < 0) return bad("has a negative record_count");
  if (info.batch_count == 0) {
    if (info.data_length != 0 || pb.index_size() != 0) return bad("lists data but no batches");
    return info;
  }
  if (info.base_offset < 0 || info.last_offset < info.base_offset) {
    return bad("has offsets " + std::to_string(info.base_offset) + ".." +
               std::to_string(info.last_offset));
  }
  if (pb.index_size() == 0) return bad("has no index");
  if (static_cast<uint64_t>(pb.index_size()) > info.batch_count) {
    return bad("has more index entries than batches");
  }
  info.index.reserve(pb.index_size());
  for (int i = 0; i < pb.index_size(); ++i) {
    const auto& pe = pb.index(i);
    segment_index_entry e{pe.offset(), pe.position(), pe.max_timestamp()};
    const std::string at = "index entry " + std::to_string(i) + " ";
    if (i == 0 && (e.position != 0 || e.offset != info.base_offset)) {
      return bad(at + "does not start at the first batch");
    }
    if (e.position >= info.data_length) return bad(at + "points past the data");
    if (e.offset < info.base_offset || e.offset > info.last_offset) {
      return bad(at + "has an offset outside the segment");
    }
    if (i > 0) {
      const auto& prev = info.index.back();
      if (e.position <= prev.position || e.offset <= prev.offset ||
          e.max_timestamp < prev.max_timestamp) {
        return bad(at + "is out of order");
      }
    }
    info.index.push_back(e);
  }
  return info;
}

sresult<segment_info> read_segment_footer(object_store& store, const std::string& key) {
  auto tail = detail::fetch_tail(store, key, magic, what);
  if (!tail) return tail.error();
  auto info = parse_segment_footer(tail->tail, tail->object_size);
  if (!info) return make_error(info.code(), key + ": " + info.message());
  return info;
}

sresult<void> verify_segment_data(std::span<const uint8_t> data, const segment_info& info) {
  const std::string name = "segment " + info.topic + "/" + std::to_string(info.partition) + " @" +
                           std::to_string(info.base_offset);
  if (data.size() != info.data_length) {
    return make_error(errc::corrupt, name + ": got " + std::to_string(data.size()) +
                                         " data bytes, footer says " +
                                         std::to_string(info.data_length));
  }
  const uint32_t actual = crc32c(data);
  if (actual != info.data_crc32c) {
    return make_error(errc::corrupt, name + ": data checksum mismatch (footer says " +
                                         detail::hex32(info.data_crc32c) + ", data has " +
                                         detail::hex32(actual) + ")");
  }
  return {};
}

std::string segment_object_key(const std::string& prefix, const std::string& topic,
                               int32_t partition, int64_t base_offset) {
  std::string key = prefix;
  while (!key.empty() && key.back() == '/') key.pop_back();
  if (!key.empty()) key += '/';
  char off[21];
  std::snprintf(off, sizeof off, "%020lld", static_cast<long long>(base_offset));
  key += "topics/";
  key += topic;
  key += '/';
  key += std::to_string(partition);
  key += '/';
  key += off;
  key += ".seg";
  return key;
}

std::optional<segment_key_parts> parse_segment_key(std::string_view key) {
  constexpr std::string_view head = "topics/";
  constexpr std::string_view tail = ".seg";
  if (!key.starts_with(head) || !key.ends_with(tail)) return std::nullopt;
  key.remove_prefix(head.size());
  key.remove_suffix(tail.size());
  const size_t s2 = key.rfind('/');
  if (s2 == std::string_view::npos || s2 == 0) return std::nullopt;
  const size_t s1 = key.rfind('/', s2 - 1);
  if (s1 == std::string_view::npos || s1 == 0) return std::nullopt;
  segment_key_parts out;
  out.topic = std::string(key.substr(0, s1));
  if (out.topic.find('/') != std::string::npos) return std::nullopt;
  std::string_view part = key.substr(s1 + 1, s2 - s1 - 1);
  std::string_view off = key.substr(s2 + 1);
  if (part.empty() || off.size() != 20) return std::nullopt;
  auto [pe, pec] = std::from_chars(part.data(), part.data() + part.size(), out.partition);
  if (pec != std::errc() || pe != part.data() + part.size() || out.partition < 0) {
    return std::nullopt;
  }
  auto [oe, oec] = std::from_chars(off.data(), off.data() + off.size(), out.base_offset);
  if (oec != std::errc() || oe != off.data() + off.size() || out.base_offset < 0) {
    return std::nullopt;
  }
  return out;
}

}  // namespace sh::storage
