#include "sh/analytics/reader.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>

#include "sh/kafka/record_batch.h"
#include "sh/metadata/metadata_store.h"
#include "sh/storage/segment.h"

namespace sh::analytics {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::ok:
      return "ok";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::not_found:
      return "not_found";
    case errc::metadata_error:
      return "metadata_error";
    case errc::storage_error:
      return "storage_error";
    case errc::corrupt:
      return "corrupt";
    case errc::io_error:
      return "io_error";
  }
  return "unknown";
}

namespace {

// Segments are read in windows of this size so a reader's memory stays bounded whatever the
// segment size (a batch larger than the window is read whole).
constexpr uint64_t segment_window_bytes = 8ull << 20;
// The first window of a segment is smaller and doubles from there, so a narrow range near an
// index entry costs one small GET, a whole segment a few large ones.
constexpr uint64_t first_window_bytes = 512ull << 10;
constexpr size_t index_page = 64;

int32_t load_be32(const uint8_t* p) {
  return static_cast<int32_t>((uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
                              (uint32_t(p[2]) << 8) | uint32_t(p[3]));
}

error_info<errc> meta_error(const std::string& what, const error_info<metadata::errc>& e) {
  return make_error(e.code == metadata::errc::not_found ? errc::not_found : errc::metadata_error,
                    what + ": " + e.message);
}

error_info<errc> store_error(const std::string& what, const error_info<storage::errc>& e) {
  return make_error(e.code == storage::errc::corrupt ? errc::corrupt : errc::storage_error,
                    what + ": " + storage::to_string(e.code) + " " + e.message);
}

std::string_view as_sv(std::span<const uint8_t> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

std::string partition_prefix(const std::string& topic, int32_t partition) {
  return "topics/" + topic + "/" + std::to_string(partition) + "/";
}

bool is_segment_key(const std::string& key) {
  return key.size() > 4 && key.compare(key.size() - 4, 4, ".seg") == 0;
}

}  // namespace

struct archive_reader::batch_ctx {
  const std::string* topic = nullptr;
  int32_t partition = 0;
  read_range range;
  // Offsets below this are not delivered (again): segment-only mode may meet two segments
  // holding the same offsets (a segment orphaned by a crash before its index swap).
  int64_t next_offset = 0;
  bool past_end = false;  // a batch started after range.to_offset: nothing further can match
};

archive_reader::archive_reader(std::shared_ptr<storage::object_store> store,
                               std::shared_ptr<metadata::metadata_store> meta)
    : _store(std::move(store)), _meta(std::move(meta)) {}

archive_reader::~archive_reader() = default;

aresult<std::unique_ptr<archive_reader>> archive_reader::open(const source_options& options) {
  if (options.storage_url.empty()) {
    return make_error(errc::invalid_argument, "storage.url is empty");
  }
  auto store = storage::open_object_store(options.storage_url, options.s3);
  if (!store) return store_error("opening " + options.storage_url, store.error());
  std::shared_ptr<metadata::metadata_store> meta;
  if (!options.segments_only) {
    if (options.metadata_url.empty()) {
      return make_error(errc::invalid_argument,
                        "metadata.url is empty (use segment-only mode to read without it)");
    }
    // open_metadata_store creates a missing SQLite file: a reader must not, so that a wrong
    // path is an error rather than an empty archive.
    const std::string& u = options.metadata_url;
    if (!u.starts_with("postgres")) {
      std::string path = u.starts_with("sqlite://") ? u.substr(9)
                         : u.starts_with("sqlite:") ? u.substr(7)
                                                    : u;
      if (path != ":memory:" && !std::filesystem::exists(path)) {
        return make_error(errc::not_found, "no metadata database at " + path);
      }
    }
    auto m = metadata::open_metadata_store(options.metadata_url);
    if (!m) return meta_error("opening metadata store", m.error());
    meta = std::move(*m);
  }
  return std::unique_ptr<archive_reader>(
      new archive_reader(std::shared_ptr<storage::object_store>(std::move(*store)), meta));
}

std::unique_ptr<archive_reader> archive_reader::open(
    std::shared_ptr<storage::object_store> store, std::shared_ptr<metadata::metadata_store> meta) {
  return std::unique_ptr<archive_reader>(new archive_reader(std::move(store), std::move(meta)));
}

aresult<std::vector<partition_summary>> archive_reader::list_partitions(const std::string& topic) {
  std::vector<partition_summary> out;
  if (_meta) {
    auto t = _meta->get_topic(topic);
    if (!t) return meta_error("topic " + topic, t.error());
    if (!*t) return make_error(errc::not_found, "no topic " + topic);
    for (int32_t p = 0; p < (*t)->partition_count; ++p) {
      auto st = _meta->get_partition(topic, p);
      if (!st) return meta_error(topic + "-" + std::to_string(p), st.error());
      out.push_back({p, st->log_start_offset, st->high_watermark});
    }
    return out;
  }
  if (!metadata::is_valid_topic_name(topic)) {
    return make_error(errc::invalid_argument, "invalid topic name '" + topic + "'");
  }
  auto objs = _store->list("topics/" + topic + "/");
  if (!objs) return store_error("listing topics/" + topic + "/", objs.error());
  std::map<int32_t, std::pair<int64_t, std::string>> first, last;  // partition -> (base, key)
  for (const auto& o : *objs) {
    auto k = storage::parse_segment_key(o.key);
    if (!k || k->topic != topic) continue;
    auto [fit, fnew] = first.try_emplace(k->partition, k->base_offset, o.key);
    if (!fnew && k->base_offset < fit->second.first) fit->second = {k->base_offset, o.key};
    auto [lit, lnew] = last.try_emplace(k->partition, k->base_offset, o.key);
    if (!lnew && k->base_offset > lit->second.first) lit->second = {k->base_offset, o.key};
  }
  if (first.empty()) return make_error(errc::not_found, "no segments of topic " + topic);
  for (const auto& [p, f] : first) {
    auto info = storage::read_segment_footer(*_store, last[p].second);
    _stats.ranges_fetched++;
    if (!info) return store_error("segment " + last[p].second, info.error());
    out.push_back({p, f.first, info->last_offset + 1});
  }
  return out;
}

aresult<void> archive_reader::read(const std::string& topic, int32_t partition,
                                   const read_range& range, const record_fn& fn) {
  if (partition < 0) return make_error(errc::invalid_argument, "negative partition");
  if (range.from_offset > range.to_offset || range.from_time > range.to_time) return {};
  bool stop = false;
  return _meta ? read_indexed(topic, partition, range, fn, stop)
               : read_segments(topic, partition, range, fn, stop);
}

aresult<void> archive_reader::read_indexed(const std::string& topic, int32_t partition,
                                           const read_range& range, const record_fn& fn,
                                           bool& stop) {
  const std::string where = topic + "-" + std::to_string(partition);
  auto st = _meta->get_partition(topic, partition);
  if (!st) return meta_error(where, st.error());
  int64_t from = std::max(range.from_offset, st->log_start_offset);
  const int64_t end = std::min(range.to_offset, st->high_watermark - 1);
  if (from > end) return {};
  if (range.from_time != std::numeric_limits<int64_t>::min()) {
    // The first index row whose max timestamp reaches from_time: every row before it holds only
    // older records, so the read starts there (an index seek, not a scan).
    auto first = _meta->find_by_timestamp(topic, partition, range.from_time);
    if (!first) return meta_error(where, first.error());
    if (!*first) return {};
    from = std::max(from, (*first)->base_offset);
  }
  batch_ctx ctx{&topic, partition, range, from, false};
  ctx.range.from_offset = from;
  ctx.range.to_offset = end;
  // Segment footers seen, for their min/max timestamps (several rows point into one segment).
  std::map<std::string, std::optional<storage::segment_info>> footers;
  int index_retries = 0;
  while (from <= end && !stop) {
    auto entries = _meta->read_index(topic, partition, from, index_page);
    if (!entries) return meta_error(where, entries.error());
    if (entries->empty()) break;
    for (const auto& e : *entries) {
      if (e.base_offset > end || stop) {
        from = end + 1;
        break;
      }
      from = e.last_offset + 1;
      if (e.max_timestamp < range.from_time) {
        _stats.index_entries_skipped++;
        continue;
      }
      if (range.to_time != std::numeric_limits<int64_t>::max() && is_segment_key(e.object_key)) {
        auto it = footers.find(e.object_key);
        if (it == footers.end()) {
          auto info = storage::read_segment_footer(*_store, e.object_key);
          // A footer that can't be read costs only the skip: the rows are still read.
          it = footers.emplace(e.object_key, info ? std::optional(*info) : std::nullopt).first;
        }
        if (it->second && it->second->min_timestamp > range.to_time) {
          _stats.index_entries_skipped++;
          continue;
        }
      }
      auto bytes = _store->get_range(e.object_key, e.byte_offset, e.byte_length);
      _stats.ranges_fetched++;
      if (!bytes && bytes.code() == storage::errc::not_found && index_retries < 3) {
        // Compaction swapped this row for a segment row and GC deleted the ingest object
        // after its grace period (a long export): read the index again from here. Offsets
        // already delivered are not delivered twice (ctx.next_offset).
        ++index_retries;
        from = std::max(e.base_offset, ctx.next_offset);
        break;
      }
      if (!bytes) return store_error("reading " + e.object_key, bytes.error());
      index_retries = 0;
      _stats.bytes_fetched += bytes->size();
      if (bytes->size() != e.byte_length) {
        return make_error(errc::corrupt, "object " + e.object_key + " is shorter than its index");
      }
      auto batches = kafka::split_batches(*bytes);
      if (!batches) {
        return make_error(errc::corrupt, "object " + e.object_key + " [" +
                                             std::to_string(e.byte_offset) + "+" +
                                             std::to_string(e.byte_length) +
                                             "]: " + kafka::batch_errc_name(batches.code()));
      }
      // Numbered from the row's base offset, batch after batch, as the broker's fetch path does.
      int64_t next = e.base_offset;
      for (const auto& b : *batches) {
        const int64_t base = next;
        next = base + b.header.last_offset_delta + 1;
        if (b.header.last_offset_delta < 0) {
          return make_error(errc::corrupt, "object " + e.object_key + ": negative lastOffsetDelta");
        }
        auto r = deliver_batch(ctx, b.bytes, base, fn, stop);
        if (!r) return r;
        if (stop || ctx.past_end) break;
      }
      if (stop || ctx.past_end) {
        from = end + 1;
        break;
      }
    }
  }
  return {};
}

aresult<void> archive_reader::read_segments(const std::string& topic, int32_t partition,
                                            const read_range& range, const record_fn& fn,
                                            bool& stop) {
  if (!metadata::is_valid_topic_name(topic)) {
    return make_error(errc::invalid_argument, "invalid topic name '" + topic + "'");
  }
  const std::string prefix = partition_prefix(topic, partition);
  auto objs = _store->list(prefix);
  if (!objs) return store_error("listing " + prefix, objs.error());
  std::vector<std::pair<int64_t, std::string>> segs;
  for (const auto& o : *objs) {
    auto k = storage::parse_segment_key(o.key);
    if (k && k->topic == topic && k->partition == partition)
      segs.emplace_back(k->base_offset, o.key);
  }
  std::sort(segs.begin(), segs.end());
  batch_ctx ctx{&topic, partition, range, range.from_offset, false};
  for (size_t i = 0; i < segs.size() && !stop && !ctx.past_end; ++i) {
    const auto& [seg_base, key] = segs[i];
    if (seg_base > range.to_offset) break;
    // The next segment starts at or before the first wanted offset: this one ends before it.
    if (i + 1 < segs.size() && segs[i + 1].first <= ctx.next_offset) {
      _stats.segments_skipped++;
      continue;
    }
    auto info = storage::read_segment_footer(*_store, key);
    _stats.ranges_fetched++;
    if (!info) return store_error("segment " + key, info.error());
    if (info->batch_count == 0 || info->last_offset < ctx.next_offset ||
        info->max_timestamp < range.from_time || info->min_timestamp > range.to_time) {
      _stats.segments_skipped++;
      continue;
    }
    // Start at the later of the offset index's and the timestamp index's answers: every batch
    // before either position is out of range.
    uint64_t pos = info->position_for_offset(ctx.next_offset);
    if (range.from_time != std::numeric_limits<int64_t>::min()) {
      pos = std::max(pos, info->position_for_timestamp(range.from_time));
    }
    std::vector<uint8_t> buf;
    size_t used = 0;  // bytes of buf already consumed
    uint64_t window = first_window_bytes;
    while (pos < info->data_length || used < buf.size()) {
      // Parse whole batches from what is buffered.
      bool need_more = false;
      uint64_t need = window;
      while (!need_more && !stop && !ctx.past_end) {
        const size_t avail = buf.size() - used;
        if (avail == 0) {
          need_more = true;
          break;
        }
        if (avail < kafka::batch_log_overhead) {
          need_more = true;
          break;
        }
        const int32_t len = load_be32(buf.data() + used + 8);
        if (len < 49) return make_error(errc::corrupt, "segment " + key + ": bad batch length");
        const uint64_t total = kafka::batch_log_overhead + static_cast<uint64_t>(len);
        if (total > avail) {
          if (total - avail > info->data_length - pos) {
            return make_error(errc::corrupt, "segment " + key + ": batch runs past the data");
          }
          need = std::max<uint64_t>(need, total - avail);
          need_more = true;
          break;
        }
        std::span<const uint8_t> one(buf.data() + used, total);
        auto batches = kafka::split_batches(one);
        if (!batches || batches->size() != 1) {
          return make_error(errc::corrupt,
                            "segment " + key + ": " +
                                (batches ? "bad batch" : kafka::batch_errc_name(batches.code())));
        }
        const auto& b = batches->front();
        auto r = deliver_batch(ctx, b.bytes, b.header.base_offset, fn, stop);
        if (!r) return r;
        used += total;
      }
      if (stop || ctx.past_end) break;
      if (pos >= info->data_length) {
        if (used < buf.size()) {
          return make_error(errc::corrupt, "segment " + key + ": truncated batch at the end");
        }
        break;
      }
      // Keep the unconsumed tail, append the next window.
      buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(used));
      used = 0;
      const uint64_t len = std::min<uint64_t>(need, info->data_length - pos);
      auto bytes = _store->get_range(key, pos, len);
      _stats.ranges_fetched++;
      if (!bytes) return store_error("reading " + key, bytes.error());
      if (bytes->size() != len) return make_error(errc::corrupt, "segment " + key + ": short read");
      _stats.bytes_fetched += len;
      pos += len;
      buf.insert(buf.end(), bytes->begin(), bytes->end());
      window = std::min(window * 2, segment_window_bytes);
    }
  }
  return {};
}

aresult<void> archive_reader::deliver_batch(batch_ctx& ctx, std::span<const uint8_t> batch,
                                            int64_t base_offset, const record_fn& fn, bool& stop) {
  auto h = kafka::parse_batch_header(batch);
  if (!h) return make_error(errc::corrupt, "short batch");
  const int64_t last = base_offset + h->last_offset_delta;
  const read_range& r = ctx.range;
  if (base_offset > r.to_offset) {
    ctx.past_end = true;
    _stats.batches_skipped++;
    return {};
  }
  const bool append_time = h->ts_type() == kafka::timestamp_type::log_append_time;
  // max_timestamp bounds every record's timestamp in the batch, so a batch entirely older than
  // from_time is skipped without decompressing it.
  if (h->is_control() || last < ctx.next_offset || h->max_timestamp < r.from_time ||
      (append_time && h->max_timestamp > r.to_time)) {
    _stats.batches_skipped++;
    return {};
  }
  _stats.batches_read++;
  kafka::batch_view view{*h, batch};
  auto reader = kafka::record_reader::open(view);
  if (!reader) {
    return make_error(errc::corrupt, "batch at offset " + std::to_string(base_offset) + ": " +
                                         kafka::batch_errc_name(reader.code()));
  }
  kafka::record_view rv;
  record rec;
  rec.topic = *ctx.topic;
  rec.partition = ctx.partition;
  rec.timestamp_type = append_time ? 1 : 0;
  while (reader->next(rv)) {
    const int64_t off = base_offset + rv.offset_delta;
    if (off < ctx.next_offset) continue;
    if (off > r.to_offset) {
      ctx.past_end = true;
      break;
    }
    const int64_t ts = append_time ? h->max_timestamp : h->base_timestamp + rv.timestamp_delta;
    if (ts < r.from_time || ts > r.to_time) continue;
    rec.offset = off;
    rec.timestamp = ts;
    rec.key = rv.key ? std::optional(as_sv(*rv.key)) : std::nullopt;
    rec.value = rv.value ? std::optional(as_sv(*rv.value)) : std::nullopt;
    _headers.clear();
    for (const auto& hv : rv.headers) {
      _headers.push_back({hv.key, hv.value ? std::optional(as_sv(*hv.value)) : std::nullopt});
    }
    rec.headers = _headers;
    ctx.next_offset = off + 1;
    _stats.records++;
    if (!fn(rec)) {
      stop = true;
      return {};
    }
  }
  if (reader->error() != kafka::batch_errc::ok) {
    return make_error(errc::corrupt, "batch at offset " + std::to_string(base_offset) +
                                         ", record " + std::to_string(reader->records_read()) +
                                         ": " + kafka::batch_errc_name(reader->error()));
  }
  return {};
}

// ---- time parsing ----

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool take_digits(std::string_view& s, size_t n, int64_t& out) {
  if (s.size() < n) return false;
  int64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  s.remove_prefix(n);
  return true;
}

bool take(std::string_view& s, char c) {
  if (s.empty() || s[0] != c) return false;
  s.remove_prefix(1);
  return true;
}

}  // namespace

aresult<int64_t> parse_time(std::string_view text) {
  const std::string t(text);
  auto bad = [&] {
    return make_error(errc::invalid_argument, "'" + t +
                                                  "' is neither epoch milliseconds nor ISO 8601 "
                                                  "(YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM])");
  };
  if (text.empty()) return bad();
  const bool numeric = std::all_of(text.begin() + (text[0] == '-' ? 1 : 0), text.end(),
                                   [](char c) { return c >= '0' && c <= '9'; }) &&
                       text.size() > (text[0] == '-' ? 1u : 0u);
  if (numeric) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size()) return bad();
    return v;
  }
  std::string_view s = text;
  int64_t y = 0, mo = 0, d = 0, hh = 0, mm = 0, ss = 0, ms = 0;
  if (!take_digits(s, 4, y) || !take(s, '-') || !take_digits(s, 2, mo) || !take(s, '-') ||
      !take_digits(s, 2, d)) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return bad();
  if (take(s, 'T') || take(s, 't') || take(s, ' ')) {
    if (!take_digits(s, 2, hh) || !take(s, ':') || !take_digits(s, 2, mm)) return bad();
    if (take(s, ':')) {
      if (!take_digits(s, 2, ss)) return bad();
      if (take(s, '.') || take(s, ',')) {
        // Milliseconds from up to 9 fraction digits (truncated).
        size_t n = 0;
        int64_t frac = 0;
        while (!s.empty() && s[0] >= '0' && s[0] <= '9' && n < 9) {
          if (n < 3) frac = frac * 10 + (s[0] - '0');
          s.remove_prefix(1);
          ++n;
        }
        if (n == 0) return bad();
        for (size_t i = n; i < 3; ++i) frac *= 10;
        ms = frac;
      }
    }
  }
  if (hh > 23 || mm > 59 || ss > 60) return bad();
  int64_t zone_s = 0;
  if (take(s, 'Z') || take(s, 'z')) {
  } else if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    const int sign = s[0] == '-' ? -1 : 1;
    s.remove_prefix(1);
    int64_t zh = 0, zm = 0;
    if (!take_digits(s, 2, zh)) return bad();
    take(s, ':');
    if (!s.empty() && !take_digits(s, 2, zm)) return bad();
    if (zh > 23 || zm > 59) return bad();
    zone_s = sign * (zh * 3600 + zm * 60);
  }
  if (!s.empty()) return bad();
  const int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 86400 + hh * 3600 + mm * 60 + ss) - zone_s) * 1000 + ms;
}

}  // namespace sh::analytics
