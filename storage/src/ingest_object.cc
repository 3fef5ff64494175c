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

uint32_t ingest_object_builder::add(const std::string& topic, int32_t partition,
                                    std::span<const uint8_t> batch, const ingest_batch_meta& meta) {
  auto [it, inserted] = _groups.try_emplace({topic, partition});
  group& g = it->second;
  if (inserted) {
    g.min_timestamp = meta.first_timestamp;
    g.max_timestamp = meta.max_timestamp;
  } else {
    g.min_timestamp = std::min(g.min_timestamp, meta.first_timestamp);
    g.max_timestamp = std::max(g.max_timestamp, meta.max_timestamp);
  }
  g.data.insert(g.data.end(), batch.begin(), batch.end());
  g.batch_sizes.push_back(batch.size());
  g.offset_count += meta.offset_count;
  _size += batch.size();
  return static_cast<uint32_t>(g.batch_sizes.size() - 1);
}

ingest_object_builder::finished ingest_object_builder::finish() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return finish(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

ingest_object_builder::finished ingest_object_builder::finish(int64_t created_at_ms) {
  finished out;
  // Footer entries run to about 40 bytes plus the topic name.
  out.data.reserve(_size + _groups.size() * 64 + ingest_trailer_size + 64);
  out.ranges.reserve(_groups.size());
  out.batches.reserve(_groups.size());

  streamhouse::storage::v1::IngestFooter footer;
  footer.set_format_version(ingest_format_version);
  footer.set_created_at_ms(created_at_ms);
  footer.set_writer_id(_writer_id);

  for (auto& [id, g] : _groups) {
    ingest_range r;
    r.topic = id.first;
    r.partition = id.second;
    r.offset = out.data.size();
    r.length = g.data.size();
    r.batch_count = static_cast<uint32_t>(g.batch_sizes.size());
    r.offset_count = g.offset_count;
    r.min_timestamp = g.min_timestamp;
    r.max_timestamp = g.max_timestamp;
    r.crc32c = crc32c(g.data);
    out.data.insert(out.data.end(), g.data.begin(), g.data.end());

    std::vector<batch_location> locs;
    locs.reserve(g.batch_sizes.size());
    uint64_t pos = r.offset;
    for (uint64_t size : g.batch_sizes) {
      locs.push_back({pos, size});
      pos += size;
    }
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
  detail::append_footer(out.data,
                        {reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size()}, magic);

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
