#include "sh/storage/ingest_object.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>

#include "object_trailer.h"
#include "sh/storage/crc32c.h"
#include "streamhouse_storage.pb.h"

namespace sh::storage {
namespace {

std::string range_name(const ingest_range& r) {
  return r.topic + "/" + std::to_string(r.partition) + " at bytes [" + std::to_string(r.offset) +
         ", +" + std::to_string(r.length) + ")";
}

constexpr std::string_view what = "ingest object";
constexpr std::string_view magic{ingest_magic, 8};

using detail::hex32;

}  // namespace

ingest_object_builder::ingest_object_builder(std::string writer_id)
    : _writer_id(std::move(writer_id)) {}

ingest_object_builder::group& ingest_object_builder::group_for(const std::string& topic,
                                                               int32_t partition,
                                                               const ingest_batch_meta& meta) {
  auto [it, inserted] = _groups.try_emplace({topic, partition});
  group& g = it->second;
  if (inserted) {
    g.min_timestamp = meta.first_timestamp;
    g.max_timestamp = meta.max_timestamp;
  } else {
    g.min_timestamp = std::min(g.min_timestamp, meta.first_timestamp);
    g.max_timestamp = std::max(g.max_timestamp, meta.max_timestamp);
  }
  g.offset_count += meta.offset_count;
  return g;
}

uint32_t ingest_object_builder::add(const std::string& topic, int32_t partition,
                                    std::span<const uint8_t> batch, const ingest_batch_meta& meta) {
  group& g = group_for(topic, partition, meta);
  g.pieces.push_back({nullptr, g.owned.size(), batch.size()});
  g.owned.insert(g.owned.end(), batch.begin(), batch.end());
  g.length += batch.size();
  _size += batch.size();
  return static_cast<uint32_t>(g.pieces.size() - 1);
}

uint32_t ingest_object_builder::add_view(const std::string& topic, int32_t partition,
                                         std::span<const uint8_t> batch,
                                         const ingest_batch_meta& meta) {
  group& g = group_for(topic, partition, meta);
  g.pieces.push_back({batch.data(), 0, batch.size()});
  g.length += batch.size();
  _size += batch.size();
  return static_cast<uint32_t>(g.pieces.size() - 1);
}

namespace {
int64_t now_ms() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
}
}  // namespace

ingest_object_builder::finished ingest_object_builder::finish() { return finish(now_ms()); }

ingest_object_builder::finished ingest_object_builder::finish(int64_t created_at_ms) {
  bytes data;
  finished out = build(
      created_at_ms, [&](size_t bound) { data.reserve(bound); },
      [&](std::span<const uint8_t> s) { data.insert(data.end(), s.begin(), s.end()); });
  out.data = std::move(data);
  return out;
}

ingest_object_builder::finished ingest_object_builder::finish_into(aligned_buffer& buf) {
  return finish_into(buf, now_ms());
}

ingest_object_builder::finished ingest_object_builder::finish_into(aligned_buffer& buf,
                                                                   int64_t created_at_ms) {
  size_t pos = 0;
  finished out = build(
      created_at_ms, [&](size_t bound) { buf.resize_uninitialized(bound); },
      [&](std::span<const uint8_t> s) {
        if (pos + s.size() > buf.size()) {
          // Past the bound (cannot happen with the footer bound in build()): grow, keeping bytes.
          aligned_buffer bigger;
          bigger.resize_uninitialized(pos + s.size());
          if (pos > 0) std::memcpy(bigger.data(), buf.data(), pos);
          buf = std::move(bigger);
        }
        if (!s.empty()) std::memcpy(buf.data() + pos, s.data(), s.size());
        pos += s.size();
      });
  buf.resize_uninitialized(pos);  // within the reserved bound: keeps the bytes
  return out;
}

template <class Reserve, class Put>
ingest_object_builder::finished ingest_object_builder::build(int64_t created_at_ms,
                                                             Reserve&& reserve, Put&& put) {
  finished out;
  out.ranges.reserve(_groups.size());
  out.batches.reserve(_groups.size());

  // Upper bound of the footer's encoded size: per range the topic plus at most 11 bytes for
  // each of 8 varint fields and the tags and length prefixes; the header fields likewise.
  size_t footer_bound = 64 + _writer_id.size();
  for (const auto& [id, g] : _groups) footer_bound += 128 + id.first.size();
  reserve(_size + footer_bound + ingest_trailer_size);

  streamhouse::storage::v1::IngestFooter footer;
  footer.set_format_version(ingest_format_version);
  footer.set_created_at_ms(created_at_ms);
  footer.set_writer_id(_writer_id);

  uint64_t pos = 0;
  for (auto& [id, g] : _groups) {
    ingest_range r;
    r.topic = id.first;
    r.partition = id.second;
    r.offset = pos;
    r.length = g.length;
    r.batch_count = static_cast<uint32_t>(g.pieces.size());
    r.offset_count = g.offset_count;
    r.min_timestamp = g.min_timestamp;
    r.max_timestamp = g.max_timestamp;

    std::vector<batch_location> locs;
    locs.reserve(g.pieces.size());
    uint32_t crc = 0;
    for (const piece& p : g.pieces) {
      const std::span<const uint8_t> src(p.view ? p.view : g.owned.data() + p.owned_offset, p.size);
      // The CRC first, then the copy, batch by batch: the second pass finds it in cache.
      crc = crc32c_extend(crc, src);
      put(src);
      locs.push_back({pos, p.size});
      pos += p.size;
    }
    r.crc32c = crc;
    out.batches.push_back(std::move(locs));

    auto* pr = footer.add_ranges();
    pr->set_topic(r.topic);
    pr->set_partition(r.partition);
    pr->set_offset(r.offset);
    pr->set_length(r.length);
    pr->set_batch_count(r.batch_count);
    pr->set_offset_count(r.offset_count);
    pr->set_min_timestamp(r.min_timestamp);
    pr->set_max_timestamp(r.max_timestamp);
    pr->set_crc32c(r.crc32c);
    out.ranges.push_back(std::move(r));
  }

  const std::string encoded = footer.SerializeAsString();
  bytes tail;
  tail.reserve(encoded.size() + ingest_trailer_size);
  detail::append_footer(tail, {reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size()},
                        magic);
  put(std::span<const uint8_t>(tail));

  _groups.clear();
  _size = 0;
  return out;
}

sresult<uint64_t> ingest_tail_size(std::span<const uint8_t> tail, uint64_t object_size) {
  return detail::tail_size(tail, object_size, magic, what);
}

sresult<ingest_footer> parse_ingest_footer(std::span<const uint8_t> tail, uint64_t object_size) {
  auto footer_span = detail::footer_bytes(tail, object_size, magic, what);
  if (!footer_span) return footer_span.error();
  const uint8_t* fp = footer_span->data();
  const size_t footer_len = footer_span->size();
  streamhouse::storage::v1::IngestFooter pb;
  if (footer_len > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !pb.ParseFromArray(fp, static_cast<int>(footer_len))) {
    return make_error(errc::corrupt, "ingest object: footer is not a valid IngestFooter message");
  }
  if (pb.format_version() != ingest_format_version) {
    if (pb.format_version() > ingest_format_version) {
      return make_error(errc::unsupported, "ingest object: format_version " +
                                               std::to_string(pb.format_version()) +
                                               " is newer than this reader (" +
                                               std::to_string(ingest_format_version) + ")");
    }
    return make_error(errc::corrupt, "ingest object: format_version " +
                                         std::to_string(pb.format_version()) + " is invalid");
  }

  ingest_footer out;
  out.format_version = pb.format_version();
  out.created_at_ms = pb.created_at_ms();
  out.writer_id = pb.writer_id();
  out.ranges.reserve(pb.ranges_size());
  const uint64_t data_end = object_size - footer_len - detail::trailer_size;
  uint64_t prev_end = 0;
  for (int i = 0; i < pb.ranges_size(); ++i) {
    const auto& p = pb.ranges(i);
    ingest_range r;
    r.topic = p.topic();
    r.partition = p.partition();
    r.offset = p.offset();
    r.length = p.length();
    r.batch_count = p.batch_count();
    r.offset_count = p.offset_count();
    r.min_timestamp = p.min_timestamp();
    r.max_timestamp = p.max_timestamp();
    r.crc32c = p.crc32c();
    auto bad = [&](const std::string& why) {
      return make_error(errc::corrupt, "ingest object: footer range " + std::to_string(i) + " (" +
                                           range_name(r) + "): " + why);
    };
    if (r.topic.empty()) return bad("empty topic");
    if (r.partition < 0) return bad("negative partition");
    if (r.offset > data_end || r.length > data_end - r.offset) {
      return bad("extends past the data area (" + std::to_string(data_end) + " bytes)");
    }
    if (r.offset < prev_end) return bad("overlaps the previous range or is out of order");
    if (r.batch_count == 0 || r.length == 0) return bad("holds no batches");
    if (r.offset_count < static_cast<int64_t>(r.batch_count)) {
      return bad("offset_count " + std::to_string(r.offset_count) + " below batch_count " +
                 std::to_string(r.batch_count));
    }
    prev_end = r.offset + r.length;
    out.ranges.push_back(std::move(r));
  }
  return out;
}

sresult<std::vector<ingest_range>> read_ingest_footer(std::span<const uint8_t> tail,
                                                      uint64_t object_size) {
  auto footer = parse_ingest_footer(tail, object_size);
  if (!footer) return footer.error();
  return std::move(footer->ranges);
}

sresult<ingest_footer> read_ingest_footer(object_store& store, const std::string& key) {
  auto tail = detail::fetch_tail(store, key, magic, what);
  if (!tail) return tail.error();
  auto footer = parse_ingest_footer(tail->tail, tail->object_size);
  if (!footer) return make_error(footer.code(), key + ": " + footer.message());
  return footer;
}

sresult<void> verify_range(std::span<const uint8_t> range_bytes, const ingest_range& range) {
  if (range_bytes.size() != range.length) {
    return make_error(errc::corrupt, "ingest range " + range_name(range) + ": got " +
                                         std::to_string(range_bytes.size()) + " bytes, expected " +
                                         std::to_string(range.length));
  }
  const uint32_t actual = crc32c(range_bytes);
  if (actual != range.crc32c) {
    return make_error(errc::corrupt, "ingest range " + range_name(range) +
                                         ": checksum mismatch (footer says " + hex32(range.crc32c) +
                                         ", data has " + hex32(actual) + ")");
  }
  return {};
}

std::string ingest_object_key(const std::string& prefix, const std::string& writer_id,
                              uint64_t sequence) {
  std::string key = prefix;
  while (!key.empty() && key.back() == '/') key.pop_back();
  if (!key.empty()) key += '/';
  char seq[21];
  std::snprintf(seq, sizeof seq, "%020llu", static_cast<unsigned long long>(sequence));
  key += "ingest/";
  key += writer_id;
  key += '/';
  key += seq;
  key += ".ing";
  return key;
}

}  // namespace sh::storage
