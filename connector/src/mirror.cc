// The mirror loop: librdkafka consumer (assign(), no group on the source) -> rebuilt magic-2
// batches at the source offsets -> one ingest object per flush, PUT in the background -> in
// order, commit_mirror_object (data and checkpoints in one metadata transaction).
//
// Several processes with one mirror.name share the partitions: each holds a member slot lease
// (mirror:<name>/member/<k>, the fence of its commits) and one lease per partition it copies
// (mirror:<name>/p/<topic>/<partition>); each takes ceil(partitions / live members).
#include "sh/connector/mirror.h"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <string_view>
#include <thread>

#include "batch_rebuild.h"
#include "endpoints.h"
#include "sh/kafka/record_batch.h"
#include "sh/metadata/metadata_store.h"
#include "sh/metrics/metrics.h"
#include "sh/storage/ingest_object.h"
#include "sh/storage/object_store.h"

namespace sh::connector {
namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double mono_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Adds the seconds from `start` to the end of its scope to `total`.
struct add_seconds_on_exit {
  double& total;
  double start;
  ~add_seconds_on_exit() { total += mono_s() - start; }
};

using part_key = std::pair<std::string, int32_t>;

struct partition_state {
  std::string topic;
  int32_t partition = 0;
  std::vector<source_record> pending;
  std::vector<rd_kafka_message_t*> held;  // the messages `pending` points into
  int64_t pending_newest_ts = -1;         // over `pending`, kept as records arrive
  uint64_t pending_bytes = 0;
  int64_t next_offset = -1;     // expected next source offset (-1: unknown yet)
  int64_t committed_next = -1;  // checkpoint in the archive (-1: none yet)
  int64_t lease_epoch = 0;
  int64_t assigned_at = 0;  // now_ms() when this process started copying it
  // Observability.
  int64_t newest_committed_ts = -1;    // timestamp of the newest record committed
  int64_t oldest_uncommitted_ts = -1;  // timestamp of the oldest record read, not committed
  double avg_record_bytes = 0;         // running average, for the lag in bytes
  int64_t queried_low = -1, queried_high = -1, queried_at = 0;  // when the cache has none
  uint64_t records = 0;
  uint64_t bytes = 0;
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

// A view of one message (the message must outlive the record: partition_state::held).
source_record view_message(const rd_kafka_message_t* m) {
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
      source_header h;
      h.key = name;
      if (val) h.value.emplace(static_cast<const char*>(val), size);
      r.size += h.key.size() + size + 8;
      r.headers.push_back(h);
    }
  }
  r.size += m->key_len + m->len + 24;
  return r;
}

metrics::labels part_labels(const partition_state& st) {
  return {{"topic", st.topic}, {"partition", std::to_string(st.partition)}};
}

// What a flush hands to its background task: the records and the messages they view.
struct encode_work {
  struct part {
    std::string topic;
    int32_t partition = 0;
    std::vector<source_record> records;
    std::vector<rd_kafka_message_t*> held;
  };
  std::vector<part> parts;
  ~encode_work() {
    for (auto& p : parts) {
      for (auto* m : p.held) rd_kafka_message_destroy(m);
    }
  }
};

struct encoded_object {
  storage::sresult<void> put;
  uint64_t size = 0;
  std::vector<metadata::mirror_range> ranges;
};

// One flushed object on its way: encoded and PUT in the background, committed in sequence order.
struct inflight_object {
  metadata::mirror_commit commit;  // ranges and object_size are filled from the task's result
  std::future<encoded_object> put;
  struct part_info {
    int64_t last = 0;
    int64_t newest_ts = -1;
    uint64_t records = 0;
    uint64_t bytes = 0;
  };
  std::map<part_key, part_info> parts;
  uint64_t records = 0;
  bool written = false;  // the PUT succeeded (known once `put` was waited for)
};

class mirror {
 public:
  mirror(const mirror_config& cfg, const std::atomic<bool>& stop) : _cfg(cfg), _stop(stop) {}
  ~mirror() {
    for (auto& [k, st] : _parts) release_held(st);  // before the consumer closes
    if (_admin_queue) rd_kafka_queue_destroy(_admin_queue);
  }

  cresult<void> run();

 private:
  cresult<void> open_stores();
  cresult<void> open_source();
  cresult<void> discover();
  cresult<bool> join();
  cresult<void> balance();
  cresult<void> add_partitions(const std::vector<std::pair<part_key, int64_t>>& adds);
  void drop_partition(const part_key& key, bool release);
  cresult<bool> take(rd_kafka_message_t* m);
  static void release_held(partition_state& st) {
    for (auto* m : st.held) rd_kafka_message_destroy(m);
    st.held.clear();
    st.pending.clear();
  }
  cresult<void> flush();
  cresult<void> drain(bool all);
  cresult<void> commit_one(inflight_object& o);
  cresult<void> advance_idle_checkpoints();
  void resync_inflight(const std::string& why);
  void resync_partitions(const std::set<part_key>& parts);
  void discard_inflight();
  void on_offset_reset(const part_key& key);
  bool wanted(const std::string& topic) const;
  void start_group_sync();
  void on_groups_listed(rd_kafka_event_t* ev);
  void request_group_offsets(const std::set<std::string>& candidates);
  void on_group_offsets(rd_kafka_event_t* ev);
  void sync_group(const std::string& group, const std::map<part_key, int64_t>& source);
  void update_metrics(bool log);
  bool watermarks(partition_state& st, int64_t& low, int64_t& high);
  void poll_admin();
  void copy_topic_configs(const std::string& topic,
                          const std::map<std::string, std::string>& source_configs);
  std::string part_lease(const part_key& k) const {
    return "mirror:" + _cfg.name + "/p/" + k.first + "/" + std::to_string(k.second);
  }
  // Source partition and archive partition have the same topic name and number.
  metadata::mirror_checkpoint checkpoint(const std::string& topic, int32_t partition,
                                         int64_t next_source_offset) const {
    metadata::mirror_checkpoint cp;
    cp.mirror_name = _cfg.name;
    cp.source_topic = cp.topic = topic;
    cp.source_partition = cp.partition = partition;
    cp.next_source_offset = next_source_offset;
    return cp;
  }
  std::string slot_lease(int k) const {
    return "mirror:" + _cfg.name + "/member/" + std::to_string(k);
  }

  const mirror_config& _cfg;
  const std::atomic<bool>& _stop;
  std::unique_ptr<metadata::metadata_store> _meta;
  std::shared_ptr<storage::object_store> _store;
  rd_handle _rk;
  std::unique_ptr<rd_kafka_queue_t, void (*)(rd_kafka_queue_t*)> _queue{nullptr,
                                                                        rd_kafka_queue_destroy};
  rd_kafka_queue_t* _admin_queue = nullptr;
  std::map<part_key, partition_state> _parts;   // partitions this process copies (leases held)
  const rd_kafka_topic_t* _last_rkt = nullptr;  // take()'s lookup cache
  int32_t _last_partition = -1;
  partition_state* _last_state = nullptr;
  void forget_lookup() {
    _last_rkt = nullptr;
    _last_state = nullptr;
  }
  std::vector<part_key> _wanted;                 // every source partition to mirror
  std::map<std::string, int64_t> _retention_ms;  // source topic -> retention.ms (-1 unlimited)
  std::deque<inflight_object> _inflight;
  std::set<part_key> _offset_resets;  // partitions whose fetch offset the source no longer has
  std::string _writer_id;
  uint64_t _sequence = 0;
  size_t _pending_bytes = 0;
  int64_t _pending_since = -1;
  uint64_t _records_total = 0;
  uint64_t _bytes_total = 0;
  int _slot = -1;
  std::string _member_lease;
  int64_t _member_epoch = 0;
  int64_t _db_offset_ms = 0;  // metadata store clock - local wall clock, from our own lease
  int _members = 1;
  bool _caught_up_logged = false;
  metrics::registry _metrics;
  std::unique_ptr<metrics::http_listener> _listener;
  std::map<std::string, std::map<part_key, int64_t>> _synced;  // group -> what we last wrote
  std::set<std::string> _moved_groups;   // archive consumers committed: never overwritten
  std::set<std::string> _active_groups;  // skipped last time: coordinated on the archive
  bool _list_groups_unsupported_logged = false;
  int _group_requests = 0;  // group sync requests to the source not answered yet
  int64_t _group_sync_started = 0;
  // Where the mirror thread's time goes (seconds), logged at stop: waiting for the source,
  // taking messages, encoding objects, waiting for PUTs, committing, the rest (leases, groups).
  double _t_poll = 0, _t_take = 0, _t_encode = 0, _t_put_wait = 0, _t_commit = 0;
  double _t_periodic = 0;  // idle checkpoints, metrics and the caught-up check
  // Rates for the log line and the gauges.
  int64_t _rate_at = 0;
  uint64_t _rate_records = 0;
  uint64_t _rate_bytes = 0;
};

// Adds one source message to its partition's pending records. true: the message is kept (in
// `held`, destroyed after its flush); false: the caller destroys it.
cresult<bool> mirror::take(rd_kafka_message_t* m) {
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return false;
  if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && m->rkt) {
    _offset_resets.emplace(rd_kafka_topic_name(m->rkt), m->partition);
    return false;
  }
  if (m->err) {
    spdlog::warn("mirror {}: source: {}", _cfg.name, rd_kafka_message_errstr(m));
    return false;
  }
  // Most messages come in runs from one partition: remember the last lookup (cleared whenever
  // the set of partitions changes).
  partition_state* stp = nullptr;
  if (m->rkt == _last_rkt && m->partition == _last_partition) {
    stp = _last_state;
  } else {
    auto it = _parts.find(part_key(std::string(rd_kafka_topic_name(m->rkt)), m->partition));
    stp = it == _parts.end() ? nullptr : &it->second;
    _last_rkt = m->rkt;
    _last_partition = m->partition;
    _last_state = stp;
  }
  if (!stp) return false;  // a partition given up; its queued messages are stale
  partition_state& st = *stp;
  // A record below what was already taken (a re-delivery after a seek) is skipped, so offsets
  // only ever move forward.
  const int64_t floor = st.pending.empty() ? st.next_offset : st.pending.back().offset + 1;
  if (m->offset < floor) return false;
  // A gap too wide for an int32 offset delta starts a new range (a new flush).
  if (!st.pending.empty() && m->offset - st.pending.back().offset > (int64_t{1} << 30)) {
    if (auto r = flush(); !r) return r.error();
  }
  source_record r = view_message(m);
  _pending_bytes += r.size;
  if (_pending_since < 0) _pending_since = now_ms();
  if (st.oldest_uncommitted_ts < 0) st.oldest_uncommitted_ts = r.timestamp;
  st.pending_newest_ts = std::max(st.pending_newest_ts, r.timestamp);
  st.pending_bytes += r.size;
  st.pending.push_back(std::move(r));
  st.held.push_back(m);
  st.next_offset = m->offset + 1;
  return true;
}

// Takes the lowest free member slot. false: stopped first.
cresult<bool> mirror::join() {
  bool logged = false;
  while (!_stop.load()) {
    for (int k = 0; k < _cfg.max_members; ++k) {
      auto l = _meta->acquire_lease(slot_lease(k), _writer_id, _cfg.lease_timeout_ms);
      if (!l)
        return make_error(errc::metadata_error, "lease " + slot_lease(k) + ": " + l.message());
      if (l->owner == _writer_id) {
        _slot = k;
        _member_lease = l->name;
        _member_epoch = l->epoch;
        _db_offset_ms = l->expires_at_ms - _cfg.lease_timeout_ms - wall_ms();
        spdlog::info("mirror {}: member slot {} (epoch {})", _cfg.name, k, l->epoch);
        return true;
      }
    }
    if (!logged) {
      spdlog::warn("mirror {}: all {} member slots are taken; standing by", _cfg.name,
                   _cfg.max_members);
      logged = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return false;
}

// Renews our leases, counts the live members and moves our share of the partitions toward
// ceil(partitions / members): surplus partitions are flushed and released, missing ones taken
// from the free or expired partition leases.
cresult<void> mirror::balance() {
  auto me = _meta->renew_lease(_member_lease, _writer_id, _member_epoch, _cfg.lease_timeout_ms);
  if (!me) {
    if (me.code() == metadata::errc::fenced) {
      return make_error(errc::fenced, "lost member lease " + _member_lease + ": " + me.message());
    }
    spdlog::warn("mirror {}: renewing {}: {}", _cfg.name, _member_lease, me.message());
    return {};
  }
  _db_offset_ms = me->expires_at_ms - _cfg.lease_timeout_ms - wall_ms();
  int members = 1;
  const int64_t db_now = wall_ms() + _db_offset_ms;
  for (int k = 0; k < _cfg.max_members; ++k) {
    if (k == _slot) continue;
    auto l = _meta->get_lease(slot_lease(k));
    if (!l) return make_error(errc::metadata_error, l.message());
    if (*l && !(*l)->owner.empty() && (*l)->expires_at_ms > db_now) ++members;
  }
  if (members != _members) {
    spdlog::info("mirror {}: {} live member(s)", _cfg.name, members);
    _members = members;
  }
  // Renew the partitions we hold; one taken by someone else is dropped (after the objects in
  // flight are committed, so what we read is not lost).
  std::vector<part_key> lost;
  for (auto& [key, st] : _parts) {
    auto r = _meta->renew_lease(part_lease(key), _writer_id, st.lease_epoch, _cfg.lease_timeout_ms);
    if (!r && r.code() == metadata::errc::fenced) lost.push_back(key);
  }
  const size_t total = _wanted.size();
  const size_t fair = (total + static_cast<size_t>(members) - 1) / static_cast<size_t>(members);
  if (!lost.empty() || _parts.size() > fair) {
    if (auto r = flush(); !r) return r;
    if (auto r = drain(true); !r) return r;
    for (const auto& k : lost) {
      spdlog::warn("mirror {}: lease of {}-{} was taken over", _cfg.name, k.first, k.second);
      drop_partition(k, false);
    }
    while (_parts.size() > fair) {
      const part_key k = std::prev(_parts.end())->first;
      spdlog::info("mirror {}: handing {}-{} over ({} members, {} partitions each)", _cfg.name,
                   k.first, k.second, members, fair);
      drop_partition(k, true);
    }
  }
  if (_parts.size() < fair && total > 0) {
    // Start at a slot-dependent place so members do not all race for the same partitions.
    const size_t start = (static_cast<size_t>(_slot) * fair) % total;
    std::vector<std::pair<part_key, int64_t>> adds;
    for (size_t i = 0; i < total && _parts.size() + adds.size() < fair; ++i) {
      const part_key& k = _wanted[(start + i) % total];
      if (_parts.count(k)) continue;
      auto l = _meta->acquire_lease(part_lease(k), _writer_id, _cfg.lease_timeout_ms);
      if (!l) return make_error(errc::metadata_error, l.message());
      if (l->owner != _writer_id) continue;
      adds.emplace_back(k, l->epoch);
    }
    if (auto r = add_partitions(adds); !r) return r;
  }
  _metrics.set("streamhouse_mirror_members", {}, members);
  _metrics.set("streamhouse_mirror_partitions_owned", {}, static_cast<double>(_parts.size()));
  _metrics.set("streamhouse_mirror_partitions_total", {}, static_cast<double>(total));
  return {};
}

// Starts copying the given partitions (their leases held) from their checkpoints, or from the
// source's log start without one. One assign call for all: librdkafka then resolves their start
// offsets and leaders together instead of one by one.
cresult<void> mirror::add_partitions(const std::vector<std::pair<part_key, int64_t>>& adds) {
  if (adds.empty()) return {};
  forget_lookup();
  rd_kafka_topic_partition_list_t* add =
      rd_kafka_topic_partition_list_new(static_cast<int>(adds.size()));
  for (const auto& [key, epoch] : adds) {
    auto cp = _meta->get_mirror_checkpoint(_cfg.name, key.first, key.second);
    if (!cp) {
      rd_kafka_topic_partition_list_destroy(add);
      return make_error(errc::metadata_error, cp.message());
    }
    // Without a checkpoint: offset 0 rather than BEGINNING, which costs an offset query (retried
    // after 500 ms when the leader is not known yet); a log that starts later answers
    // OFFSET_OUT_OF_RANGE and on_offset_reset() moves to its start.
    int64_t start = 0;
    if (*cp) start = (*cp)->next_source_offset;
    partition_state& st = _parts[key];
    st = partition_state{};
    st.topic = key.first;
    st.partition = key.second;
    st.next_offset = *cp ? start : -1;
    st.committed_next = *cp ? start : -1;
    st.lease_epoch = epoch;
    st.assigned_at = now_ms();
    rd_kafka_topic_partition_list_add(add, key.first.c_str(), key.second)->offset = start;
    spdlog::info("mirror {}: {}-{} starts at {}", _cfg.name, key.first, key.second,
                 *cp ? std::to_string(start) : std::string("the earliest offset"));
  }
  rd_kafka_error_t* aerr = rd_kafka_incremental_assign(_rk.get(), add);
  rd_kafka_topic_partition_list_destroy(add);
  if (aerr) {
    std::string msg = rd_kafka_error_string(aerr);
    rd_kafka_error_destroy(aerr);
    for (const auto& [key, epoch] : adds) {
      _parts.erase(key);
      (void)_meta->release_lease(part_lease(key), _writer_id, epoch);
    }
    return make_error(errc::source_error, "assign: " + msg);
  }
  _caught_up_logged = false;
  return {};
}

// Stops copying one partition: its pending records are dropped (callers flush first when the
// data should be kept), the source stops fetching it and, with `release`, its lease is freed.
void mirror::drop_partition(const part_key& key, bool release) {
  auto it = _parts.find(key);
  if (it == _parts.end()) return;
  forget_lookup();
  rd_kafka_topic_partition_list_t* rm = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(rm, key.first.c_str(), key.second);
  if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(_rk.get(), rm)) {
    spdlog::warn("mirror {}: unassign {}-{}: {}", _cfg.name, key.first, key.second,
                 rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
  rd_kafka_topic_partition_list_destroy(rm);
  for (const auto& r : it->second.pending) _pending_bytes -= std::min(_pending_bytes, r.size);
  release_held(it->second);
  if (release) {
    if (auto r = _meta->release_lease(part_lease(key), _writer_id, it->second.lease_epoch); !r) {
      spdlog::warn("mirror {}: releasing {}: {}", _cfg.name, part_lease(key), r.message());
    }
  }
  const auto labels = part_labels(it->second);
  for (const char* m :
       {"streamhouse_mirror_lag_records", "streamhouse_mirror_lag_bytes",
        "streamhouse_mirror_newest_record_age_seconds", "streamhouse_mirror_retention_left_seconds",
        "streamhouse_mirror_checkpoint_offset", "streamhouse_mirror_source_high_watermark"}) {
    _metrics.remove(m, labels);
  }
  _parts.erase(it);
}

cresult<void> mirror::open_stores() {
  auto archive = open_archive(_cfg);
  if (!archive) return make_error(archive.code(), archive.message());
  _meta = std::move(archive->meta);
  _store = std::move(archive->store);
  return {};
}

cresult<void> mirror::open_source() {
  auto rk = open_source_consumer(
      _cfg, {
                {"enable.auto.commit", "false"},
                {"enable.auto.offset.store", "false"},
                // An offset the source no longer has is handled by the mirror (on_offset_reset):
                // a first start moves to the log start quietly, a lost range is reported.
                {"auto.offset.reset", "error"},
                {"client.id", "streamhouse-mirror-" + _cfg.name},
                // assign() needs no group, but librdkafka's consumer wants a group.id to start;
                // nothing is committed under it.
                {"group.id", "streamhouse-mirror-" + _cfg.name},
                // Bigger fetches and a deeper prefetch queue than librdkafka's defaults: the mirror
                // reads whole logs, and its commits stall the loop for a moment now and then.
                {"fetch.max.bytes", "104857600"},
                {"max.partition.fetch.bytes", "8388608"},
                {"queued.max.messages.kbytes", "262144"},
                {"queued.min.messages", "200000"},
                // Some brokers (librdkafka's mock among them) overshoot fetch.max.bytes by whole
                // partitions; librdkafka drops the connection on a response above this limit.
                {"receive.message.max.bytes", "268435456"},
                // A fetch of caught-up partitions long-polls this long on the source; partitions
                // assigned meanwhile (start-up, takeover) wait for it to end.
                {"fetch.wait.max.ms", "100"},
            });
  if (!rk) return make_error(rk.code(), rk.message());
  _rk.reset(*rk);
  _queue.reset(rd_kafka_queue_get_consumer(*rk));
  _admin_queue = rd_kafka_queue_new(*rk);
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

// Finds the matching source topics and partitions, creates or grows their archive topics, and
// asks (asynchronously) for the source topics' retention.ms.
cresult<void> mirror::discover() {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(_rk.get(), 1, nullptr, &md, 10000);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return make_error(errc::source_error, std::string("source metadata: ") + rd_kafka_err2str(e));
  }
  std::unique_ptr<const rd_kafka_metadata_t, void (*)(const rd_kafka_metadata_t*)> guard(
      md, rd_kafka_metadata_destroy);
  std::vector<part_key> found;
  std::vector<std::string> new_topics;
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
    if (!_retention_ms.count(name)) new_topics.push_back(name);
    for (int p = 0; p < t.partition_cnt; ++p) found.emplace_back(name, t.partitions[p].id);
  }
  std::sort(found.begin(), found.end());
  _wanted = std::move(found);
  if (!new_topics.empty()) {
    std::vector<rd_kafka_ConfigResource_t*> res;
    for (const auto& t : new_topics) {
      res.push_back(rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, t.c_str()));
      _retention_ms[t] = _cfg.retention_assumed_ms;  // until (unless) the source answers
    }
    rd_kafka_AdminOptions_t* opt =
        rd_kafka_AdminOptions_new(_rk.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    char err[256];
    rd_kafka_AdminOptions_set_request_timeout(opt, 10000, err, sizeof(err));
    rd_kafka_DescribeConfigs(_rk.get(), res.data(), res.size(), opt, _admin_queue);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_ConfigResource_destroy_array(res.data(), res.size());
  }
  return {};
}

// Source topic configs set on the topic itself that describe its records and mean the same in
// the archive. Retention and segment settings are not copied: the archive keeps data on its own
// terms (that is what it is for), and its segments are its own.
static bool is_copied_topic_config(std::string_view name) {
  static constexpr std::string_view copied[] = {"cleanup.policy",
                                                "compression.type",
                                                "max.message.bytes",
                                                "message.timestamp.type",
                                                "message.timestamp.difference.max.ms",
                                                "message.downconversion.enable"};
  return std::find(std::begin(copied), std::end(copied), name) != std::end(copied);
}

// Adds the source topic's copied configs to the archive topic; a config already set on the
// archive topic (by an operator, or an earlier copy) is left as it is.
void mirror::copy_topic_configs(const std::string& topic,
                                const std::map<std::string, std::string>& source_configs) {
  if (source_configs.empty()) return;
  auto t = _meta->get_topic(topic);
  if (!t || !*t) return;
  std::map<std::string, std::string> merged = (*t)->configs;
  std::vector<std::string> added;
  for (const auto& [k, v] : source_configs) {
    if (merged.emplace(k, v).second) added.push_back(k + "=" + v);
  }
  if (added.empty()) return;
  if (auto r = _meta->set_topic_configs(topic, merged); !r) {
    spdlog::warn("mirror {}: copying topic configs of {}: {}", _cfg.name, topic, r.message());
    return;
  }
  spdlog::info("mirror {}: archive topic {} takes the source's {}", _cfg.name, topic,
               fmt::join(added, ", "));
}

// Handles finished admin requests (DescribeConfigs, group listings and offsets) without waiting.
void mirror::poll_admin() {
  while (rd_kafka_event_t* ev = rd_kafka_queue_poll(_admin_queue, 0)) {
    const auto type = rd_kafka_event_type(ev);
    if (type == RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT ||
        type == RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT) {
      _group_requests = std::max(0, _group_requests - 1);
      if (type == RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT) {
        on_groups_listed(ev);
      } else {
        on_group_offsets(ev);
      }
    }
    if (type == RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT) {
      if (rd_kafka_event_error(ev)) {
        spdlog::info("mirror {}: source topic configs unavailable ({}); retention.ms assumed {}",
                     _cfg.name, rd_kafka_event_error_string(ev), _cfg.retention_assumed_ms);
      } else {
        const auto* r = rd_kafka_event_DescribeConfigs_result(ev);
        size_t n = 0;
        const rd_kafka_ConfigResource_t** rs = rd_kafka_DescribeConfigs_result_resources(r, &n);
        for (size_t i = 0; i < n; ++i) {
          if (rd_kafka_ConfigResource_error(rs[i])) continue;
          size_t ne = 0;
          const rd_kafka_ConfigEntry_t** es = rd_kafka_ConfigResource_configs(rs[i], &ne);
          std::map<std::string, std::string> copied;
          for (size_t j = 0; j < ne; ++j) {
            const char* copied_value = rd_kafka_ConfigEntry_value(es[j]);
            if (copied_value && is_copied_topic_config(rd_kafka_ConfigEntry_name(es[j])) &&
                rd_kafka_ConfigEntry_source(es[j]) == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG) {
              copied[rd_kafka_ConfigEntry_name(es[j])] = copied_value;
            }
            if (std::string(rd_kafka_ConfigEntry_name(es[j])) != "retention.ms") continue;
            const char* v = rd_kafka_ConfigEntry_value(es[j]);
            if (v) {
              _retention_ms[rd_kafka_ConfigResource_name(rs[i])] = std::atoll(v);
              spdlog::info("mirror {}: source topic {} has retention.ms={}", _cfg.name,
                           rd_kafka_ConfigResource_name(rs[i]), v);
            }
          }
          copy_topic_configs(rd_kafka_ConfigResource_name(rs[i]), copied);
        }
      }
    }
    rd_kafka_event_destroy(ev);
  }
}

// Builds one ingest object from every pending record and starts its PUT in the background.
cresult<void> mirror::flush() {
  if (_pending_bytes == 0) return {};
  const double t0 = mono_s();
  inflight_object o;
  // The records and the messages they point into move to the object's task, which encodes the
  // batches, builds the ingest object and PUTs it while this thread goes on consuming.
  auto work = std::make_shared<encode_work>();
  for (auto& [key, st] : _parts) {
    if (st.pending.empty()) continue;
    auto& info = o.parts[key];
    info.last = st.pending.back().offset;
    info.records = st.pending.size();
    info.newest_ts = st.pending_newest_ts;
    info.bytes = st.pending_bytes;
    st.pending_newest_ts = -1;
    st.pending_bytes = 0;
    o.records += st.pending.size();
    encode_work::part p;
    p.topic = st.topic;
    p.partition = st.partition;
    p.records = std::move(st.pending);
    p.held = std::move(st.held);
    st.pending.clear();
    st.held.clear();
    work->parts.push_back(std::move(p));
    o.commit.checkpoints.push_back(checkpoint(st.topic, st.partition, info.last + 1));
  }
  metadata::mirror_commit& commit = o.commit;
  commit.fence = metadata::lease_fence{_member_lease, _member_epoch};
  commit.object_key = storage::ingest_object_key("", _writer_id, ++_sequence);
  // A PUT of the same key is idempotent, so retries are safe.
  o.put = std::async(
      std::launch::async,
      [work, store = _store, key = commit.object_key, writer = _writer_id, name = _cfg.name,
       batch_max = _cfg.batch_max_bytes, codec = _cfg.compression]() -> encoded_object {
        encoded_object out;
        storage::ingest_object_builder builder(writer);
        std::map<part_key, std::vector<metadata::batch_commit>> batches;
        std::map<part_key, std::pair<int64_t, int64_t>> bounds;
        for (auto& p : work->parts) {
          const part_key k(p.topic, p.partition);
          bounds[k] = {p.records.front().offset, p.records.back().offset};
          for (auto& b : rebuild_batches(p.records, batch_max, codec)) {
            builder.add(
                p.topic, p.partition, b.bytes,
                storage::ingest_batch_meta{b.offset_count, b.max_timestamp, b.first_timestamp});
            metadata::batch_commit bc;
            bc.offset_count = b.offset_count;
            bc.max_timestamp = b.max_timestamp;
            batches[k].push_back(bc);
          }
          p.records.clear();
          for (auto* m : p.held) rd_kafka_message_destroy(m);  // encoded: the messages can go
          p.held.clear();
        }
        auto obj = builder.finish();
        out.size = obj.data.size();
        for (const auto& r : obj.ranges) {
          const part_key k(r.topic, r.partition);
          metadata::mirror_range mr;
          mr.range.topic = r.topic;
          mr.range.partition = r.partition;
          mr.range.byte_offset = r.offset;
          mr.range.byte_length = r.length;
          mr.range.min_timestamp = r.min_timestamp;
          mr.range.max_timestamp = r.max_timestamp;
          mr.range.batches = std::move(batches[k]);
          mr.base_offset = bounds[k].first;
          mr.last_offset = bounds[k].second;
          out.ranges.push_back(std::move(mr));
        }
        int64_t backoff = 50;
        for (int attempt = 1;; ++attempt) {
          out.put = store->put(key, obj.data);
          if (out.put || attempt >= 10) return out;
          spdlog::warn("mirror {}: PUT {} failed (attempt {}): {}", name, key, attempt,
                       out.put.message());
          std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
          backoff = std::min<int64_t>(backoff * 2, 5000);
        }
      });
  _inflight.push_back(std::move(o));
  _pending_bytes = 0;
  _pending_since = -1;
  _t_encode += mono_s() - t0;
  return {};
}

// Commits finished objects in sequence order: all of them (`all`), else those whose PUT is done
// plus enough to keep at most put.concurrency objects in flight.
cresult<void> mirror::drain(bool all) {
  while (!_inflight.empty()) {
    inflight_object& o = _inflight.front();
    const bool must = all || _inflight.size() > static_cast<size_t>(_cfg.put_concurrency);
    if (!must && o.put.wait_for(std::chrono::seconds(0)) != std::future_status::ready) break;
    auto r = commit_one(o);
    if (!r) {
      if (r.message().rfind("conflict:", 0) == 0) {
        resync_inflight(r.message());
        continue;
      }
      return r;
    }
    _inflight.pop_front();
  }
  return {};
}

cresult<void> mirror::commit_one(inflight_object& o) {
  const double t0 = mono_s();
  auto done = o.put.get();
  const double t1 = mono_s();
  _t_put_wait += t1 - t0;
  if (!done.put) return make_error(errc::storage_error, done.put.message());
  o.written = true;
  o.commit.ranges = std::move(done.ranges);
  o.commit.object_size = done.size;
  const add_seconds_on_exit timing{_t_commit, t1};
  const metadata::mirror_commit& commit = o.commit;
  int64_t backoff = 50;
  for (int attempt = 1;; ++attempt) {
    auto c = _meta->commit_mirror_object(commit);
    if (c) break;
    if (c.code() == metadata::errc::fenced) return make_error(errc::fenced, c.message());
    if (c.code() == metadata::errc::conflict) {
      return make_error(errc::metadata_error,
                        "conflict: " + commit.object_key + ": " + c.message());
    }
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
  for (const auto& [key, info] : o.parts) {
    auto it = _parts.find(key);
    if (it == _parts.end()) continue;
    partition_state& st = it->second;
    st.committed_next = info.last + 1;
    st.newest_committed_ts = std::max(st.newest_committed_ts, info.newest_ts);
    st.records += info.records;
    st.bytes += info.bytes;
    if (st.records > 0) st.avg_record_bytes = static_cast<double>(st.bytes) / st.records;
    // The next uncommitted record's timestamp: the first pending one, if any is read.
    st.oldest_uncommitted_ts = st.pending.empty() ? -1 : st.pending.front().timestamp;
    for (const auto& later : _inflight) {
      auto p = later.parts.find(key);
      if (&later != &o && p != later.parts.end()) {
        st.oldest_uncommitted_ts = -1;  // unknown exactly; the in-flight objects are newer
        break;
      }
    }
    _metrics.add("streamhouse_mirror_records_total", part_labels(st),
                 static_cast<double>(info.records));
    _metrics.add("streamhouse_mirror_bytes_total", part_labels(st),
                 static_cast<double>(info.bytes));
  }
  _records_total += o.records;
  _bytes_total += commit.object_size;
  _metrics.add("streamhouse_mirror_commits_total", {}, 1);
  spdlog::debug("mirror {}: committed {} ({} bytes, {} records)", _cfg.name, commit.object_key,
                commit.object_size, o.records);
  return {};
}

// A partition whose log ends in offsets without records (transaction markers, aborted or
// compacted records) leaves the consumer's position past the last record copied. Once everything
// read from it is committed, a checkpoint-only commit moves its checkpoint to that position: no
// phantom lag, and a source group offset there can be synced. The archive's log still ends with
// the last record (see metadata_store::commit_mirror_object).
cresult<void> mirror::advance_idle_checkpoints() {
  std::set<part_key> busy;
  for (const auto& o : _inflight) {
    for (const auto& [k, info] : o.parts) busy.insert(k);
  }
  rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(8);
  for (const auto& [k, st] : _parts) {
    if (st.pending.empty() && !busy.count(k) && st.next_offset == st.committed_next) {
      rd_kafka_topic_partition_list_add(l, k.first.c_str(), k.second);
    }
  }
  metadata::mirror_commit commit;
  std::vector<std::pair<partition_state*, int64_t>> moved;
  if (l->cnt > 0 && rd_kafka_position(_rk.get(), l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < l->cnt; ++i) {
      const auto& e = l->elems[i];
      auto it = _parts.find(part_key(e.topic, e.partition));
      if (e.err || e.offset < 0 || it == _parts.end() || e.offset <= it->second.committed_next) {
        continue;
      }
      commit.checkpoints.push_back(checkpoint(e.topic, e.partition, e.offset));
      moved.emplace_back(&it->second, e.offset);
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  if (moved.empty()) return {};
  commit.fence = metadata::lease_fence{_member_lease, _member_epoch};
  const double t0 = mono_s();
  auto c = _meta->commit_mirror_object(commit);
  _t_commit += mono_s() - t0;
  if (!c) {
    if (c.code() == metadata::errc::fenced) return make_error(errc::fenced, c.message());
    if (c.code() == metadata::errc::conflict) {
      spdlog::warn("mirror {}: checkpoint: {}; re-reading the checkpoints", _cfg.name, c.message());
      std::set<part_key> parts;
      for (const auto& [st, off] : moved) parts.emplace(st->topic, st->partition);
      resync_partitions(parts);
      return {};
    }
    spdlog::warn("mirror {}: checkpoint commit failed (retried later): {}", _cfg.name, c.message());
    return {};
  }
  for (auto& [st, off] : moved) {
    spdlog::debug("mirror {}: {}-{} checkpoint moves over offsets without records to {}", _cfg.name,
                  st->topic, st->partition, off);
    st->committed_next = st->next_offset = off;
  }
  _metrics.add("streamhouse_mirror_commits_total", {}, 1);
  return {};
}

// The source answered OFFSET_OUT_OF_RANGE for a partition's fetch offset. On a first start
// (offset 0, no checkpoint) its log just starts later: move there. Otherwise the source's
// retention deleted records before they were mirrored: report the lost range (log and
// streamhouse_mirror_source_offsets_lost_total) and go on from the log start, leaving a gap. A
// source whose log ends before the position (the topic was recreated) is not copied further by
// this process: an operator must look.
void mirror::on_offset_reset(const part_key& key) {
  auto it = _parts.find(key);
  if (it == _parts.end()) return;
  partition_state& st = it->second;
  int64_t low = -1, high = -1;
  const rd_kafka_resp_err_t e =
      rd_kafka_query_watermark_offsets(_rk.get(), key.first.c_str(), key.second, &low, &high, 5000);
  // Where the fetch was: after the last record taken (pending ones are kept and committed).
  const int64_t from = st.next_offset >= 0 ? st.next_offset : 0;
  rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, key.first.c_str(), key.second);
  if (rd_kafka_error_t* ue = rd_kafka_incremental_unassign(_rk.get(), l)) {
    rd_kafka_error_destroy(ue);
  }
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR || from > high) {
    spdlog::error(
        "mirror {}: {}-{}: the source has no offset {} (its log ends at {}: {}); the partition is "
        "not copied further until this process restarts",
        _cfg.name, key.first, key.second, from, high,
        e != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(e) : "recreated or truncated?");
    rd_kafka_topic_partition_list_destroy(l);
    return;
  }
  if (st.committed_next < 0 && st.next_offset < 0) {
    spdlog::info("mirror {}: {}-{}: the source's log starts at {}", _cfg.name, key.first,
                 key.second, low);
  } else if (low > from) {
    spdlog::error(
        "mirror {}: {}-{}: the source's retention deleted offsets {}..{} before they were "
        "mirrored; going on from {}",
        _cfg.name, key.first, key.second, from, low - 1, low);
    _metrics.add("streamhouse_mirror_source_offsets_lost_total", part_labels(st),
                 static_cast<double>(low - from));
  }
  l->elems[0].offset = std::max(low, from);
  if (rd_kafka_error_t* ae = rd_kafka_incremental_assign(_rk.get(), l)) {
    spdlog::warn("mirror {}: re-assigning {}-{}: {}", _cfg.name, key.first, key.second,
                 rd_kafka_error_string(ae));
    rd_kafka_error_destroy(ae);
  }
  rd_kafka_topic_partition_list_destroy(l);
}

// Waits for every object in flight and forgets them. Objects whose PUT went through but which
// are not registered in the metadata (their commit was refused, or never tried) are deleted;
// when the metadata cannot say, they are left to the brokers' orphan sweep.
void mirror::discard_inflight() {
  std::vector<std::string> written;
  for (auto& o : _inflight) {
    if (o.put.valid()) o.written = static_cast<bool>(o.put.get().put);
    if (o.written) written.push_back(o.commit.object_key);
  }
  _inflight.clear();
  if (written.empty()) return;
  auto registered = _meta->registered_objects(written);
  if (!registered) {
    spdlog::warn("mirror {}: {} uncommitted object(s) left to the orphan sweep: {}", _cfg.name,
                 written.size(), registered.message());
    return;
  }
  const std::set<std::string> keep(registered->begin(), registered->end());
  size_t removed = 0;
  for (const auto& key : written) {
    if (keep.count(key)) continue;
    if (auto r = _store->remove(key); r) {
      ++removed;
    } else {
      spdlog::warn("mirror {}: deleting uncommitted object {}: {}", _cfg.name, key, r.message());
    }
  }
  if (removed > 0) {
    spdlog::info("mirror {}: deleted {} uncommitted object(s)", _cfg.name, removed);
    _metrics.add("streamhouse_mirror_objects_discarded_total", {}, static_cast<double>(removed));
  }
}

// Someone else wrote offsets we were about to commit (two processes briefly on one partition).
// Offsets are the source's, so nothing is lost: every object still in flight is abandoned (a later
// one must never commit past a hole) and deleted, and their partitions restart from the archive's
// checkpoint.
void mirror::resync_inflight(const std::string& why) {
  spdlog::warn("mirror {}: {}; re-reading the checkpoints of the partitions in flight", _cfg.name,
               why);
  std::set<part_key> parts;
  for (const auto& o : _inflight) {
    for (const auto& [k, info] : o.parts) parts.insert(k);
  }
  discard_inflight();
  resync_partitions(parts);
}

// Restarts the given partitions from their checkpoints in the archive (pending records dropped).
void mirror::resync_partitions(const std::set<part_key>& parts) {
  std::vector<std::pair<part_key, int64_t>> adds;
  for (const auto& k : parts) {
    auto it = _parts.find(k);
    if (it == _parts.end()) continue;
    adds.emplace_back(k, it->second.lease_epoch);
    drop_partition(k, false);
  }
  if (auto r = add_partitions(adds); !r) {
    spdlog::warn("mirror {}: re-adding {} partition(s): {}", _cfg.name, adds.size(), r.message());
  }
}

// Group offset sync copies the committed offsets of the source groups matching groups.regex
// (or listed in `groups`) into the archive for the partitions this process copies, at offsets it
// has already mirrored. A group is left alone while it is active on the archive: its coordinator
// lease "group/<id>" is held by a broker (members, or requests in the last minute), or the
// archive holds offsets for it that the mirror did not write (their commit metadata is not
// mirror_group_marker()): its consumers moved. The source is asked asynchronously (the answers
// arrive in poll_admin), so a slow or unreachable source never stalls the copy.
void mirror::start_group_sync() {
  if (_cfg.groups_regex.empty() && _cfg.groups.empty()) return;
  if (_parts.empty()) return;
  if (_group_requests > 0 && now_ms() - _group_sync_started < 30000) return;  // still running
  _group_requests = 0;
  _group_sync_started = now_ms();
  if (_cfg.groups_regex.empty()) {  // only `groups`: exactly those, no listing
    request_group_offsets(std::set<std::string>(_cfg.groups.begin(), _cfg.groups.end()));
    return;
  }
  rd_kafka_AdminOptions_t* opt =
      rd_kafka_AdminOptions_new(_rk.get(), RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
  char err[256];
  rd_kafka_AdminOptions_set_request_timeout(opt, 5000, err, sizeof(err));
  rd_kafka_ListConsumerGroups(_rk.get(), opt, _admin_queue);
  rd_kafka_AdminOptions_destroy(opt);
  ++_group_requests;
}

// The groups the source listed (plus those named in `groups`).
void mirror::on_groups_listed(rd_kafka_event_t* ev) {
  std::set<std::string> candidates(_cfg.groups.begin(), _cfg.groups.end());
  if (!rd_kafka_event_error(ev)) {
    const auto* r = rd_kafka_event_ListConsumerGroups_result(ev);
    size_t n = 0;
    const rd_kafka_ConsumerGroupListing_t** gs = rd_kafka_ListConsumerGroups_result_valid(r, &n);
    for (size_t i = 0; i < n; ++i) {
      candidates.insert(rd_kafka_ConsumerGroupListing_group_id(gs[i]));
    }
    size_t ne = 0;
    rd_kafka_ListConsumerGroups_result_errors(r, &ne);
    if (ne > 0 && !_list_groups_unsupported_logged) {
      spdlog::info("mirror {}: the source could not list its groups; syncing the ids in 'groups'",
                   _cfg.name);
      _list_groups_unsupported_logged = true;
    }
  }
  request_group_offsets(candidates);
}

// Asks the source for each candidate group's offsets of the partitions this process copies.
void mirror::request_group_offsets(const std::set<std::string>& candidates) {
  const std::regex re(_cfg.groups_regex.empty() ? std::string(".*") : _cfg.groups_regex,
                      std::regex::ECMAScript);
  for (const auto& g : candidates) {
    if (!std::regex_match(g, re) || g == "streamhouse-mirror-" + _cfg.name) continue;
    if (_moved_groups.count(g) || _parts.empty()) continue;
    rd_kafka_topic_partition_list_t* parts =
        rd_kafka_topic_partition_list_new(static_cast<int>(_parts.size()));
    for (const auto& [k, st] : _parts) {
      rd_kafka_topic_partition_list_add(parts, k.first.c_str(), k.second);
    }
    rd_kafka_ListConsumerGroupOffsets_t* req =
        rd_kafka_ListConsumerGroupOffsets_new(g.c_str(), parts);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_AdminOptions_t* opt =
        rd_kafka_AdminOptions_new(_rk.get(), RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    char err[256];
    rd_kafka_AdminOptions_set_request_timeout(opt, 5000, err, sizeof(err));
    rd_kafka_ListConsumerGroupOffsets(_rk.get(), &req, 1, opt, _admin_queue);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(opt);
    ++_group_requests;
  }
}

// One source group's committed offsets arrived: copy those already mirrored into the archive.
void mirror::on_group_offsets(rd_kafka_event_t* ev) {
  if (rd_kafka_event_error(ev)) return;
  const auto* r = rd_kafka_event_ListConsumerGroupOffsets_result(ev);
  size_t n = 0;
  const rd_kafka_group_result_t** gr = rd_kafka_ListConsumerGroupOffsets_result_groups(r, &n);
  for (size_t i = 0; i < n; ++i) {
    if (rd_kafka_group_result_error(gr[i])) continue;
    std::map<part_key, int64_t> source;
    const auto* pl = rd_kafka_group_result_partitions(gr[i]);
    for (int j = 0; pl && j < pl->cnt; ++j) {
      const auto& e = pl->elems[j];
      if (e.err || e.offset < 0) continue;
      auto it = _parts.find(part_key(e.topic, e.partition));
      // Only offsets already in the archive: a consumer moved there must find its record.
      if (it == _parts.end() || it->second.committed_next < e.offset) continue;
      source[it->first] = e.offset;
    }
    if (!source.empty()) sync_group(rd_kafka_group_result_name(gr[i]), source);
  }
}

// Writes one group's source offsets into the archive, unless the group is active there.
void mirror::sync_group(const std::string& g, const std::map<part_key, int64_t>& source) {
  const std::string marker = mirror_group_marker(_cfg.name);
  auto& last = _synced[g];
  bool changed = false;
  for (const auto& [k, off] : source) {
    if (!last.count(k) || last[k] != off) changed = true;
  }
  if (!changed) return;
  // Arbitrate with the archive's group coordinators through the group's lease.
  const std::string lease_name = "group/" + g;
  auto l =
      _meta->acquire_lease(lease_name, _writer_id, std::max<int64_t>(_cfg.lease_timeout_ms, 5000));
  if (!l) {
    spdlog::warn("mirror {}: group {}: lease: {}", _cfg.name, g, l.message());
    return;
  }
  if (l->owner != _writer_id) {
    if (_active_groups.insert(g).second) {
      spdlog::info(
          "mirror {}: group {} is active on the archive (coordinated by {}); not synced "
          "while it is",
          _cfg.name, g, l->owner);
    }
    return;
  }
  _active_groups.erase(g);
  auto archived = _meta->fetch_group_offsets(g);
  bool moved = false;
  if (archived) {
    for (const auto& a : *archived) {
      if (a.offset >= 0 && a.metadata != marker) moved = true;
    }
  }
  if (moved) {
    spdlog::info(
        "mirror {}: group {} has offsets committed on the archive by its own "
        "consumers; no longer synced",
        _cfg.name, g);
    _moved_groups.insert(g);
  } else if (archived) {
    std::vector<metadata::group_offset> offs;
    for (const auto& [k, off] : source) {
      metadata::group_offset go;
      go.topic = k.first;
      go.partition = k.second;
      go.offset = off;
      // A source offset past trailing transaction markers is past the archive's log end (it
      // ends with the last record): the offsets between hold no records, so the consumer
      // resumes at the log end, where the next mirrored record will follow.
      if (auto p = _meta->get_partition(k.first, k.second); p && p->high_watermark < off) {
        go.offset = p->high_watermark;
      }
      go.metadata = marker;
      offs.push_back(go);
    }
    auto c = _meta->commit_group_offsets(g, offs, metadata::lease_fence{l->name, l->epoch});
    if (c) {
      for (const auto& [k, off] : source) last[k] = off;
      _metrics.add("streamhouse_mirror_group_offsets_synced_total", {{"group", g}},
                   static_cast<double>(offs.size()));
      spdlog::info("mirror {}: group {}: {} offset(s) synced", _cfg.name, g, offs.size());
    } else {
      spdlog::warn("mirror {}: group {}: commit: {}", _cfg.name, g, c.message());
    }
  }
  (void)_meta->release_lease(l->name, _writer_id, l->epoch);
}

// The source's watermarks: librdkafka's cached ones (from fetch responses, no request); when it
// has none for the partition, a ListOffsets query (1 s at most, at most every 2 s per partition).
bool mirror::watermarks(partition_state& st, int64_t& low, int64_t& high) {
  if (rd_kafka_get_watermark_offsets(_rk.get(), st.topic.c_str(), st.partition, &low, &high) ==
          RD_KAFKA_RESP_ERR_NO_ERROR &&
      high >= 0) {
    return true;
  }
  // Asking costs a blocking round trip: only for a partition librdkafka has had time to fetch
  // (a fetch response brings the watermarks), at most every 2 s.
  const int64_t t = now_ms();
  if (t - st.assigned_at >= 3000 && t - st.queried_at >= 2000) {
    st.queried_at = t;
    int64_t l = -1, h = -1;
    if (rd_kafka_query_watermark_offsets(_rk.get(), st.topic.c_str(), st.partition, &l, &h, 1000) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      st.queried_low = l;
      st.queried_high = h;
    }
  }
  low = st.queried_low;
  high = st.queried_high;
  return high >= 0;
}

// Per-partition gauges from the source's watermarks, and with `log`, the periodic log lines.
void mirror::update_metrics(bool log) {
  const int64_t wall = wall_ms();
  int64_t lag_total = 0;
  std::vector<std::string> lines;
  for (auto& [key, st] : _parts) {
    int64_t low = 0, high = 0;
    if (!watermarks(st, low, high)) continue;
    const auto labels = part_labels(st);
    const int64_t lag = std::max<int64_t>(0, high - std::max(low, st.committed_next));
    lag_total += lag;
    const double lag_bytes = static_cast<double>(lag) * st.avg_record_bytes;
    _metrics.set("streamhouse_mirror_lag_records", labels, static_cast<double>(lag));
    _metrics.set("streamhouse_mirror_lag_bytes", labels, lag_bytes);
    _metrics.set("streamhouse_mirror_source_high_watermark", labels, static_cast<double>(high));
    _metrics.set("streamhouse_mirror_checkpoint_offset", labels,
                 static_cast<double>(st.committed_next));
    double age = -1;
    if (st.newest_committed_ts >= 0) {
      age = std::max<double>(0, (wall - st.newest_committed_ts) / 1000.0);
      _metrics.set("streamhouse_mirror_newest_record_age_seconds", labels, age);
    }
    // Time before the source's retention deletes the oldest record not yet mirrored. The oldest
    // un-mirrored record is the first one read and not committed, or, when none is read yet,
    // at least as new as the newest committed one.
    // Negative: the oldest un-mirrored record is already past the source's retention (at risk,
    // or gone); unknown (no timestamp seen yet): no value.
    std::optional<double> left;
    auto rit = _retention_ms.find(st.topic);
    const int64_t retention = rit == _retention_ms.end() ? -1 : rit->second;
    if (retention >= 0) {
      if (lag == 0) {
        left = retention / 1000.0;
      } else {
        int64_t oldest =
            st.oldest_uncommitted_ts >= 0 ? st.oldest_uncommitted_ts : st.newest_committed_ts;
        if (oldest >= 0) left = (oldest + retention - wall) / 1000.0;
      }
      if (left) _metrics.set("streamhouse_mirror_retention_left_seconds", labels, *left);
    }
    if (log && lag > 0) {
      lines.push_back(
          fmt::format("{}-{} lag {} records (~{:.0f} bytes), newest mirrored {} old, "
                      "retention left {}",
                      st.topic, st.partition, lag, lag_bytes,
                      age < 0 ? std::string("-") : fmt::format("{:.1f}s", age),
                      left ? fmt::format("{:.0f}s", *left) : std::string("unknown")));
    }
  }
  _metrics.set("streamhouse_mirror_lag_records_sum", {}, static_cast<double>(lag_total));
  const int64_t t = now_ms();
  if (_rate_at == 0) {
    _rate_at = t;
    _rate_records = _records_total;
    _rate_bytes = _bytes_total;
  }
  if (log) {
    const double secs = std::max<double>(1, t - _rate_at) / 1000.0;
    const double rps = (_records_total - _rate_records) / secs;
    const double bps = (_bytes_total - _rate_bytes) / secs;
    _metrics.set("streamhouse_mirror_records_per_second", {}, rps);
    _metrics.set("streamhouse_mirror_bytes_per_second", {}, bps);
    spdlog::info(
        "mirror {}: {} records ({} bytes) mirrored; {:.0f} records/s, {:.2f} MB/s; lag {} records "
        "over {} partitions ({} members)",
        _cfg.name, _records_total, _bytes_total, rps, bps / 1e6, lag_total, _parts.size(),
        _members);
    for (size_t i = 0; i < lines.size() && i < 20; ++i) {
      spdlog::info("mirror {}: {}", _cfg.name, lines[i]);
    }
    if (lines.size() > 20) {
      spdlog::info("mirror {}: ... and {} more lagging partitions", _cfg.name, lines.size() - 20);
    }
    _rate_at = t;
    _rate_records = _records_total;
    _rate_bytes = _bytes_total;
  }
  // "caught up": every partition we copy has its checkpoint at the source's end (the bench and
  // the tests wait for this line).
  if (!_parts.empty() && _pending_bytes == 0 && _inflight.empty()) {
    bool all = true;
    for (auto& [key, st] : _parts) {
      int64_t low = 0, high = -1;
      if (!watermarks(st, low, high)) {
        all = false;
        break;
      }
      // Without a checkpoint, an empty partition (nothing from its log start on) is caught up.
      // Trailing offsets without records were checkpointed by advance_idle_checkpoints().
      if (std::max(st.committed_next, low) < high) {
        all = false;
        break;
      }
    }
    if (all && !_caught_up_logged) {
      spdlog::info("mirror {}: caught up: {} partitions at the source's end, {} records mirrored",
                   _cfg.name, _parts.size(), _records_total);
      _caught_up_logged = true;
    } else if (!all) {
      _caught_up_logged = false;
    }
  }
}

cresult<void> mirror::run() {
  (void)_metrics.declare("streamhouse_mirror_records_total", metrics::metric_type::counter,
                         "Records committed into the archive.");
  (void)_metrics.declare("streamhouse_mirror_bytes_total", metrics::metric_type::counter,
                         "Record bytes (key, value, headers) committed into the archive.");
  (void)_metrics.declare("streamhouse_mirror_commits_total", metrics::metric_type::counter,
                         "Objects committed.");
  (void)_metrics.declare("streamhouse_mirror_lag_records", metrics::metric_type::gauge,
                         "Source high watermark minus the archive checkpoint.");
  (void)_metrics.declare("streamhouse_mirror_lag_bytes", metrics::metric_type::gauge,
                         "Lag in records times the partition's mean mirrored record size.");
  (void)_metrics.declare("streamhouse_mirror_newest_record_age_seconds",
                         metrics::metric_type::gauge,
                         "Age of the newest record mirrored (by its timestamp).");
  (void)_metrics.declare(
      "streamhouse_mirror_retention_left_seconds", metrics::metric_type::gauge,
      "Time before the source's retention.ms deletes the oldest record not yet mirrored.");
  (void)_metrics.declare("streamhouse_mirror_records_per_second", metrics::metric_type::gauge,
                         "Records committed per second over the last log interval.");
  (void)_metrics.declare("streamhouse_mirror_bytes_per_second", metrics::metric_type::gauge,
                         "Object bytes committed per second over the last log interval.");
  (void)_metrics.declare("streamhouse_mirror_source_offsets_lost_total",
                         metrics::metric_type::counter,
                         "Source offsets deleted by the source's retention before they were "
                         "mirrored (an upper bound: some may have held no record).");
  (void)_metrics.declare("streamhouse_mirror_objects_discarded_total",
                         metrics::metric_type::counter,
                         "Objects written but never committed (a conflict), deleted again.");
  (void)_metrics.declare("streamhouse_mirror_group_offsets_synced_total",
                         metrics::metric_type::counter, "Group offsets copied to the archive.");
  if (!_cfg.metrics_listener.empty()) {
    auto l = metrics::http_listener::start(_cfg.metrics_listener, _metrics);
    if (!l) return make_error(errc::invalid_config, "metrics.listener: " + l.message());
    _listener = std::move(*l);
    spdlog::info("mirror {}: metrics on {} (port {})", _cfg.name, _cfg.metrics_listener,
                 _listener->port());
  }
  if (auto r = open_stores(); !r) return r;
  if (auto r = open_source(); !r) return r;
  _writer_id = "mirror-" + key_safe(_cfg.name) + "-" + random_hex(12);
  {
    auto joined = join();
    if (!joined) return joined.error();
    if (!*joined) return {};  // stopped while waiting for a slot
  }
  if (auto r = discover(); !r) return r;
  if (auto r = balance(); !r) return r;
  int64_t last_discovery = now_ms();
  int64_t last_balance = now_ms();
  int64_t last_log = now_ms();
  int64_t last_metrics = now_ms();
  int64_t last_groups = now_ms() - _cfg.group_sync_interval_ms + 500;
  cresult<void> result;
  while (!_stop.load()) {
    int timeout = 100;
    if (_pending_since >= 0) {
      timeout =
          static_cast<int>(std::clamp<int64_t>(_pending_since + _cfg.flush_ms - now_ms(), 0, 100));
    }
    rd_kafka_message_t* msgs[2000];
    const double t0 = mono_s();
    const ssize_t n = rd_kafka_consume_batch_queue(_queue.get(), timeout, msgs, 2000);
    const double t1 = mono_s();
    _t_poll += t1 - t0;
    cresult<void> taken;
    for (ssize_t k = 0; k < n; ++k) {
      bool kept = false;
      if (taken) {
        auto t = take(msgs[k]);
        if (t) {
          kept = *t;
        } else {
          taken = t.error();
        }
      }
      if (!kept) rd_kafka_message_destroy(msgs[k]);
    }
    _t_take += mono_s() - t1;
    for (const auto& k : _offset_resets) on_offset_reset(k);
    _offset_resets.clear();
    if (!taken) {
      result = taken;
      break;
    }
    if (_pending_bytes >= _cfg.flush_bytes ||
        (_pending_since >= 0 && now_ms() - _pending_since >= _cfg.flush_ms)) {
      if (auto r = flush(); !r) {
        result = r;
        break;
      }
    }
    if (auto r = drain(false); !r) {
      result = r;
      break;
    }
    const int64_t t = now_ms();
    // Below our share, look for free partitions more often than the renewal period.
    const int64_t balance_every = _parts.size() * static_cast<size_t>(_members) < _wanted.size()
                                      ? std::min<int64_t>(_cfg.lease_timeout_ms / 3, 1000)
                                      : _cfg.lease_timeout_ms / 3;
    if (t - last_balance >= balance_every) {
      if (auto r = balance(); !r) {
        result = r;
        break;
      }
      last_balance = t;
    }
    if (t - last_discovery >= _cfg.discovery_interval_ms) {
      if (auto r = discover(); !r) {
        if (r.code() != errc::source_error) {
          result = r;
          break;
        }
        spdlog::warn("mirror {}: {}", _cfg.name, r.message());
      }
      last_discovery = t;
    }
    poll_admin();
    if (t - last_groups >= _cfg.group_sync_interval_ms) {
      start_group_sync();
      last_groups = now_ms();
    }
    if (t - last_metrics >= 200) {
      const add_seconds_on_exit timing{_t_periodic, mono_s()};
      if (auto r = advance_idle_checkpoints(); !r) {
        result = r;
        break;
      }
      const bool log = t - last_log >= _cfg.metrics_log_interval_ms;
      update_metrics(log);
      if (log) last_log = t;
      last_metrics = t;
    }
  }
  if (result) {
    if (auto r = flush(); !r) result = r;
  }
  if (result) {
    if (auto r = drain(true); !r) result = r;
  } else {
    discard_inflight();  // never leave a PUT thread (or an unreferenced object) behind
  }
  if (result) {
    // A clean stop hands everything over at once.
    std::vector<part_key> keys;
    for (const auto& [k, st] : _parts) keys.push_back(k);
    for (const auto& k : keys) drop_partition(k, true);
    (void)_meta->release_lease(_member_lease, _writer_id, _member_epoch);
    spdlog::info("mirror {}: stopped after {} records", _cfg.name, _records_total);
    spdlog::info(
        "mirror {}: mirror thread time: waiting for the source {:.2f} s, taking messages {:.2f} s, "
        "handing records to the encoders {:.2f} s, waiting for encoding+PUT {:.2f} s, committing "
        "{:.2f} s, metrics and idle checkpoints {:.2f} s",
        _cfg.name, _t_poll, _t_take, _t_encode, _t_put_wait, _t_commit, _t_periodic);
  }
  if (_listener) _listener->stop();
  return result;
}

}  // namespace

std::string mirror_group_marker(const std::string& mirror_name) {
  return "streamhouse-mirror:" + mirror_name;
}

cresult<void> run_mirror(const mirror_config& config, const std::atomic<bool>& stop) {
  mirror m(config, stop);
  return m.run();
}

}  // namespace sh::connector
