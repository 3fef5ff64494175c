// `streamhouse mirror verify`: compares each mirrored partition of the archive with the source
// over the offsets both should hold: [max(source log start, archive log start), checkpoint).
// Per side: first and last offset, record count and an FNV-1a digest over offsets, timestamps
// (and their type), keys, values and headers, with null distinct from empty.
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "endpoints.h"
#include "sh/connector/mirror.h"
#include "sh/kafka/record_batch.h"
#include "sh/metadata/metadata_store.h"
#include "sh/storage/object_store.h"

namespace sh::connector {
namespace {

struct side_summary {
  int64_t first = -1;
  int64_t last = -1;
  int64_t count = 0;
  uint64_t digest = 1469598103934665603ull;
  std::string error;

  void mix(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) {
      digest ^= b[i];
      digest *= 1099511628211ull;
    }
  }
  void mix_i64(int64_t v) { mix(&v, sizeof v); }
  void mix_opt(const void* p, size_t n, bool present) {
    mix_i64(present ? static_cast<int64_t>(n) : -1);
    if (present) mix(p, n);
  }
  void add_record(int64_t offset, bool append_time, int64_t ts) {
    if (first < 0) first = offset;
    last = offset;
    ++count;
    mix_i64(offset);
    mix_i64(append_time ? 1 : 0);
    mix_i64(ts);
  }
  bool operator==(const side_summary& o) const {
    return first == o.first && last == o.last && count == o.count && digest == o.digest &&
           error.empty() && o.error.empty();
  }
};

struct part_key {
  std::string topic;
  int32_t partition;
  auto operator<=>(const part_key&) const = default;
};

struct part_check {
  int64_t lo = 0;
  int64_t end = 0;  // checkpoint: next source offset
  side_summary source;
  side_summary archive;
  bool source_done = false;
};

void read_archive(metadata::metadata_store& meta, storage::object_store& store, const part_key& key,
                  part_check& pc) {
  int64_t from = pc.lo;
  while (from < pc.end) {
    auto entries = meta.read_index(key.topic, key.partition, from, 64);
    if (!entries) {
      pc.archive.error = "index: " + entries.message();
      return;
    }
    if (entries->empty()) return;
    for (const auto& e : *entries) {
      auto bytes = store.get_range(e.object_key, e.byte_offset, e.byte_length);
      if (!bytes || bytes->size() != e.byte_length) {
        pc.archive.error = "reading " + e.object_key + ": " + (bytes ? "short" : bytes.message());
        return;
      }
      auto batches = kafka::split_batches(*bytes);
      if (!batches) {
        pc.archive.error = "object " + e.object_key + ": " + batches.message() + " (" +
                           kafka::batch_errc_name(batches.code()) + ")";
        return;
      }
      int64_t next = e.base_offset;  // numbered as the broker's read path numbers them
      for (const auto& b : *batches) {
        const int64_t base = next;
        const bool append = b.header.ts_type() == kafka::timestamp_type::log_append_time;
        auto r = kafka::for_each_record(b, [&](const kafka::record_view& rv) {
          const int64_t off = base + rv.offset_delta;
          if (off < pc.lo || off >= pc.end) return;
          const int64_t ts =
              append ? b.header.max_timestamp : b.header.base_timestamp + rv.timestamp_delta;
          side_summary& s = pc.archive;
          s.add_record(off, append, ts);
          s.mix_opt(rv.key ? rv.key->data() : nullptr, rv.key ? rv.key->size() : 0,
                    rv.key.has_value());
          s.mix_opt(rv.value ? rv.value->data() : nullptr, rv.value ? rv.value->size() : 0,
                    rv.value.has_value());
          s.mix_i64(static_cast<int64_t>(rv.headers.size()));
          for (const auto& h : rv.headers) {
            s.mix_opt(h.key.data(), h.key.size(), true);
            s.mix_opt(h.value ? h.value->data() : nullptr, h.value ? h.value->size() : 0,
                      h.value.has_value());
          }
        });
        if (!r) {
          pc.archive.error = "object " + e.object_key + ": " + r.message();
          return;
        }
        next = base + b.header.last_offset_delta + 1;
      }
      from = e.last_offset + 1;
    }
  }
}

}  // namespace

cresult<bool> verify_mirror(const mirror_config& cfg, const std::string& topic, FILE* report) {
  auto archive = open_archive(cfg);
  if (!archive) return make_error(archive.code(), archive.message());
  auto& meta = archive->meta;
  auto& store = archive->store;
  auto cps = meta->list_mirror_checkpoints(cfg.name);
  if (!cps) return make_error(errc::metadata_error, cps.message());

  auto source = open_source_consumer(cfg, {{"enable.auto.commit", "false"},
                                           {"enable.partition.eof", "true"},
                                           {"group.id", "streamhouse-mirror-verify"}});
  if (!source) return make_error(source.code(), source.message());
  rd_kafka_t* rk = *source;

  std::map<part_key, part_check> parts;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(16);
  for (const auto& cp : *cps) {
    if (!topic.empty() && cp.source_topic != topic) continue;
    part_key key{cp.source_topic, cp.source_partition};
    part_check& pc = parts[key];
    pc.end = cp.next_source_offset;
    int64_t low = 0, high = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, key.topic.c_str(), key.partition, &low, &high, 10000);
    if (e) {
      pc.source.error = std::string("watermarks: ") + rd_kafka_err2str(e);
      pc.source_done = true;
      continue;
    }
    auto st = meta->get_partition(cp.topic, cp.partition);
    pc.lo = std::max(low, st ? st->log_start_offset : 0);
    if (pc.lo >= pc.end) {
      pc.source_done = true;
      continue;
    }
    rd_kafka_topic_partition_list_add(list, key.topic.c_str(), key.partition)->offset = pc.lo;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  auto pending = [&] {
    return std::count_if(parts.begin(), parts.end(),
                         [](const auto& kv) { return !kv.second.source_done; });
  };
  int idle = 0;
  while (pending() > 0 && idle < 100) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) {
      ++idle;
      continue;
    }
    idle = 0;
    auto it = parts.find(part_key{rd_kafka_topic_name(m->rkt), m->partition});
    if (it != parts.end() && !it->second.source_done) {
      part_check& pc = it->second;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        pc.source_done = true;
      } else if (m->err) {
        pc.source.error = rd_kafka_message_errstr(m);
      } else if (m->offset >= pc.end) {
        pc.source_done = true;
      } else if (m->offset >= pc.lo) {
        rd_kafka_timestamp_type_t tt;
        const int64_t ts = rd_kafka_message_timestamp(m, &tt);
        side_summary& s = pc.source;
        s.add_record(m->offset, tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME, ts);
        s.mix_opt(m->key, m->key_len, m->key != nullptr);
        s.mix_opt(m->payload, m->len, m->payload != nullptr);
        rd_kafka_headers_t* h = nullptr;
        size_t hn = 0;
        if (!rd_kafka_message_headers(m, &h) && h) hn = rd_kafka_header_cnt(h);
        s.mix_i64(static_cast<int64_t>(hn));
        const char* name;
        const void* val;
        size_t size;
        for (size_t i = 0; i < hn && !rd_kafka_header_get_all(h, i, &name, &val, &size); ++i) {
          s.mix_opt(name, std::strlen(name), true);
          s.mix_opt(val, size, val != nullptr);
        }
        if (m->offset == pc.end - 1) pc.source_done = true;
      }
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);

  bool all_ok = !parts.empty();
  if (parts.empty())
    std::fprintf(report, "no mirrored partitions for mirror %s\n", cfg.name.c_str());
  for (auto& [key, pc] : parts) {
    if (!pc.source_done && pc.source.error.empty()) pc.source.error = "source read timed out";
    read_archive(*meta, *store, key, pc);
    const bool ok = pc.source == pc.archive;
    all_ok = all_ok && ok;
    auto side = [](const side_summary& s) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "first=%lld last=%lld count=%lld digest=%016llx",
                    static_cast<long long>(s.first), static_cast<long long>(s.last),
                    static_cast<long long>(s.count), static_cast<unsigned long long>(s.digest));
      return std::string(buf) + (s.error.empty() ? "" : " error=" + s.error);
    };
    std::fprintf(report, "%s %s-%d [%lld, %lld) source: %s | archive: %s\n", ok ? "OK  " : "DIFF",
                 key.topic.c_str(), key.partition, static_cast<long long>(pc.lo),
                 static_cast<long long>(pc.end), side(pc.source).c_str(), side(pc.archive).c_str());
  }
  return all_ok;
}

}  // namespace sh::connector
