// The mirror loop: librdkafka consumer (assign(), no group on the source) -> rebuilt magic-2
// batches at the source offsets -> one ingest object per flush -> commit_mirror_object (data and
// checkpoints in one metadata transaction).
#include "sh/connector/mirror.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "batch_rebuild.h"
#include "sh/kafka/record_batch.h"
#include "sh/metadata/metadata_store.h"
#include "sh/storage/ingest_object.h"
#include "sh/storage/object_store.h"

namespace sh::connector {
namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct partition_state {
  std::string topic;
  int32_t partition = 0;
  std::vector<source_record> pending;
  int64_t next_offset = -1;     // expected next source offset (-1: unknown yet)
  int64_t committed_next = -1;  // checkpoint in the archive (-1: none yet)
};

struct rd_deleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
using rd_handle = std::unique_ptr<rd_kafka_t, rd_deleter>;

std::string random_hex(size_t n) {
  std::random_device rd;
  std::mt19937_64 gen(rd());
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += digits[gen() & 15];
  return s;
}

std::string key_safe(const std::string& s) {
  std::string out;
  for (char ch : s) {
    out += (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.')
               ? ch
               : '_';
  }
  return out;
}

source_record copy_message(const rd_kafka_message_t* m) {
  source_record r;
  r.offset = m->offset;
  rd_kafka_timestamp_type_t tstype = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  r.timestamp = rd_kafka_message_timestamp(m, &tstype);
  r.log_append_time = tstype == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME;
  if (r.timestamp < 0) r.timestamp = -1;
  if (m->key) r.key.emplace(static_cast<const char*>(m->key), m->key_len);
  if (m->payload) r.value.emplace(static_cast<const char*>(m->payload), m->len);
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs) {
    const char* name = nullptr;
    const void* val = nullptr;
    size_t size = 0;
    for (size_t i = 0;
         rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
      kafka::record_header_spec h;
      h.key = name;
      if (val) h.value.emplace(static_cast<const char*>(val), size);
      r.size += h.key.size() + size + 8;
      r.headers.push_back(std::move(h));
    }
  }
  r.size += m->key_len + m->len + 24;
  return r;
}

class mirror {
 public:
  mirror(const mirror_config& cfg, const std::atomic<bool>& stop) : _cfg(cfg), _stop(stop) {}

  cresult<void> run();

 private:
  cresult<void> open_stores();
  cresult<void> open_source();
  cresult<void> discover();
  cresult<bool> acquire_lease();
  cresult<void> take(const rd_kafka_message_t* m);
  cresult<void> renew_lease();
  cresult<void> flush();
  bool wanted(const std::string& topic) const;

  const mirror_config& _cfg;
  const std::atomic<bool>& _stop;
  std::unique_ptr<metadata::metadata_store> _meta;
  std::unique_ptr<storage::object_store> _store;
  rd_handle _rk;
  std::unique_ptr<rd_kafka_queue_t, void (*)(rd_kafka_queue_t*)> _queue{nullptr,
                                                                        rd_kafka_queue_destroy};
  std::map<std::pair<std::string, int32_t>, partition_state> _parts;
  std::string _writer_id;
  uint64_t _sequence = 0;
  size_t _pending_bytes = 0;
  int64_t _pending_since = -1;
  uint64_t _records_total = 0;
  uint64_t _bytes_total = 0;
  std::string _lease_name;
  int64_t _lease_epoch = 0;
  int64_t _lease_renewed = 0;
};

// Adds one source message to its partition's pending records.
cresult<void> mirror::take(const rd_kafka_message_t* m) {
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return {};
  if (m->err) {
    spdlog::warn("mirror {}: source: {}", _cfg.name, rd_kafka_message_errstr(m));
    return {};
  }
  auto it = _parts.find(std::pair(std::string(rd_kafka_topic_name(m->rkt)), m->partition));
  if (it == _parts.end()) return {};
  partition_state& st = it->second;
  // A record below what was already taken (a re-delivery after a seek) is skipped, so offsets
  // only ever move forward.
  const int64_t floor = st.pending.empty() ? st.next_offset : st.pending.back().offset + 1;
  if (m->offset < floor) return {};
  // A gap too wide for an int32 offset delta starts a new range (a new flush).
  if (!st.pending.empty() && m->offset - st.pending.back().offset > (int64_t{1} << 30)) {
    if (auto r = flush(); !r) return r;
  }
  source_record r = copy_message(m);
  _pending_bytes += r.size;
  if (_pending_since < 0) _pending_since = now_ms();
  st.pending.push_back(std::move(r));
  st.next_offset = m->offset + 1;
  return {};
}

// Waits (while not stopped) until this process holds the mirror's lease. false: stopped first.
cresult<bool> mirror::acquire_lease() {
  _lease_name = "mirror:" + _cfg.name;
  std::string last_holder;
  while (!_stop.load()) {
    auto l = _meta->acquire_lease(_lease_name, _writer_id, _cfg.lease_timeout_ms);
    if (!l) return make_error(errc::metadata_error, "lease " + _lease_name + ": " + l.message());
    if (l->owner == _writer_id) {
      _lease_epoch = l->epoch;
      _lease_renewed = now_ms();
      spdlog::info("mirror {}: holding lease {} at epoch {}", _cfg.name, _lease_name, l->epoch);
      return true;
    }
    if (l->owner != last_holder) {
      spdlog::info("mirror {}: standing by, lease {} is held by {}", _cfg.name, _lease_name,
                   l->owner);
      last_holder = l->owner;
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::clamp<int64_t>(_cfg.lease_timeout_ms / 5, 100, 2000)));
  }
  return false;
}

cresult<void> mirror::renew_lease() {
  if (now_ms() - _lease_renewed < _cfg.lease_timeout_ms / 3) return {};
  auto l = _meta->renew_lease(_lease_name, _writer_id, _lease_epoch, _cfg.lease_timeout_ms);
  if (!l) {
    if (l.code() == metadata::errc::fenced) {
      return make_error(errc::fenced, "lost lease " + _lease_name + ": " + l.message());
    }
    // Transient: the commit fence still protects the data; try again on the next turn.
    spdlog::warn("mirror {}: renewing lease {}: {}", _cfg.name, _lease_name, l.message());
    return {};
  }
  _lease_renewed = now_ms();
  return {};
}

cresult<void> mirror::open_stores() {
  auto meta = metadata::open_metadata_store(_cfg.metadata_url);
  if (!meta) {
    return make_error(errc::metadata_error, "opening " + _cfg.metadata_url + ": " + meta.message());
  }
  _meta = std::move(*meta);
  storage::s3_options s3;
  s3.endpoint = _cfg.s3_endpoint;
  s3.region = _cfg.s3_region;
  s3.access_key = _cfg.s3_access_key;
  s3.secret_key = _cfg.s3_secret_key;
  s3.path_style = _cfg.s3_path_style;
  auto store = storage::open_object_store(_cfg.storage_url, s3);
  if (!store) {
    return make_error(errc::storage_error, "opening " + _cfg.storage_url + ": " + store.message());
  }
  _store = std::move(*store);
  return {};
}

cresult<void> mirror::open_source() {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::map<std::string, std::string> props = {
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"client.id", "streamhouse-mirror-" + _cfg.name},
      // assign() needs no group, but librdkafka's consumer wants a group.id to start; nothing is
      // committed under it.
      {"group.id", "streamhouse-mirror-" + _cfg.name},
  };
  for (const auto& [k, v] : _cfg.source_props) props[k] = v;
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return make_error(errc::invalid_config, "source." + k + ": " + err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return make_error(errc::source_error, std::string("creating the source consumer: ") + err);
  }
  rd_kafka_poll_set_consumer(rk);
  _rk.reset(rk);
  _queue.reset(rd_kafka_queue_get_consumer(rk));
  return {};
}

bool mirror::wanted(const std::string& topic) const {
  if (topic.rfind("__", 0) == 0) return false;  // internal topics (offsets, transactions)
  if (!_cfg.topics_exclude.empty() &&
      std::regex_match(topic, std::regex(_cfg.topics_exclude, std::regex::ECMAScript))) {
    return false;
  }
  for (const auto& t : _cfg.topics) {
    if (t == topic) return true;
  }
  return !_cfg.topics_regex.empty() &&
         std::regex_match(topic, std::regex(_cfg.topics_regex, std::regex::ECMAScript));
}

// Finds matching source topics and partitions not yet assigned, creates or grows their archive
// topics and adds them to the assignment at their checkpoints.
cresult<void> mirror::discover() {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(_rk.get(), 1, nullptr, &md, 10000);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return make_error(errc::source_error, std::string("source metadata: ") + rd_kafka_err2str(e));
  }
  std::unique_ptr<const rd_kafka_metadata_t, void (*)(const rd_kafka_metadata_t*)> guard(
      md, rd_kafka_metadata_destroy);
  rd_kafka_topic_partition_list_t* add = rd_kafka_topic_partition_list_new(16);
  std::unique_ptr<rd_kafka_topic_partition_list_t, void (*)(rd_kafka_topic_partition_list_t*)>
      add_guard(add, rd_kafka_topic_partition_list_destroy);
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& t = md->topics[i];
    const std::string name = t.topic;
    if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR || t.partition_cnt <= 0 || !wanted(name)) continue;
    if (!metadata::is_valid_topic_name(name)) continue;
    auto existing = _meta->get_topic(name);
    if (!existing) return make_error(errc::metadata_error, existing.message());
    if (!*existing) {
      auto created = _meta->create_topic(name, t.partition_cnt, {});
      if (!created && created.code() != metadata::errc::already_exists) {
        return make_error(errc::metadata_error, "creating " + name + ": " + created.message());
      }
      spdlog::info("mirror {}: created archive topic {} with {} partitions", _cfg.name, name,
                   t.partition_cnt);
    } else if ((*existing)->partition_count < t.partition_cnt) {
      auto grown = _meta->create_partitions(name, t.partition_cnt);
      if (!grown && grown.code() != metadata::errc::invalid_argument) {
        return make_error(errc::metadata_error, "growing " + name + ": " + grown.message());
      }
      spdlog::info("mirror {}: grew archive topic {} to {} partitions", _cfg.name, name,
                   t.partition_cnt);
    }
    for (int p = 0; p < t.partition_cnt; ++p) {
      const auto key = std::pair(name, t.partitions[p].id);
      if (_parts.count(key)) continue;
      auto cp = _meta->get_mirror_checkpoint(_cfg.name, name, key.second);
      if (!cp) return make_error(errc::metadata_error, cp.message());
      int64_t start = RD_KAFKA_OFFSET_BEGINNING;
      if (*cp) start = (*cp)->next_source_offset;
      partition_state& st = _parts[key];
      st.topic = name;
      st.partition = key.second;
      st.next_offset = *cp ? start : -1;
      st.committed_next = *cp ? start : -1;
      rd_kafka_topic_partition_list_add(add, name.c_str(), key.second)->offset = start;
      spdlog::info("mirror {}: {}-{} starts at {}", _cfg.name, name, key.second,
                   *cp ? std::to_string(start) : std::string("the earliest offset"));
    }
  }
  if (add->cnt > 0) {
    rd_kafka_error_t* aerr = rd_kafka_incremental_assign(_rk.get(), add);
    if (aerr) {
      std::string msg = rd_kafka_error_string(aerr);
      rd_kafka_error_destroy(aerr);
      return make_error(errc::source_error, "assign: " + msg);
    }
  }
  return {};
}

// Writes every pending record into one ingest object and commits it with the checkpoints.
cresult<void> mirror::flush() {
  if (_pending_bytes == 0) return {};
  storage::ingest_object_builder builder(_writer_id);
  struct part_summary {
    int64_t base = 0;
    int64_t last = 0;
    std::vector<metadata::batch_commit> batches;
  };
  std::map<std::pair<std::string, int32_t>, part_summary> summaries;
  size_t records = 0;
  for (auto& [key, st] : _parts) {
    if (st.pending.empty()) continue;
    part_summary& sum = summaries[key];
    sum.base = st.pending.front().offset;
    sum.last = st.pending.back().offset;
    records += st.pending.size();
    for (auto& b : rebuild_batches(st.pending, _cfg.batch_max_bytes, _cfg.compression)) {
      builder.add(st.topic, st.partition, b.bytes,
                  storage::ingest_batch_meta{b.offset_count, b.max_timestamp, b.first_timestamp});
      metadata::batch_commit bc;
      bc.offset_count = b.offset_count;
      bc.max_timestamp = b.max_timestamp;
      sum.batches.push_back(bc);
    }
  }
  auto obj = builder.finish();
  metadata::mirror_commit commit;
  commit.fence = metadata::lease_fence{_lease_name, _lease_epoch};
  commit.object_key = storage::ingest_object_key("", _writer_id, ++_sequence);
  commit.object_size = obj.data.size();
  for (const auto& r : obj.ranges) {
    const auto key = std::pair(r.topic, r.partition);
    const part_summary& sum = summaries.at(key);
    metadata::mirror_range mr;
    mr.range.topic = r.topic;
    mr.range.partition = r.partition;
    mr.range.byte_offset = r.offset;
    mr.range.byte_length = r.length;
    mr.range.min_timestamp = r.min_timestamp;
    mr.range.max_timestamp = r.max_timestamp;
    mr.range.batches = sum.batches;
    mr.base_offset = sum.base;
    mr.last_offset = sum.last;
    commit.ranges.push_back(std::move(mr));
    metadata::mirror_checkpoint cp;
    cp.mirror_name = _cfg.name;
    cp.source_topic = r.topic;
    cp.source_partition = r.partition;
    cp.topic = r.topic;
    cp.partition = r.partition;
    cp.next_source_offset = sum.last + 1;
    commit.checkpoints.push_back(std::move(cp));
  }
  // Retries with backoff: a PUT of the same key and a repeated commit are both idempotent.
  int64_t backoff = 50;
  for (int attempt = 1;; ++attempt) {
    auto put = _store->put(commit.object_key, obj.data);
    if (put) break;
    spdlog::warn("mirror {}: PUT {} failed (attempt {}): {}", _cfg.name, commit.object_key, attempt,
                 put.message());
    if (attempt >= 10) return make_error(errc::storage_error, put.message());
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
    backoff = std::min<int64_t>(backoff * 2, 5000);
  }
  backoff = 50;
  for (int attempt = 1;; ++attempt) {
    auto c = _meta->commit_mirror_object(commit);
    if (c) break;
    if (c.code() == metadata::errc::fenced) return make_error(errc::fenced, c.message());
    if (c.code() != metadata::errc::io_error && c.code() != metadata::errc::busy) {
      return make_error(errc::metadata_error,
                        "committing " + commit.object_key + ": " + c.message());
    }
    spdlog::warn("mirror {}: commit of {} failed (attempt {}): {}", _cfg.name, commit.object_key,
                 attempt, c.message());
    if (attempt >= 10) return make_error(errc::metadata_error, c.message());
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
    backoff = std::min<int64_t>(backoff * 2, 5000);
  }
  for (auto& [key, st] : _parts) {
    if (!st.pending.empty()) st.committed_next = st.pending.back().offset + 1;
    st.pending.clear();
  }
  _records_total += records;
  _bytes_total += commit.object_size;
  spdlog::debug("mirror {}: committed {} ({} bytes, {} records)", _cfg.name, commit.object_key,
                commit.object_size, records);
  _pending_bytes = 0;
  _pending_since = -1;
  return {};
}

cresult<void> mirror::run() {
  if (auto r = open_stores(); !r) return r;
  if (auto r = open_source(); !r) return r;
  _writer_id = "mirror-" + key_safe(_cfg.name) + "-" + random_hex(12);
  {
    auto held = acquire_lease();
    if (!held) return held.error();
    if (!*held) return {};  // stopped while standing by
  }
  if (auto r = discover(); !r) return r;
  int64_t last_discovery = now_ms();
  int64_t last_log = now_ms();
  uint64_t logged_total = 0;
  uint64_t logged_bytes = 0;
  while (!_stop.load()) {
    int timeout = 100;
    if (_pending_since >= 0) {
      timeout =
          static_cast<int>(std::clamp<int64_t>(_pending_since + _cfg.flush_ms - now_ms(), 0, 100));
    }
    // Up to 1000 messages per wake-up: far fewer queue round trips than one poll per record.
    rd_kafka_message_t* msgs[1000];
    const ssize_t n = rd_kafka_consume_batch_queue(_queue.get(), timeout, msgs, 1000);
    cresult<void> taken;
    for (ssize_t k = 0; k < n; ++k) {
      if (taken) taken = take(msgs[k]);
      rd_kafka_message_destroy(msgs[k]);
    }
    if (!taken) return taken;
    if (_pending_bytes >= _cfg.flush_bytes ||
        (_pending_since >= 0 && now_ms() - _pending_since >= _cfg.flush_ms)) {
      if (auto r = flush(); !r) return r;
    }
    if (auto r = renew_lease(); !r) return r;
    if (now_ms() - last_discovery >= _cfg.discovery_interval_ms) {
      if (auto r = discover(); !r) {
        if (r.code() != errc::source_error) return r;
        spdlog::warn("mirror {}: {}", _cfg.name, r.message());
      }
      last_discovery = now_ms();
    }
    if (now_ms() - last_log >= 10000) {
      // Lag from librdkafka's cached watermarks (no request): records between the archive's
      // checkpoint and the source's high watermark.
      int64_t lag_total = 0, lag_max = -1;
      std::string lag_max_part;
      for (const auto& [key, st] : _parts) {
        int64_t low = 0, high = 0;
        if (rd_kafka_get_watermark_offsets(_rk.get(), st.topic.c_str(), st.partition, &low,
                                           &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            high < 0) {
          continue;
        }
        const int64_t lag = std::max<int64_t>(0, high - std::max(low, st.committed_next));
        lag_total += lag;
        if (lag > lag_max) {
          lag_max = lag;
          lag_max_part = st.topic + "-" + std::to_string(st.partition);
        }
      }
      const double secs = std::max<double>(1, now_ms() - last_log) / 1000.0;
      spdlog::info(
          "mirror {}: {} records ({} bytes) mirrored; {:.0f} records/s, {:.2f} MB/s; lag {} "
          "records (largest {} in {})",
          _cfg.name, _records_total, _bytes_total, (_records_total - logged_total) / secs,
          (_bytes_total - logged_bytes) / secs / 1e6, lag_total, std::max<int64_t>(lag_max, 0),
          lag_max_part.empty() ? "-" : lag_max_part);
      logged_total = _records_total;
      logged_bytes = _bytes_total;
      last_log = now_ms();
    }
  }
  if (auto r = flush(); !r) return r;
  if (auto r = _meta->release_lease(_lease_name, _writer_id, _lease_epoch); !r) {
    spdlog::warn("mirror {}: releasing lease {}: {}", _cfg.name, _lease_name, r.message());
  }
  spdlog::info("mirror {}: stopped after {} records", _cfg.name, _records_total);
  return {};
}

}  // namespace

cresult<void> run_mirror(const mirror_config& config, const std::atomic<bool>& stop) {
  mirror m(config, stop);
  return m.run();
}

}  // namespace sh::connector
