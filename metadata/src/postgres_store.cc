// PostgreSQL metadata_store.
//
// A pool of libpq connections (opened on demand, up to max_connections); each connection
// prepares the statements it uses once. A commit locks the partition rows it touches with
// SELECT ... FOR UPDATE ordered by (topic_key, partition) -- the same order in every broker, so
// concurrent commits never deadlock -- and does the whole commit in a fixed number of round trips
// (arrays + unnest) however many ranges the object holds.
//
// A transaction that fails because the connection was lost, or on a deadlock or serialization
// failure, is retried on a fresh connection with backoff. That is safe for commit_object even
// when the connection dropped during COMMIT: a retried commit of a registered object key returns
// the outcomes recorded the first time.
#include "postgres_store.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "migrations.h"
#include "store_util.h"

namespace sh::metadata::detail {
namespace {

// Serializes migrations of brokers that start at the same time (any constant unique to us).
constexpr int64_t k_migration_lock_key = 0x53484d455441;  // "SHMETA"

// ---- text encodings ----------------------------------------------------------------------

std::string hex_encode(const uint8_t* data, size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 0xf];
  }
  return out;
}

bool hex_decode(std::string_view hex, uint8_t* out, size_t size) {
  if (hex.size() != size * 2) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < size; ++i) {
    int hi = nibble(hex[2 * i]);
    int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

// A PostgreSQL array literal of text elements: {"a","b\"c"}.
std::string text_array(const std::vector<std::string_view>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

template <class Int>
std::string int_array(const std::vector<Int>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(items[i]);
  }
  out += '}';
  return out;
}

int64_t parse_i64(const char* s) {
  // Values come from our own BIGINT/INTEGER columns, so they always parse.
  return std::strtoll(s, nullptr, 10);
}

// ---- libpq wrappers ----------------------------------------------------------------------

class pg_result {
 public:
  explicit pg_result(PGresult* r) : _r(r) {}
  pg_result(pg_result&& other) noexcept : _r(std::exchange(other._r, nullptr)) {}
  pg_result(const pg_result&) = delete;
  pg_result& operator=(const pg_result&) = delete;
  pg_result& operator=(pg_result&&) = delete;
  ~pg_result() { PQclear(_r); }

  PGresult* get() const { return _r; }
  int rows() const { return PQntuples(_r); }
  bool null(int row, int col) const { return PQgetisnull(_r, row, col) != 0; }
  std::string text(int row, int col) const {
    return std::string(PQgetvalue(_r, row, col), static_cast<size_t>(PQgetlength(_r, row, col)));
  }
  int64_t i64(int row, int col) const { return parse_i64(PQgetvalue(_r, row, col)); }

 private:
  PGresult* _r;
};

// Statement parameters, all sent as text.
class params {
 public:
  params& add(int64_t v) {
    _values.push_back(std::to_string(v));
    return *this;
  }
  params& add(std::string v) {
    _values.push_back(std::move(v));
    return *this;
  }
  params& add(const char* v) { return add(std::string(v)); }
  params& add_null() {
    _values.emplace_back();
    _nulls.resize(_values.size());
    _nulls.back() = true;
    return *this;
  }
  std::vector<const char*> pointers() const {
    std::vector<const char*> out;
    out.reserve(_values.size());
    for (size_t i = 0; i < _values.size(); ++i) {
      out.push_back(i < _nulls.size() && _nulls[i] ? nullptr : _values[i].c_str());
    }
    return out;
  }

 private:
  std::vector<std::string> _values;
  std::vector<bool> _nulls;
};

struct statement {
  const char* name;
  const char* sql;
};

class pg_conn {
 public:
  static mresult<std::unique_ptr<pg_conn>> connect(const postgres_options& options) {
    std::string timeout = std::to_string(options.connect_timeout_s);
    // Defaults first: parameters expanded from the conninfo ("dbname", expand_dbname=1)
    // override them.
    const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
    const char* values[] = {timeout.c_str(), "streamhouse", options.conninfo.c_str(), nullptr};
    PGconn* c = PQconnectdbParams(keys, values, 1);
    auto conn = std::unique_ptr<pg_conn>(new pg_conn(c));
    if (c == nullptr) return make_error(errc::io_error, "postgresql: out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(c);
      while (!msg.empty() && msg.back() == '\n') msg.pop_back();
      return make_error(errc::io_error, "postgresql: connect: " + msg);
    }
    // Without this, libpq prints NOTICEs ("relation already exists, skipping") to stderr.
    PQsetNoticeProcessor(
        c, [](void*, const char*) {}, nullptr);
    return conn;
  }

  ~pg_conn() {
    if (_c != nullptr) PQfinish(_c);
  }

  bool broken() const { return PQstatus(_c) != CONNECTION_OK; }
  // Whether the last failure may succeed when the transaction is run again.
  bool retryable_failure() const { return _retryable; }
  const std::string& last_sqlstate() const { return _sqlstate; }
  const std::string& last_constraint() const { return _constraint; }
  void clear_failure() {
    _retryable = false;
    _sqlstate.clear();
    _constraint.clear();
  }
  PGconn* raw() const { return _c; }

  // A statement (or several) through the simple query protocol.
  mresult<void> exec(const char* sql, std::string_view what) {
    PGresult* r = PQexec(_c, sql);
    pg_result guard(r);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return failure(r, what);
    return {};
  }

  mresult<pg_result> query(const statement& stmt, const params& p) {
    if (!_prepared.contains(stmt.name)) {
      pg_result prep(PQprepare(_c, stmt.name, stmt.sql, 0, nullptr));
      if (PQresultStatus(prep.get()) != PGRES_COMMAND_OK) {
        return failure(prep.get(), std::string("prepare ") + stmt.name);
      }
      _prepared.insert(stmt.name);
    }
    auto ptrs = p.pointers();
    PGresult* r = PQexecPrepared(_c, stmt.name, static_cast<int>(ptrs.size()), ptrs.data(), nullptr,
                                 nullptr, 0);
    pg_result result(r);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return failure(r, stmt.name);
    return result;
  }

 private:
  explicit pg_conn(PGconn* c) : _c(c) {}

  error_info<errc> failure(PGresult* r, std::string_view what) {
    const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    const char* constraint =
        r != nullptr ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : nullptr;
    _sqlstate = state != nullptr ? state : "";
    _constraint = constraint != nullptr ? constraint : "";
    errc code = errc::io_error;
    if (_sqlstate == "23505") {
      code = errc::conflict;  // unique violation
    } else if (_sqlstate == "40001" || _sqlstate == "40P01" || _sqlstate == "55P03" ||
               _sqlstate == "57014" || _sqlstate.starts_with("53")) {
      code = errc::busy;  // serialization, deadlock, lock timeout, cancel, out of resources
    }
    _retryable = broken() || _sqlstate == "40001" || _sqlstate == "40P01" ||
                 _sqlstate.starts_with("08") || _sqlstate == "57P01" || _sqlstate == "57P02" ||
                 _sqlstate == "57P03";
    std::string msg = r != nullptr ? PQresultErrorMessage(r) : "";
    if (msg.empty()) msg = PQerrorMessage(_c);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    std::string text = "postgresql: ";
    text += what;
    text += ": ";
    text += msg;
    if (!_sqlstate.empty()) text += " (SQLSTATE " + _sqlstate + ")";
    return make_error(code, std::move(text));
  }

  PGconn* _c;
  std::set<std::string> _prepared;
  bool _retryable = false;
  std::string _sqlstate;
  std::string _constraint;
};

// A transaction on one connection that rolls back unless commit() succeeded.
class pg_txn {
 public:
  static mresult<pg_txn> begin(pg_conn& conn) {
    SH_META_CHECK(conn.exec("BEGIN", "begin transaction"));
    return pg_txn(&conn);
  }
  pg_txn(pg_txn&& other) noexcept : _conn(std::exchange(other._conn, nullptr)) {}
  pg_txn(const pg_txn&) = delete;
  pg_txn& operator=(const pg_txn&) = delete;
  pg_txn& operator=(pg_txn&&) = delete;
  ~pg_txn() {
    if (_conn != nullptr && !_conn->broken()) PQclear(PQexec(_conn->raw(), "ROLLBACK"));
  }
  mresult<void> commit() {
    pg_conn* conn = std::exchange(_conn, nullptr);
    return conn->exec("COMMIT", "commit");
  }

 private:
  explicit pg_txn(pg_conn* conn) : _conn(conn) {}
  pg_conn* _conn;
};

// ---- SQL ---------------------------------------------------------------------------------

constexpr const char* k_create_schema_version =
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER NOT NULL PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " applied_at_ms BIGINT NOT NULL)";

const statement k_lock_migrations{"sh_lock_migrations", "SELECT pg_advisory_xact_lock($1::bigint)"};
const statement k_select_schema_version{"sh_schema_version",
                                        "SELECT COALESCE(MAX(version), 0) FROM schema_version"};
const statement k_insert_schema_version{
    "sh_insert_schema_version",
    "INSERT INTO schema_version (version, name, applied_at_ms) VALUES ($1, $2, $3)"};

const statement k_select_topic_exists{
    "sh_topic_exists", "SELECT 1 FROM topics WHERE name = $1 AND deleted_at_ms IS NULL"};
const statement k_insert_topic{"sh_insert_topic",
                               "INSERT INTO topics (name, topic_id, partition_count, created_at_ms)"
                               " VALUES ($1, decode($2, 'hex'), $3, $4) RETURNING topic_key"};
const statement k_insert_topic_configs{
    "sh_insert_topic_configs",
    "INSERT INTO topic_configs (topic_key, name, value)"
    " SELECT $1, n, v FROM unnest($2::text[], $3::text[]) AS c(n, v)"};
const statement k_insert_partitions{"sh_insert_partitions",
                                    "INSERT INTO partitions (topic_key, partition)"
                                    " SELECT $1, generate_series(0, $2::integer - 1)"};
// Topics with their configs (one row per config, or one row with NULLs when there is none).
const statement k_select_topic{
    "sh_select_topic",
    "SELECT t.topic_key, t.name, encode(t.topic_id, 'hex'), t.partition_count, t.created_at_ms,"
    " c.name, c.value FROM topics t LEFT JOIN topic_configs c ON c.topic_key = t.topic_key"
    " WHERE t.name = $1 AND t.deleted_at_ms IS NULL"};
const statement k_select_topics{
    "sh_select_topics",
    "SELECT t.topic_key, t.name, encode(t.topic_id, 'hex'), t.partition_count, t.created_at_ms,"
    " c.name, c.value FROM topics t LEFT JOIN topic_configs c ON c.topic_key = t.topic_key"
    " WHERE t.deleted_at_ms IS NULL ORDER BY t.name COLLATE \"C\", t.topic_key"};
const statement k_select_partition{
    "sh_select_partition",
    "SELECT p.log_start_offset, p.high_watermark, p.max_timestamp FROM partitions p"
    " JOIN topics t ON t.topic_key = p.topic_key"
    " WHERE t.name = $1 AND t.deleted_at_ms IS NULL AND p.partition = $2"};

const statement k_insert_object{
    "sh_insert_object",
    "INSERT INTO objects (object_key, object_size, kind, state, created_at_ms)"
    " VALUES ($1, $2, 'ingest', 'live', $3) ON CONFLICT (object_key) DO NOTHING RETURNING 1"};
const statement k_select_object_size{"sh_object_size",
                                     "SELECT object_size FROM objects WHERE object_key = $1"};
// The orphan sweep's membership question, many keys per round trip ($1: a text[] literal).
const statement k_select_registered{
    "sh_select_registered", "SELECT object_key FROM objects WHERE object_key = ANY($1::text[])"};
const statement k_select_object_entries{
    "sh_object_entries",
    "SELECT t.name, e.partition, e.byte_offset, e.base_offset, e.last_offset"
    " FROM index_entries e JOIN topics t ON t.topic_key = e.topic_key WHERE e.object_key = $1"};
// Locks the partitions of a commit. ORDER BY is applied before the rows are locked, so every
// committer locks in (topic_key, partition) order.
const statement k_lock_partitions{
    "sh_lock_partitions",
    "SELECT t.name, p.partition, p.topic_key, p.high_watermark, p.log_start_offset,"
    " p.max_timestamp"
    " FROM partitions p JOIN topics t ON t.topic_key = p.topic_key"
    " WHERE t.deleted_at_ms IS NULL AND (t.name, p.partition) IN"
    "  (SELECT n, q FROM unnest($1::text[], $2::integer[]) AS v(n, q))"
    " ORDER BY p.topic_key, p.partition FOR UPDATE OF p"};
const statement k_insert_index_entries{
    "sh_insert_index_entries",
    "INSERT INTO index_entries (topic_key, partition, base_offset, last_offset, max_timestamp,"
    " record_count, object_key, byte_offset, byte_length, timestamp_watermark)"
    " SELECT k, q, b, l, ts, n, $1, bo, bl, w FROM unnest($2::bigint[], $3::integer[],"
    " $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[],"
    " $10::bigint[]) AS v(k, q, b, l, ts, n, bo, bl, w)"};
const statement k_select_by_timestamp{
    "sh_select_by_timestamp",
    "SELECT p.topic_key, e.base_offset, e.last_offset, e.max_timestamp, e.record_count,"
    " e.object_key, e.byte_offset, e.byte_length FROM partitions p"
    " JOIN topics t ON t.topic_key = p.topic_key"
    " LEFT JOIN LATERAL (SELECT * FROM index_entries i"
    "  WHERE i.topic_key = p.topic_key AND i.partition = p.partition"
    "  AND i.timestamp_watermark >= $3"
    "  ORDER BY i.timestamp_watermark, i.base_offset LIMIT 1) e ON true"
    " WHERE t.name = $1 AND t.deleted_at_ms IS NULL AND p.partition = $2"};
const statement k_update_partition_offsets{
    "sh_update_partition_offsets",
    "UPDATE partitions p SET log_start_offset = v.s, high_watermark = v.h, max_timestamp = v.m"
    " FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::bigint[], $5::bigint[])"
    " AS v(k, q, s, h, m)"
    " WHERE p.topic_key = v.k AND p.partition = v.q"};
const statement k_update_high_watermarks{
    "sh_update_high_watermarks",
    "UPDATE partitions p SET high_watermark = v.h, max_timestamp = v.m"
    " FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::bigint[]) AS v(k, q, h, m)"
    " WHERE p.topic_key = v.k AND p.partition = v.q"};
const statement k_select_producer_batches{
    "sh_select_producer_batches",
    "SELECT topic_key, partition, producer_id, producer_epoch, first_sequence, last_sequence,"
    " base_offset, last_offset FROM producer_sequences"
    " WHERE (topic_key, partition, producer_id) IN"
    "  (SELECT k, q, p FROM unnest($1::bigint[], $2::integer[], $3::bigint[]) AS v(k, q, p))"
    " ORDER BY topic_key, partition, producer_id, base_offset"};
const statement k_delete_producer_batches{
    "sh_delete_producer_batches",
    "DELETE FROM producer_sequences WHERE (topic_key, partition, producer_id) IN"
    " (SELECT k, q, p FROM unnest($1::bigint[], $2::integer[], $3::bigint[]) AS v(k, q, p))"};
const statement k_insert_producer_batches{
    "sh_insert_producer_batches",
    "INSERT INTO producer_sequences (topic_key, partition, producer_id, first_sequence,"
    " producer_epoch, last_sequence, base_offset, last_offset, updated_at_ms)"
    " SELECT k, q, p, f, e, l, b, o, $9 FROM unnest($1::bigint[], $2::integer[], $3::bigint[],"
    " $4::integer[], $5::smallint[], $6::integer[], $7::bigint[], $8::bigint[])"
    " AS v(k, q, p, f, e, l, b, o)"};
const statement k_select_partition_exists{
    "sh_partition_exists",
    "SELECT p.topic_key FROM partitions p JOIN topics t ON t.topic_key = p.topic_key"
    " WHERE t.name = $1 AND t.deleted_at_ms IS NULL AND p.partition = $2"};
const statement k_upsert_checkpoints{
    "sh_upsert_checkpoints",
    "INSERT INTO mirror_checkpoints (mirror_name, source_topic, source_partition, topic_key,"
    " partition, next_source_offset, lease_epoch, updated_at_ms)"
    " SELECT m, s, sp, k, q, n, $7, $8 FROM unnest($1::text[], $2::text[], $3::integer[],"
    " $4::bigint[], $5::integer[], $6::bigint[]) AS v(m, s, sp, k, q, n)"
    " ON CONFLICT (mirror_name, source_topic, source_partition) DO UPDATE SET"
    " topic_key = excluded.topic_key, partition = excluded.partition,"
    " next_source_offset = excluded.next_source_offset, lease_epoch = excluded.lease_epoch,"
    " updated_at_ms = excluded.updated_at_ms"};
const statement k_select_checkpoint{
    "sh_select_checkpoint",
    "SELECT c.mirror_name, c.source_topic, c.source_partition, t.name, c.partition,"
    " c.next_source_offset, c.updated_at_ms FROM mirror_checkpoints c"
    " JOIN topics t ON t.topic_key = c.topic_key"
    " WHERE c.mirror_name = $1 AND c.source_topic = $2 AND c.source_partition = $3"};
const statement k_select_checkpoints{
    "sh_select_checkpoints",
    "SELECT c.mirror_name, c.source_topic, c.source_partition, t.name, c.partition,"
    " c.next_source_offset, c.updated_at_ms FROM mirror_checkpoints c"
    " JOIN topics t ON t.topic_key = c.topic_key"
    " WHERE c.mirror_name = $1 ORDER BY c.source_topic COLLATE \"C\", c.source_partition"};

const statement k_next_producer_id{
    "sh_next_producer_id",
    "UPDATE id_counters SET value = value + 1 WHERE name = 'producer_id' RETURNING value - 1"};
const statement k_select_transactional_producer{
    "sh_select_transactional_producer",
    "SELECT producer_id, producer_epoch FROM producers WHERE transactional_id = $1 FOR UPDATE"};
const statement k_upsert_transactional_producer{
    "sh_upsert_transactional_producer",
    "INSERT INTO producers (producer_id, producer_epoch, transactional_id, created_at_ms,"
    " updated_at_ms) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (transactional_id) DO UPDATE SET"
    " producer_id = excluded.producer_id, producer_epoch = excluded.producer_epoch,"
    " updated_at_ms = excluded.updated_at_ms"};
const statement k_upsert_group{
    "sh_upsert_group",
    "INSERT INTO consumer_groups (group_id, created_at_ms, updated_at_ms) VALUES ($1, $2, $2)"
    " ON CONFLICT (group_id) DO UPDATE SET updated_at_ms = excluded.updated_at_ms"};
const statement k_select_partition_keys{
    "sh_select_partition_keys",
    "SELECT t.name, p.partition, p.topic_key FROM partitions p"
    " JOIN topics t ON t.topic_key = p.topic_key"
    " WHERE t.deleted_at_ms IS NULL AND (t.name, p.partition) IN"
    "  (SELECT n, q FROM unnest($1::text[], $2::integer[]) AS v(n, q))"};
const statement k_upsert_group_offsets{
    "sh_upsert_group_offsets",
    "INSERT INTO group_offsets (group_id, topic_key, partition, committed_offset, leader_epoch,"
    " metadata, commit_ts_ms)"
    " SELECT $1, k, q, o, e, m, ts FROM unnest($2::bigint[], $3::integer[], $4::bigint[],"
    " $5::integer[], $6::text[], $7::bigint[]) AS v(k, q, o, e, m, ts)"
    " ON CONFLICT (group_id, topic_key, partition) DO UPDATE SET"
    " committed_offset = excluded.committed_offset, leader_epoch = excluded.leader_epoch,"
    " metadata = excluded.metadata, commit_ts_ms = excluded.commit_ts_ms"};
const statement k_select_group_offsets{
    "sh_select_group_offsets",
    "SELECT t.name, o.partition, o.committed_offset, o.leader_epoch, o.metadata, o.commit_ts_ms"
    " FROM group_offsets o JOIN topics t ON t.topic_key = o.topic_key"
    " WHERE o.group_id = $1 AND t.deleted_at_ms IS NULL"
    " ORDER BY t.name COLLATE \"C\", o.partition"};
const statement k_select_groups{
    "sh_select_groups", "SELECT group_id FROM consumer_groups ORDER BY group_id COLLATE \"C\""};
const statement k_delete_group{"sh_delete_group",
                               "DELETE FROM consumer_groups WHERE group_id = $1 RETURNING 1"};

const statement k_lock_topic{
    "sh_lock_topic",
    "SELECT topic_key, partition_count FROM topics WHERE name = $1 AND deleted_at_ms IS NULL"
    " FOR UPDATE"};
const statement k_grow_topic{"sh_grow_topic",
                             "UPDATE topics SET partition_count = $2 WHERE topic_key = $1"};
const statement k_insert_more_partitions{
    "sh_insert_more_partitions",
    "INSERT INTO partitions (topic_key, partition)"
    " SELECT $1, generate_series($2::integer, $3::integer - 1)"};
const statement k_lock_partition{
    "sh_lock_partition",
    "SELECT p.topic_key, p.log_start_offset, p.high_watermark FROM partitions p"
    " JOIN topics t ON t.topic_key = p.topic_key"
    " WHERE t.name = $1 AND t.deleted_at_ms IS NULL AND p.partition = $2 FOR UPDATE OF p"};
const statement k_update_log_start{
    "sh_update_log_start",
    "UPDATE partitions SET log_start_offset = $3 WHERE topic_key = $1 AND partition = $2"};
const statement k_delete_index_below{
    "sh_delete_index_below",
    "DELETE FROM index_entries WHERE topic_key = $1 AND partition = $2 AND base_offset < $3"
    " AND last_offset < $3"};
const statement k_mark_topic_deleted{"sh_mark_topic_deleted",
                                     "UPDATE topics SET deleted_at_ms = $2 WHERE topic_key = $1"};
const statement k_delete_topic_partitions{"sh_delete_topic_partitions",
                                          "DELETE FROM partitions WHERE topic_key = $1"};
const statement k_delete_topic_configs{"sh_delete_topic_configs",
                                       "DELETE FROM topic_configs WHERE topic_key = $1"};

// ---- compaction swap and object garbage collection ----
const statement k_select_index_span{
    "sh_select_index_span",
    "SELECT base_offset, last_offset, max_timestamp, record_count, object_key, byte_offset,"
    " byte_length FROM index_entries WHERE topic_key = $1 AND partition = $2"
    " AND last_offset >= $3 AND base_offset <= $4 ORDER BY base_offset"};
const statement k_select_watermark_before{
    "sh_select_watermark_before",
    "SELECT timestamp_watermark FROM index_entries WHERE topic_key = $1 AND partition = $2"
    " AND base_offset < $3 ORDER BY base_offset DESC LIMIT 1"};
const statement k_insert_segment_object{
    "sh_insert_segment_object",
    "INSERT INTO objects (object_key, object_size, kind, state, created_at_ms)"
    " VALUES ($1, $2, 'segment', 'live', $3) ON CONFLICT (object_key) DO NOTHING RETURNING 1"};
const statement k_delete_index_span{
    "sh_delete_index_span",
    "DELETE FROM index_entries WHERE topic_key = $1 AND partition = $2"
    " AND base_offset >= $3 AND base_offset <= $4"};
const statement k_insert_index_entry_one{
    "sh_insert_index_entry_one",
    "INSERT INTO index_entries (topic_key, partition, base_offset, last_offset, max_timestamp,"
    " record_count, object_key, byte_offset, byte_length, timestamp_watermark)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"};
// delete_after_ms holds the time the object lost its last index row; the collector adds the
// grace period.
const statement k_mark_unreferenced{
    "sh_mark_unreferenced",
    "UPDATE objects SET state = 'deleting', delete_after_ms = $2 WHERE object_key = $1"
    " AND state = 'live' AND NOT EXISTS (SELECT 1 FROM index_entries WHERE object_key = $1)"};
const statement k_select_unreferenced{
    "sh_select_unreferenced",
    "SELECT object_key, object_size, delete_after_ms FROM objects"
    " WHERE state = 'deleting' AND delete_after_ms <= $1"
    " ORDER BY delete_after_ms, object_key COLLATE \"C\" LIMIT $2"};
const statement k_lock_object_state{
    "sh_lock_object_state",
    "SELECT state, EXISTS (SELECT 1 FROM index_entries WHERE object_key = $1)::integer"
    " FROM objects WHERE object_key = $1 FOR UPDATE"};
const statement k_delete_object{"sh_delete_object", "DELETE FROM objects WHERE object_key = $1"};
const statement k_select_objects_below{
    "sh_select_objects_below",
    "SELECT DISTINCT object_key FROM index_entries WHERE topic_key = $1 AND partition = $2"
    " AND base_offset < $3 AND last_offset < $3"};
const statement k_select_topic_objects{
    "sh_select_topic_objects",
    "SELECT DISTINCT object_key FROM index_entries WHERE topic_key = $1"};

const statement k_notify{"sh_notify", "SELECT pg_notify($1, $2)"};

// Lease times come from the server's clock, so brokers' clocks don't matter.
#define SH_PG_NOW_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"
const statement k_select_lease{
    "sh_select_lease",
    "SELECT name, owner, epoch, acquired_at_ms, expires_at_ms FROM leases WHERE name = $1"};
// Takes the lease when free, expired or ours; returns no row when someone else holds it.
const statement k_acquire_lease{
    "sh_acquire_lease",
    "INSERT INTO leases AS l (name, owner, epoch, acquired_at_ms, expires_at_ms)"
    " VALUES ($1, $2, 1, " SH_PG_NOW_MS ", " SH_PG_NOW_MS
    " + $3::bigint)"
    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
    "  epoch = CASE WHEN l.owner = excluded.owner THEN l.epoch ELSE l.epoch + 1 END,"
    "  acquired_at_ms = CASE WHEN l.owner = excluded.owner THEN l.acquired_at_ms"
    "   ELSE excluded.acquired_at_ms END,"
    "  expires_at_ms = excluded.expires_at_ms"
    " WHERE l.owner = excluded.owner OR l.expires_at_ms <= " SH_PG_NOW_MS
    " RETURNING name, owner, epoch, acquired_at_ms, expires_at_ms"};
// $4: the new expiry relative to now, or NULL to release (expires_at_ms = 0).
const statement k_set_lease_expiry{"sh_set_lease_expiry",
                                   "UPDATE leases SET expires_at_ms = COALESCE(" SH_PG_NOW_MS
                                   " + $4::bigint, 0)"
                                   " WHERE name = $1 AND owner = $2 AND epoch = $3"
                                   " RETURNING name, owner, epoch, acquired_at_ms, expires_at_ms"};
// A write under a lease locks the lease row (shared) so a takeover waits for it to commit.
const statement k_check_fence{"sh_check_fence",
                              "SELECT epoch FROM leases WHERE name = $1 FOR SHARE"};
const statement k_register_broker{
    "sh_register_broker",
    "INSERT INTO brokers AS b (node_id, endpoints, rack, incarnation, registered_at_ms,"
    " heartbeat_at_ms) VALUES ($1, $2, $3, $4, " SH_PG_NOW_MS ", " SH_PG_NOW_MS
    ")"
    " ON CONFLICT (node_id) DO UPDATE SET endpoints = excluded.endpoints, rack = excluded.rack,"
    "  incarnation = excluded.incarnation,"
    "  registered_at_ms = CASE WHEN b.incarnation = excluded.incarnation THEN b.registered_at_ms"
    "   ELSE excluded.registered_at_ms END,"
    "  heartbeat_at_ms = excluded.heartbeat_at_ms"
    " WHERE b.incarnation = excluded.incarnation OR b.heartbeat_at_ms <= " SH_PG_NOW_MS
    " - $5::bigint"
    " RETURNING node_id, endpoints, rack, incarnation, registered_at_ms, heartbeat_at_ms"};
const statement k_heartbeat_broker{"sh_heartbeat_broker",
                                   "UPDATE brokers SET heartbeat_at_ms = " SH_PG_NOW_MS
                                   " WHERE node_id = $1 AND incarnation = $2 RETURNING 1"};
const statement k_delete_broker{
    "sh_delete_broker", "DELETE FROM brokers WHERE node_id = $1 AND incarnation = $2 RETURNING 1"};
const statement k_select_live_brokers{
    "sh_select_live_brokers",
    "SELECT node_id, endpoints, rack, incarnation, registered_at_ms, heartbeat_at_ms"
    " FROM brokers WHERE heartbeat_at_ms >= " SH_PG_NOW_MS " - $1::bigint ORDER BY node_id"};
#undef SH_PG_NOW_MS

// One row with NULL entry columns when the partition exists but has no matching entries; no row
// when the partition does not exist. The entry lookup is a primary-key seek + range scan.
const statement k_select_index{
    "sh_select_index",
    "SELECT e.base_offset, e.last_offset, e.max_timestamp, e.record_count, e.object_key,"
    " e.byte_offset, e.byte_length FROM partitions p JOIN topics t ON t.topic_key = p.topic_key"
    " LEFT JOIN LATERAL (SELECT * FROM index_entries i"
    "  WHERE i.topic_key = p.topic_key AND i.partition = p.partition AND i.last_offset >= $3"
    "  AND i.base_offset >= COALESCE((SELECT j.base_offset FROM index_entries j"
    "   WHERE j.topic_key = p.topic_key AND j.partition = p.partition AND j.base_offset <= $3"
    "   ORDER BY j.base_offset DESC LIMIT 1), $3)"
    "  ORDER BY i.base_offset LIMIT $4) e ON true"
    " WHERE t.name = $1 AND t.deleted_at_ms IS NULL AND p.partition = $2"
    " ORDER BY e.base_offset"};

// Rows of k_select_topic(s) -> topics, in row order.
std::vector<topic_info> topics_from_rows(const pg_result& r) {
  std::vector<topic_info> out;
  int64_t last_key = -1;
  for (int i = 0; i < r.rows(); ++i) {
    int64_t key = r.i64(i, 0);
    if (out.empty() || key != last_key) {
      topic_info t;
      t.name = r.text(i, 1);
      hex_decode(r.text(i, 2), t.id.data(), t.id.size());
      t.partition_count = static_cast<int32_t>(r.i64(i, 3));
      t.created_at_ms = r.i64(i, 4);
      out.push_back(std::move(t));
      last_key = key;
    }
    if (!r.null(i, 5)) out.back().configs.emplace(r.text(i, 5), r.text(i, 6));
  }
  return out;
}

mresult<void> migrate(pg_conn& conn) {
  auto migrations = postgresql_migrations();
  int known = migrations.empty() ? 0 : migrations.back().version;
  SH_META_TRY(txn, pg_txn::begin(conn));
  SH_META_CHECK(conn.query(k_lock_migrations, params().add(k_migration_lock_key)));
  SH_META_CHECK(conn.exec(k_create_schema_version, "create schema_version"));
  SH_META_TRY(current_rows, conn.query(k_select_schema_version, params()));
  int64_t current = current_rows.i64(0, 0);
  if (current > known) {
    return make_error(errc::schema_too_new, "metadata database schema version " +
                                                std::to_string(current) +
                                                " is newer than this binary supports (" +
                                                std::to_string(known) + "); upgrade streamhouse");
  }
  for (const migration& m : migrations) {
    if (m.version <= current) continue;
    std::string sql(m.sql);
    SH_META_CHECK(conn.exec(sql.c_str(), "apply migration " + std::to_string(m.version) + " (" +
                                             std::string(m.name) + ")"));
    SH_META_CHECK(conn.query(k_insert_schema_version,
                             params().add(m.version).add(std::string(m.name)).add(now_ms())));
  }
  return txn.commit();
}

class postgres_store final : public metadata_store {
 public:
  postgres_store(postgres_options options, std::unique_ptr<pg_conn> first, std::string description,
                 std::string channel)
      : _options(std::move(options)),
        _description(std::move(description)),
        _channel(std::move(channel)) {
    _idle.push_back(std::move(first));
    _open = 1;
  }

  ~postgres_store() override { stop_listener(); }

  mresult<topic_info> create_topic(const std::string& name, int32_t partitions,
                                   const std::map<std::string, std::string>& configs) override {
    SH_META_CHECK(validate_create_topic(name, partitions, configs));
    return with_conn([&](pg_conn& c) -> mresult<topic_info> {
      SH_META_TRY(txn, pg_txn::begin(c));
      SH_META_TRY(exists, c.query(k_select_topic_exists, params().add(name)));
      if (exists.rows() > 0) {
        return make_error(errc::already_exists, "topic '" + name + "' already exists");
      }
      topic_info t;
      t.name = name;
      t.partition_count = partitions;
      t.configs = configs;
      t.created_at_ms = now_ms();
      t.id = random_topic_id();
      auto inserted = c.query(k_insert_topic, params()
                                                  .add(name)
                                                  .add(hex_encode(t.id.data(), t.id.size()))
                                                  .add(partitions)
                                                  .add(t.created_at_ms));
      if (!inserted) {
        // A concurrent create of the same name won the unique index.
        if (c.last_constraint() == "topics_live_name") {
          return make_error(errc::already_exists, "topic '" + name + "' already exists");
        }
        return inserted.error();
      }
      int64_t key = inserted->i64(0, 0);
      if (!configs.empty()) {
        std::vector<std::string_view> names;
        std::vector<std::string_view> values;
        for (const auto& [k, v] : configs) {
          names.push_back(k);
          values.push_back(v);
        }
        SH_META_CHECK(c.query(k_insert_topic_configs,
                              params().add(key).add(text_array(names)).add(text_array(values))));
      }
      SH_META_CHECK(c.query(k_insert_partitions, params().add(key).add(partitions)));
      SH_META_CHECK(txn.commit());
      return t;
    });
  }

  mresult<std::optional<topic_info>> get_topic(const std::string& name) override {
    return with_conn([&](pg_conn& c) -> mresult<std::optional<topic_info>> {
      SH_META_TRY(r, c.query(k_select_topic, params().add(name)));
      auto topics = topics_from_rows(r);
      if (topics.empty()) return std::optional<topic_info>();
      return std::optional<topic_info>(std::move(topics.front()));
    });
  }

  mresult<std::vector<topic_info>> list_topics() override {
    return with_conn([&](pg_conn& c) -> mresult<std::vector<topic_info>> {
      SH_META_TRY(r, c.query(k_select_topics, params()));
      return topics_from_rows(r);
    });
  }

  mresult<partition_state> get_partition(const std::string& topic, int32_t partition) override {
    return with_conn([&](pg_conn& c) -> mresult<partition_state> {
      SH_META_TRY(r, c.query(k_select_partition, params().add(topic).add(partition)));
      if (r.rows() == 0) return not_found(topic, partition);
      return partition_state{r.i64(0, 0), r.i64(0, 1), r.i64(0, 2)};
    });
  }

  mresult<topic_info> create_partitions(const std::string& topic, int32_t new_count) override {
    return with_conn([&](pg_conn& c) -> mresult<topic_info> {
      SH_META_TRY(txn, pg_txn::begin(c));
      SH_META_TRY(t, c.query(k_lock_topic, params().add(topic)));
      if (t.rows() == 0) return make_error(errc::not_found, "unknown topic '" + topic + "'");
      int64_t key = t.i64(0, 0);
      auto count = static_cast<int32_t>(t.i64(0, 1));
      if (new_count <= count || new_count > max_partition_count) {
        return make_error(errc::invalid_argument,
                          "topic '" + topic + "' has " + std::to_string(count) +
                              " partitions; the new count must be above that and at most " +
                              std::to_string(max_partition_count));
      }
      SH_META_CHECK(c.query(k_grow_topic, params().add(key).add(new_count)));
      SH_META_CHECK(c.query(k_insert_more_partitions, params().add(key).add(count).add(new_count)));
      SH_META_TRY(r, c.query(k_select_topic, params().add(topic)));
      auto topics = topics_from_rows(r);
      SH_META_CHECK(txn.commit());
      if (topics.empty()) return make_error(errc::io_error, "postgresql: grown topic vanished");
      return std::move(topics.front());
    });
  }

  mresult<topic_info> set_topic_configs(
      const std::string& name, const std::map<std::string, std::string>& configs) override {
    SH_META_CHECK(validate_configs(configs));
    return with_conn([&](pg_conn& c) -> mresult<topic_info> {
      SH_META_TRY(txn, pg_txn::begin(c));
      SH_META_TRY(t, c.query(k_lock_topic, params().add(name)));
      if (t.rows() == 0) return make_error(errc::not_found, "unknown topic '" + name + "'");
      int64_t key = t.i64(0, 0);
      SH_META_CHECK(c.query(k_delete_topic_configs, params().add(key)));
      if (!configs.empty()) {
        std::vector<std::string_view> names;
        std::vector<std::string_view> values;
        for (const auto& [k, v] : configs) {
          names.push_back(k);
          values.push_back(v);
        }
        SH_META_CHECK(c.query(k_insert_topic_configs,
                              params().add(key).add(text_array(names)).add(text_array(values))));
      }
      SH_META_TRY(r, c.query(k_select_topic, params().add(name)));
      auto topics = topics_from_rows(r);
      SH_META_CHECK(txn.commit());
      if (topics.empty()) return make_error(errc::io_error, "postgresql: altered topic vanished");
      return std::move(topics.front());
    });
  }

  mresult<int64_t> delete_records(const std::string& topic, int32_t partition,
                                  int64_t offset) override {
    return with_conn([&](pg_conn& c) -> mresult<int64_t> {
      SH_META_TRY(txn, pg_txn::begin(c));
      SH_META_TRY(p, c.query(k_lock_partition, params().add(topic).add(partition)));
      if (p.rows() == 0) return not_found(topic, partition);
      int64_t key = p.i64(0, 0);
      int64_t log_start = p.i64(0, 1);
      int64_t hwm = p.i64(0, 2);
      int64_t target = offset == -1 ? hwm : offset;
      if (target < -1 || target > hwm) {
        return make_error(errc::invalid_argument,
                          "offset " + std::to_string(target) + " is outside " + topic + "-" +
                              std::to_string(partition) + " (high watermark " +
                              std::to_string(hwm) + ")");
      }
      if (target <= log_start) return log_start;
      SH_META_CHECK(c.query(k_update_log_start, params().add(key).add(partition).add(target)));
      SH_META_TRY(dropped,
                  c.query(k_select_objects_below, params().add(key).add(partition).add(target)));
      SH_META_CHECK(c.query(k_delete_index_below, params().add(key).add(partition).add(target)));
      SH_META_CHECK(mark_unreferenced(c, dropped));
      SH_META_CHECK(txn.commit());
      return target;
    });
  }

  mresult<void> replace_with_segment(const segment_replacement& r) override {
    SH_META_CHECK(validate_segment_replacement(r));
    return with_conn([&](pg_conn& c) -> mresult<void> {
      SH_META_TRY(txn, pg_txn::begin(c));
      SH_META_CHECK(check_fence(c, r.fence));
      // Locks the partition row: commits and DeleteRecords of this partition wait for the swap.
      SH_META_TRY(p, c.query(k_lock_partition, params().add(r.topic).add(r.partition)));
      if (p.rows() == 0) return not_found(r.topic, r.partition);
      int64_t key = p.i64(0, 0);
      SH_META_TRY(
          rows, c.query(k_select_index_span,
                        params().add(key).add(r.partition).add(r.first_offset).add(r.last_offset)));
      if (static_cast<size_t>(rows.rows()) != r.replaced.size()) {
        return make_error(errc::conflict, "index of " + r.topic + "-" +
                                              std::to_string(r.partition) +
                                              " changed under compaction");
      }
      for (int i = 0; i < rows.rows(); ++i) {
        index_entry e{rows.i64(i, 0),
                      rows.i64(i, 1),
                      rows.i64(i, 2),
                      rows.i64(i, 3),
                      rows.text(i, 4),
                      static_cast<uint64_t>(rows.i64(i, 5)),
                      static_cast<uint64_t>(rows.i64(i, 6))};
        if (!same_index_entry(e, r.replaced[static_cast<size_t>(i)])) {
          return make_error(errc::conflict, "index of " + r.topic + "-" +
                                                std::to_string(r.partition) +
                                                " changed under compaction");
        }
      }
      int64_t watermark = -1;
      {
        SH_META_TRY(w, c.query(k_select_watermark_before,
                               params().add(key).add(r.partition).add(r.first_offset)));
        if (w.rows() > 0) watermark = w.i64(0, 0);
      }
      int64_t now = now_ms();
      SH_META_TRY(
          inserted,
          c.query(k_insert_segment_object,
                  params().add(r.segment_key).add(static_cast<int64_t>(r.segment_size)).add(now)));
      if (inserted.rows() == 0) {
        return make_error(errc::conflict, "object '" + r.segment_key + "' is already registered");
      }
      SH_META_CHECK(
          c.query(k_delete_index_span,
                  params().add(key).add(r.partition).add(r.first_offset).add(r.last_offset)));
      for (const index_entry& e : r.entries) {
        watermark = std::max(watermark, e.max_timestamp);
        SH_META_CHECK(
            c.query(k_insert_index_entry_one, params()
                                                  .add(key)
                                                  .add(r.partition)
                                                  .add(e.base_offset)
                                                  .add(e.last_offset)
                                                  .add(e.max_timestamp)
                                                  .add(e.record_count)
                                                  .add(r.segment_key)
                                                  .add(static_cast<int64_t>(e.byte_offset))
                                                  .add(static_cast<int64_t>(e.byte_length))
                                                  .add(watermark)));
      }
      std::set<std::string> old_objects;
      for (const index_entry& e : r.replaced) old_objects.insert(e.object_key);
      for (const std::string& object : old_objects) {
        SH_META_CHECK(c.query(k_mark_unreferenced, params().add(object).add(now)));
      }
      return txn.commit();
    });
  }

  mresult<std::vector<unreferenced_object>> list_unreferenced_objects(
      int64_t unreferenced_before_ms, size_t max_objects) override {
    int64_t limit = max_objects > static_cast<size_t>(std::numeric_limits<int64_t>::max())
                        ? std::numeric_limits<int64_t>::max()
                        : static_cast<int64_t>(max_objects);
    return with_conn([&](pg_conn& c) -> mresult<std::vector<unreferenced_object>> {
      SH_META_TRY(r,
                  c.query(k_select_unreferenced, params().add(unreferenced_before_ms).add(limit)));
      std::vector<unreferenced_object> out;
      for (int i = 0; i < r.rows(); ++i) {
        out.push_back({r.text(i, 0), static_cast<uint64_t>(r.i64(i, 1)), r.i64(i, 2)});
      }
      return out;
    });
  }

  mresult<void> forget_object(const std::string& object_key) override {
    return with_conn([&](pg_conn& c) -> mresult<void> {
      SH_META_TRY(txn, pg_txn::begin(c));
      SH_META_TRY(r, c.query(k_lock_object_state, params().add(object_key)));
      if (r.rows() == 0) return {};
      if (r.text(0, 0) != "deleting" || r.i64(0, 1) != 0) {
        return make_error(errc::conflict, "object '" + object_key + "' is still referenced");
      }
      SH_META_CHECK(c.query(k_delete_object, params().add(object_key)));
      return txn.commit();
    });
  }

  mresult<void> delete_topic(const std::string& name) override {
    return with_conn([&](pg_conn& c) -> mresult<void> {
      SH_META_TRY(txn, pg_txn::begin(c));
      SH_META_TRY(t, c.query(k_lock_topic, params().add(name)));
      if (t.rows() == 0) return make_error(errc::not_found, "unknown topic '" + name + "'");
      int64_t key = t.i64(0, 0);
      SH_META_CHECK(c.query(k_mark_topic_deleted, params().add(key).add(now_ms())));
      SH_META_TRY(dropped, c.query(k_select_topic_objects, params().add(key)));
      // Cascades to index entries, group offsets, producer state and mirror checkpoints.
      SH_META_CHECK(c.query(k_delete_topic_partitions, params().add(key)));
      SH_META_CHECK(mark_unreferenced(c, dropped));
      SH_META_CHECK(c.query(k_delete_topic_configs, params().add(key)));
      return txn.commit();
    });
  }

  mresult<std::vector<range_outcome>> commit_object(const object_commit& commit) override {
    SH_META_CHECK(validate_commit(commit));
    return with_conn([&](pg_conn& c) -> mresult<std::vector<range_outcome>> {
      SH_META_TRY(txn, pg_txn::begin(c));
      SH_META_TRY(inserted,
                  c.query(k_insert_object, params()
                                               .add(commit.object_key)
                                               .add(static_cast<int64_t>(commit.object_size))
                                               .add(now_ms())));
      if (inserted.rows() == 0) {
        SH_META_TRY(size, c.query(k_select_object_size, params().add(commit.object_key)));
        if (size.rows() == 0 || static_cast<uint64_t>(size.i64(0, 0)) != commit.object_size) {
          return make_error(errc::conflict, "object '" + commit.object_key +
                                                "' is already registered with another size");
        }
        return replay_commit(c, commit);
      }

      // Lock every partition the commit touches, in the global order.
      std::vector<std::string_view> names;
      std::vector<int32_t> parts;
      std::set<std::pair<std::string_view, int32_t>> wanted;
      for (const range_commit& r : commit.ranges) {
        if (!is_valid_topic_name(r.topic) || r.partition < 0) continue;
        if (wanted.emplace(r.topic, r.partition).second) {
          names.push_back(r.topic);
          parts.push_back(r.partition);
        }
      }
      struct locked {
        int64_t topic_key;
        int64_t next_offset;
        int64_t max_timestamp;
        bool touched = false;
      };
      std::map<std::pair<std::string, int32_t>, locked> partitions;
      if (!names.empty()) {
        SH_META_TRY(rows, c.query(k_lock_partitions,
                                  params().add(text_array(names)).add(int_array(parts))));
        for (int i = 0; i < rows.rows(); ++i) {
          partitions.emplace(std::pair(rows.text(i, 0), static_cast<int32_t>(rows.i64(i, 1))),
                             locked{rows.i64(i, 2), rows.i64(i, 3), rows.i64(i, 5)});
        }
      }

      std::set<producer_key> wanted_producers;
      for (const range_commit& r : commit.ranges) {
        auto it = partitions.find(std::pair(r.topic, r.partition));
        if (it == partitions.end()) continue;
        wanted_producers.merge(producer_keys(it->second.topic_key, r));
      }
      producer_states producers;
      SH_META_CHECK(load_producers(c, wanted_producers, producers));
      std::set<producer_key> touched_producers;

      // Assign offsets in request order (which is also each partition's order).
      std::vector<range_outcome> outcomes(commit.ranges.size());
      std::vector<int64_t> keys, bases, lasts, timestamps, counts, byte_offsets, byte_lengths,
          watermarks;
      std::vector<int32_t> entry_parts;
      for (size_t i = 0; i < commit.ranges.size(); ++i) {
        const range_commit& r = commit.ranges[i];
        auto it = partitions.find(std::pair(r.topic, r.partition));
        if (it == partitions.end()) {
          outcomes[i].status = range_status::unknown_topic_or_partition;
          continue;
        }
        locked& p = it->second;
        sequence_verdict verdict = check_sequences(producers, p.topic_key, r);
        if (verdict.status != range_status::ok) {
          outcomes[i] = range_outcome{verdict.status, verdict.base_offset, verdict.last_offset};
          continue;
        }
        int64_t count = range_offset_count(r);
        if (p.next_offset > std::numeric_limits<int64_t>::max() - count) {
          return make_error(errc::conflict, "offsets of " + r.topic + "-" +
                                                std::to_string(r.partition) + " would overflow");
        }
        outcomes[i].base_offset = p.next_offset;
        outcomes[i].last_offset = p.next_offset + count - 1;
        p.next_offset += count;
        p.touched = true;
        keys.push_back(p.topic_key);
        entry_parts.push_back(r.partition);
        bases.push_back(outcomes[i].base_offset);
        lasts.push_back(outcomes[i].last_offset);
        timestamps.push_back(range_max_timestamp(r));
        p.max_timestamp = std::max(p.max_timestamp, timestamps.back());
        watermarks.push_back(p.max_timestamp);
        counts.push_back(count);
        byte_offsets.push_back(static_cast<int64_t>(r.byte_offset));
        byte_lengths.push_back(static_cast<int64_t>(r.byte_length));
        record_sequences(producers, touched_producers, p.topic_key, r, outcomes[i].base_offset);
      }
      if (!keys.empty()) {
        SH_META_CHECK(c.query(k_insert_index_entries, params()
                                                          .add(commit.object_key)
                                                          .add(int_array(keys))
                                                          .add(int_array(entry_parts))
                                                          .add(int_array(bases))
                                                          .add(int_array(lasts))
                                                          .add(int_array(timestamps))
                                                          .add(int_array(counts))
                                                          .add(int_array(byte_offsets))
                                                          .add(int_array(byte_lengths))
                                                          .add(int_array(watermarks))));
        std::vector<int64_t> hk, hw, hm;
        std::vector<int32_t> hp;
        for (const auto& [id, p] : partitions) {
          if (!p.touched) continue;
          hk.push_back(p.topic_key);
          hp.push_back(id.second);
          hw.push_back(p.next_offset);
          hm.push_back(p.max_timestamp);
        }
        SH_META_CHECK(c.query(
            k_update_high_watermarks,
            params().add(int_array(hk)).add(int_array(hp)).add(int_array(hw)).add(int_array(hm))));
      }
      SH_META_CHECK(save_producers(c, producers, touched_producers));
      std::vector<partition_change> changes;
      for (const auto& [id, p] : partitions) {
        if (p.touched) changes.push_back({id.first, id.second, p.next_offset});
      }
      SH_META_CHECK(send_notifications(c, changes));
      SH_META_CHECK(txn.commit());
      return outcomes;
    });
  }

  mresult<std::vector<index_entry>> read_index(const std::string& topic, int32_t partition,
                                               int64_t from_offset, size_t max_entries) override {
    int64_t limit = max_entries > static_cast<size_t>(std::numeric_limits<int64_t>::max())
                        ? std::numeric_limits<int64_t>::max()
                        : static_cast<int64_t>(max_entries);
    return with_conn([&](pg_conn& c) -> mresult<std::vector<index_entry>> {
      SH_META_TRY(r, c.query(k_select_index,
                             params().add(topic).add(partition).add(from_offset).add(limit)));
      if (r.rows() == 0) return not_found(topic, partition);
      std::vector<index_entry> entries;
      for (int i = 0; i < r.rows(); ++i) {
        if (r.null(i, 0)) continue;  // the partition exists, nothing matched
        index_entry e;
        e.base_offset = r.i64(i, 0);
        e.last_offset = r.i64(i, 1);
        e.max_timestamp = r.i64(i, 2);
        e.record_count = r.i64(i, 3);
        e.object_key = r.text(i, 4);
        e.byte_offset = static_cast<uint64_t>(r.i64(i, 5));
        e.byte_length = static_cast<uint64_t>(r.i64(i, 6));
        entries.push_back(std::move(e));
      }
      return entries;
    });
  }

  mresult<void> commit_mirror_object(const mirror_commit& commit) override {
    SH_META_CHECK(validate_mirror_commit(commit));
    return with_conn([&](pg_conn& c) -> mresult<void> {
      SH_META_TRY(txn, pg_txn::begin(c));
      if (commit.fence) SH_META_CHECK(check_fence(c, *commit.fence));
      const bool checkpoint_only = commit.object_key.empty();
      if (!checkpoint_only) {
        SH_META_TRY(inserted,
                    c.query(k_insert_object, params()
                                                 .add(commit.object_key)
                                                 .add(static_cast<int64_t>(commit.object_size))
                                                 .add(now_ms())));
        if (inserted.rows() == 0) {
          SH_META_TRY(size, c.query(k_select_object_size, params().add(commit.object_key)));
          bool same = false;
          if (size.rows() > 0 && static_cast<uint64_t>(size.i64(0, 0)) == commit.object_size) {
            SH_META_TRY(s, same_mirror_ranges(c, commit));
            same = s;
          }
          if (!same) {
            return make_error(errc::conflict, "object '" + commit.object_key +
                                                  "' is already registered with other content");
          }
          return {};  // a retry of a commit that succeeded
        }
      }

      // Lock every partition written or checkpointed, in the global order.
      std::vector<std::string_view> names;
      std::vector<int32_t> parts;
      std::set<std::pair<std::string_view, int32_t>> wanted;
      auto want = [&](const std::string& topic, int32_t partition) {
        if (!is_valid_topic_name(topic) || partition < 0) return;
        if (wanted.emplace(topic, partition).second) {
          names.push_back(topic);
          parts.push_back(partition);
        }
      };
      for (const mirror_range& m : commit.ranges) want(m.range.topic, m.range.partition);
      for (const mirror_checkpoint& cp : commit.checkpoints) want(cp.topic, cp.partition);
      struct locked {
        int64_t topic_key;
        int64_t next_offset;
        int64_t log_start;
        int64_t max_timestamp;
        bool touched = false;
        // An empty log starts where its first data starts (the source's log start).
        void advance(int64_t first, int64_t next) {
          if (log_start == next_offset) log_start = first;
          next_offset = next;
          touched = true;
        }
      };
      std::map<std::pair<std::string, int32_t>, locked> partitions;
      if (!names.empty()) {
        SH_META_TRY(rows, c.query(k_lock_partitions,
                                  params().add(text_array(names)).add(int_array(parts))));
        for (int i = 0; i < rows.rows(); ++i) {
          partitions.emplace(
              std::pair(rows.text(i, 0), static_cast<int32_t>(rows.i64(i, 1))),
              locked{rows.i64(i, 2), rows.i64(i, 3), rows.i64(i, 4), rows.i64(i, 5)});
        }
      }

      std::vector<int64_t> keys, bases, lasts, timestamps, counts, byte_offsets, byte_lengths,
          watermarks;
      std::vector<int32_t> entry_parts;
      for (const mirror_range& m : commit.ranges) {
        const range_commit& r = m.range;
        auto it = partitions.find(std::pair(r.topic, r.partition));
        if (it == partitions.end()) return not_found(r.topic, r.partition);
        locked& p = it->second;
        if (m.base_offset < p.next_offset) {
          return make_error(errc::conflict,
                            "mirror range at offset " + std::to_string(m.base_offset) +
                                " is below " + r.topic + "-" + std::to_string(r.partition) +
                                "'s high watermark " + std::to_string(p.next_offset));
        }
        p.advance(m.base_offset, m.last_offset + 1);
        keys.push_back(p.topic_key);
        entry_parts.push_back(r.partition);
        bases.push_back(m.base_offset);
        lasts.push_back(m.last_offset);
        timestamps.push_back(range_max_timestamp(r));
        p.max_timestamp = std::max(p.max_timestamp, timestamps.back());
        watermarks.push_back(p.max_timestamp);
        counts.push_back(range_offset_count(r));
        byte_offsets.push_back(static_cast<int64_t>(r.byte_offset));
        byte_lengths.push_back(static_cast<int64_t>(r.byte_length));
      }
      std::vector<std::string_view> cp_mirrors, cp_topics;
      std::vector<int32_t> cp_source_parts, cp_parts;
      std::vector<int64_t> cp_keys, cp_offsets;
      for (const mirror_checkpoint& cp : commit.checkpoints) {
        auto it = partitions.find(std::pair(cp.topic, cp.partition));
        if (it == partitions.end()) return not_found(cp.topic, cp.partition);
        locked& p = it->second;
        if (checkpoint_only && cp.next_source_offset < p.next_offset) {
          return checkpoint_behind(cp, p.next_offset);
        }
        if (!checkpoint_only && cp.next_source_offset > p.next_offset) {
          p.advance(cp.next_source_offset, cp.next_source_offset);
        }
        cp_mirrors.push_back(cp.mirror_name);
        cp_topics.push_back(cp.source_topic);
        cp_source_parts.push_back(cp.source_partition);
        cp_keys.push_back(p.topic_key);
        cp_parts.push_back(cp.partition);
        cp_offsets.push_back(cp.next_source_offset);
      }
      if (!keys.empty()) {
        SH_META_CHECK(c.query(k_insert_index_entries, params()
                                                          .add(commit.object_key)
                                                          .add(int_array(keys))
                                                          .add(int_array(entry_parts))
                                                          .add(int_array(bases))
                                                          .add(int_array(lasts))
                                                          .add(int_array(timestamps))
                                                          .add(int_array(counts))
                                                          .add(int_array(byte_offsets))
                                                          .add(int_array(byte_lengths))
                                                          .add(int_array(watermarks))));
      }
      std::vector<int64_t> hk, hs, hw, hm;
      std::vector<int32_t> hp;
      for (const auto& [id, p] : partitions) {
        if (!p.touched) continue;
        hk.push_back(p.topic_key);
        hp.push_back(id.second);
        hs.push_back(p.log_start);
        hw.push_back(p.next_offset);
        hm.push_back(p.max_timestamp);
      }
      if (!hk.empty()) {
        SH_META_CHECK(c.query(k_update_partition_offsets, params()
                                                              .add(int_array(hk))
                                                              .add(int_array(hp))
                                                              .add(int_array(hs))
                                                              .add(int_array(hw))
                                                              .add(int_array(hm))));
      }
      if (!cp_keys.empty()) {
        SH_META_CHECK(
            c.query(k_upsert_checkpoints, params()
                                              .add(text_array(cp_mirrors))
                                              .add(text_array(cp_topics))
                                              .add(int_array(cp_source_parts))
                                              .add(int_array(cp_keys))
                                              .add(int_array(cp_parts))
                                              .add(int_array(cp_offsets))
                                              .add(commit.fence ? commit.fence->epoch : int64_t{0})
                                              .add(now_ms())));
      }
      std::vector<partition_change> changes;
      for (const auto& [id, p] : partitions) {
        if (p.touched) changes.push_back({id.first, id.second, p.next_offset});
      }
      SH_META_CHECK(send_notifications(c, changes));
      return txn.commit();
    });
  }

  mresult<std::optional<mirror_checkpoint>> get_mirror_checkpoint(
      const std::string& mirror_name, const std::string& source_topic,
      int32_t source_partition) override {
    return with_conn([&](pg_conn& c) -> mresult<std::optional<mirror_checkpoint>> {
      SH_META_TRY(r, c.query(k_select_checkpoint,
                             params().add(mirror_name).add(source_topic).add(source_partition)));
      if (r.rows() == 0) return std::optional<mirror_checkpoint>();
      return std::optional<mirror_checkpoint>(checkpoint_from_row(r, 0));
    });
  }

  mresult<std::vector<mirror_checkpoint>> list_mirror_checkpoints(
      const std::string& mirror_name) override {
    return with_conn([&](pg_conn& c) -> mresult<std::vector<mirror_checkpoint>> {
      SH_META_TRY(r, c.query(k_select_checkpoints, params().add(mirror_name)));
      std::vector<mirror_checkpoint> out;
      for (int i = 0; i < r.rows(); ++i) out.push_back(checkpoint_from_row(r, i));
      return out;
    });
  }

  mresult<producer_identity> init_producer_id(const std::string& transactional_id) override {
    SH_META_CHECK(validate_transactional_id(transactional_id));
    return with_conn([&](pg_conn& c) -> mresult<producer_identity> {
      SH_META_TRY(txn, pg_txn::begin(c));
      producer_identity id;
      if (!transactional_id.empty()) {
        SH_META_TRY(r, c.query(k_select_transactional_producer, params().add(transactional_id)));
        if (r.rows() > 0 && r.i64(0, 1) < std::numeric_limits<int16_t>::max() - 1) {
          id = producer_identity{r.i64(0, 0), static_cast<int16_t>(r.i64(0, 1) + 1)};
        }
      }
      if (id.producer_id < 0) {
        SH_META_TRY(r, c.query(k_next_producer_id, params()));
        if (r.rows() == 0) return make_error(errc::io_error, "postgresql: no producer id counter");
        id = producer_identity{r.i64(0, 0), 0};
      }
      if (!transactional_id.empty()) {
        // Two brokers initializing one new transactional id at once both get fresh ids and the
        // later write wins; the transaction coordinator's lease is what rules that out.
        SH_META_CHECK(c.query(k_upsert_transactional_producer, params()
                                                                   .add(id.producer_id)
                                                                   .add(id.producer_epoch)
                                                                   .add(transactional_id)
                                                                   .add(now_ms())));
      }
      SH_META_CHECK(txn.commit());
      return id;
    });
  }

  mresult<std::vector<errc>> commit_group_offsets(
      const std::string& group_id, const std::vector<group_offset>& offsets,
      const std::optional<lease_fence>& fence) override {
    SH_META_CHECK(validate_group_id(group_id));
    std::vector<size_t> stored = last_offset_per_partition(offsets);
    return with_conn([&](pg_conn& c) -> mresult<std::vector<errc>> {
      SH_META_TRY(txn, pg_txn::begin(c));
      if (fence) SH_META_CHECK(check_fence(c, *fence));
      int64_t now = now_ms();
      SH_META_CHECK(c.query(k_upsert_group, params().add(group_id).add(now)));
      std::map<std::pair<std::string, int32_t>, int64_t> keys;
      {
        std::vector<std::string_view> names;
        std::vector<int32_t> parts;
        for (size_t i : stored) {
          if (!is_valid_topic_name(offsets[i].topic)) continue;
          names.push_back(offsets[i].topic);
          parts.push_back(offsets[i].partition);
        }
        if (!names.empty()) {
          SH_META_TRY(r, c.query(k_select_partition_keys,
                                 params().add(text_array(names)).add(int_array(parts))));
          for (int i = 0; i < r.rows(); ++i) {
            keys.emplace(std::pair(r.text(i, 0), static_cast<int32_t>(r.i64(i, 1))), r.i64(i, 2));
          }
        }
      }
      std::vector<int64_t> k, o, ts;
      std::vector<int32_t> q, e;
      std::vector<std::string_view> m;
      std::map<std::pair<std::string_view, int32_t>, errc> fate;
      for (size_t i : stored) {
        const group_offset& g = offsets[i];
        auto it = keys.find(std::pair(g.topic, g.partition));
        fate[std::pair<std::string_view, int32_t>(g.topic, g.partition)] =
            it == keys.end() ? errc::not_found : errc::ok;
        if (it == keys.end()) continue;
        k.push_back(it->second);
        q.push_back(g.partition);
        o.push_back(g.offset);
        e.push_back(g.leader_epoch);
        m.push_back(g.metadata);
        ts.push_back(g.commit_timestamp_ms > 0 ? g.commit_timestamp_ms : now);
      }
      if (!k.empty()) {
        SH_META_CHECK(c.query(k_upsert_group_offsets, params()
                                                          .add(group_id)
                                                          .add(int_array(k))
                                                          .add(int_array(q))
                                                          .add(int_array(o))
                                                          .add(int_array(e))
                                                          .add(text_array(m))
                                                          .add(int_array(ts))));
      }
      SH_META_CHECK(txn.commit());
      std::vector<errc> codes;
      for (const group_offset& g : offsets) {
        codes.push_back(fate[std::pair<std::string_view, int32_t>(g.topic, g.partition)]);
      }
      return codes;
    });
  }

  mresult<std::vector<group_offset>> fetch_group_offsets(const std::string& group_id) override {
    SH_META_CHECK(validate_group_id(group_id));
    return with_conn([&](pg_conn& c) -> mresult<std::vector<group_offset>> {
      SH_META_TRY(r, c.query(k_select_group_offsets, params().add(group_id)));
      std::vector<group_offset> out;
      for (int i = 0; i < r.rows(); ++i) {
        out.push_back(group_offset{r.text(i, 0), static_cast<int32_t>(r.i64(i, 1)), r.i64(i, 2),
                                   static_cast<int32_t>(r.i64(i, 3)), r.text(i, 4), r.i64(i, 5)});
      }
      return out;
    });
  }

  mresult<std::vector<std::string>> list_groups() override {
    return with_conn([&](pg_conn& c) -> mresult<std::vector<std::string>> {
      SH_META_TRY(r, c.query(k_select_groups, params()));
      std::vector<std::string> out;
      for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
      return out;
    });
  }

  mresult<void> delete_group(const std::string& group_id,
                             const std::optional<lease_fence>& fence) override {
    SH_META_CHECK(validate_group_id(group_id));
    return with_conn([&](pg_conn& c) -> mresult<void> {
      SH_META_TRY(txn, pg_txn::begin(c));
      if (fence) SH_META_CHECK(check_fence(c, *fence));
      SH_META_TRY(r, c.query(k_delete_group, params().add(group_id)));
      if (r.rows() == 0) return make_error(errc::not_found, "unknown group '" + group_id + "'");
      return txn.commit();
    });
  }

  mresult<broker_registration> register_broker(const broker_registration& broker,
                                               int64_t session_timeout_ms) override {
    SH_META_CHECK(validate_broker(broker, session_timeout_ms));
    return with_conn([&](pg_conn& c) -> mresult<broker_registration> {
      SH_META_TRY(r, c.query(k_register_broker, params()
                                                    .add(broker.node_id)
                                                    .add(broker.endpoints)
                                                    .add(broker.rack)
                                                    .add(broker.incarnation)
                                                    .add(session_timeout_ms)));
      if (r.rows() == 0) {
        return make_error(errc::conflict, "node id " + std::to_string(broker.node_id) +
                                              " is in use by a live broker");
      }
      return broker_from_row(r, 0);
    });
  }

  mresult<void> heartbeat_broker(int32_t node_id, const std::string& incarnation) override {
    SH_META_CHECK(validate_incarnation(node_id, incarnation));
    return change_broker(k_heartbeat_broker, node_id, incarnation);
  }

  mresult<void> unregister_broker(int32_t node_id, const std::string& incarnation) override {
    SH_META_CHECK(validate_incarnation(node_id, incarnation));
    return change_broker(k_delete_broker, node_id, incarnation);
  }

  mresult<std::vector<broker_registration>> list_brokers(int64_t max_age_ms) override {
    return with_conn([&](pg_conn& c) -> mresult<std::vector<broker_registration>> {
      SH_META_TRY(r, c.query(k_select_live_brokers, params().add(max_age_ms)));
      std::vector<broker_registration> out;
      for (int i = 0; i < r.rows(); ++i) out.push_back(broker_from_row(r, i));
      return out;
    });
  }

  mresult<lease> acquire_lease(const std::string& name, const std::string& owner,
                               int64_t ttl_ms) override {
    SH_META_CHECK(validate_lease_args(name, owner, ttl_ms));
    return with_conn([&](pg_conn& c) -> mresult<lease> {
      SH_META_TRY(r, c.query(k_acquire_lease, params().add(name).add(owner).add(ttl_ms)));
      if (r.rows() > 0) return lease_from_row(r, 0);
      SH_META_TRY(cur, c.query(k_select_lease, params().add(name)));
      if (cur.rows() == 0) return make_error(errc::busy, "lease '" + name + "' changed, retry");
      return lease_from_row(cur, 0);
    });
  }

  mresult<lease> renew_lease(const std::string& name, const std::string& owner, int64_t epoch,
                             int64_t ttl_ms) override {
    SH_META_CHECK(validate_lease_args(name, owner, ttl_ms));
    return set_lease_expiry(name, owner, epoch, std::to_string(ttl_ms));
  }

  mresult<void> release_lease(const std::string& name, const std::string& owner,
                              int64_t epoch) override {
    SH_META_CHECK(validate_lease_args(name, owner, 1));
    SH_META_CHECK(set_lease_expiry(name, owner, epoch, std::nullopt));
    return {};
  }

  mresult<std::optional<lease>> get_lease(const std::string& name) override {
    return with_conn([&](pg_conn& c) -> mresult<std::optional<lease>> {
      SH_META_TRY(r, c.query(k_select_lease, params().add(name)));
      if (r.rows() == 0) return std::optional<lease>();
      return std::optional<lease>(lease_from_row(r, 0));
    });
  }

  mresult<std::optional<index_entry>> find_by_timestamp(const std::string& topic, int32_t partition,
                                                        int64_t timestamp) override {
    return with_conn([&](pg_conn& c) -> mresult<std::optional<index_entry>> {
      SH_META_TRY(
          r, c.query(k_select_by_timestamp, params().add(topic).add(partition).add(timestamp)));
      if (r.rows() == 0) return not_found(topic, partition);
      if (r.null(0, 1)) return std::optional<index_entry>();
      return std::optional<index_entry>(
          index_entry{r.i64(0, 1), r.i64(0, 2), r.i64(0, 3), r.i64(0, 4), r.text(0, 5),
                      static_cast<uint64_t>(r.i64(0, 6)), static_cast<uint64_t>(r.i64(0, 7))});
    });
  }

  mresult<std::vector<std::string>> registered_objects(
      const std::vector<std::string>& object_keys) override {
    if (object_keys.size() > 10000) {
      return make_error(errc::invalid_argument, "registered_objects: more than 10000 keys");
    }
    return with_conn([&](pg_conn& c) -> mresult<std::vector<std::string>> {
      std::vector<std::string> out;
      constexpr size_t chunk = 1000;
      for (size_t i = 0; i < object_keys.size(); i += chunk) {
        size_t end = std::min(object_keys.size(), i + chunk);
        const std::vector<std::string_view> keys(object_keys.begin() + i,
                                                 object_keys.begin() + end);
        SH_META_TRY(r, c.query(k_select_registered, params().add(text_array(keys))));
        std::set<std::string> known;
        for (int row = 0; row < r.rows(); ++row) known.insert(r.text(row, 0));
        for (size_t j = i; j < end; ++j) {
          if (known.count(object_keys[j])) out.push_back(object_keys[j]);
        }
      }
      return out;
    });
  }

  mresult<void> set_commit_listener(commit_listener listener) override {
    stop_listener();
    if (!listener) return {};
    {
      std::lock_guard lock(_listener_mu);
      _listener = std::make_shared<commit_listener>(std::move(listener));
    }
    // Connect once here so that a bad configuration is reported to the caller; later losses are
    // retried by the thread (and reported as resync).
    SH_META_TRY(conn, listen_connection());
    _listening = true;
    _listener_thread =
        std::thread([this, c = std::move(conn)]() mutable { listen_loop(std::move(c)); });
    return {};
  }

  std::string describe() const override { return _description; }

 private:
  static error_info<errc> not_found(const std::string& topic, int32_t partition) {
    return make_error(errc::not_found,
                      "unknown topic or partition " + topic + "-" + std::to_string(partition));
  }

  mresult<std::vector<range_outcome>> replay_commit(pg_conn& c, const object_commit& commit) {
    SH_META_TRY(r, c.query(k_select_object_entries, params().add(commit.object_key)));
    std::map<std::tuple<std::string, int32_t, uint64_t>, std::pair<int64_t, int64_t>> recorded;
    for (int i = 0; i < r.rows(); ++i) {
      recorded.emplace(std::tuple(r.text(i, 0), static_cast<int32_t>(r.i64(i, 1)),
                                  static_cast<uint64_t>(r.i64(i, 2))),
                       std::pair(r.i64(i, 3), r.i64(i, 4)));
    }
    std::vector<range_outcome> outcomes(commit.ranges.size());
    for (size_t i = 0; i < commit.ranges.size(); ++i) {
      const range_commit& rc = commit.ranges[i];
      auto it = recorded.find(std::tuple(rc.topic, rc.partition, rc.byte_offset));
      if (it != recorded.end()) {
        outcomes[i].base_offset = it->second.first;
        outcomes[i].last_offset = it->second.second;
        continue;
      }
      // Not committed the first time: unknown partition or refused by the sequence checks.
      // Recompute what can still be known; a duplicate keeps its original offsets.
      outcomes[i].status = range_status::unknown_topic_or_partition;
      SH_META_TRY(p, c.query(k_select_partition_exists, params().add(rc.topic).add(rc.partition)));
      if (p.rows() == 0) continue;
      int64_t key = p.i64(0, 0);
      producer_states producers;
      SH_META_CHECK(load_producers(c, producer_keys(key, rc), producers));
      sequence_verdict verdict = check_sequences(producers, key, rc);
      if (verdict.status != range_status::ok) {
        outcomes[i] = range_outcome{verdict.status, verdict.base_offset, verdict.last_offset};
      }
    }
    return outcomes;
  }

  // NOTIFY payloads are limited to 8000 bytes: "topic partition hwm" lines, in as many
  // notifications as needed. Sent inside the commit's transaction, so delivered at commit.
  mresult<void> send_notifications(pg_conn& c, const std::vector<partition_change>& changes) {
    std::string payload;
    auto flush = [&]() -> mresult<void> {
      if (payload.empty()) return {};
      SH_META_CHECK(c.query(k_notify, params().add(_channel).add(payload)));
      payload.clear();
      return {};
    };
    for (const partition_change& ch : changes) {
      std::string line = ch.topic;
      line.append(" ").append(std::to_string(ch.partition)).append(" ");
      line.append(std::to_string(ch.high_watermark)).append("\n");
      if (payload.size() + line.size() > 7900) SH_META_CHECK(flush());
      payload += line;
    }
    return flush();
  }

  mresult<std::unique_ptr<pg_conn>> listen_connection() {
    SH_META_TRY(conn, pg_conn::connect(_options));
    std::string quoted;
    for (char ch : _channel) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    std::string sql = "LISTEN \"" + quoted + "\"";
    SH_META_CHECK(conn->exec(sql.c_str(), "listen"));
    return std::move(conn);
  }

  static std::vector<partition_change> parse_notification(std::string_view payload) {
    std::vector<partition_change> out;
    while (!payload.empty()) {
      size_t end = payload.find('\n');
      std::string_view line = payload.substr(0, end);
      payload = end == std::string_view::npos ? std::string_view() : payload.substr(end + 1);
      size_t a = line.find(' ');
      size_t b = a == std::string_view::npos ? a : line.find(' ', a + 1);
      if (b == std::string_view::npos) continue;
      partition_change ch;
      ch.topic = std::string(line.substr(0, a));
      ch.partition =
          static_cast<int32_t>(parse_i64(std::string(line.substr(a + 1, b - a - 1)).c_str()));
      ch.high_watermark = parse_i64(std::string(line.substr(b + 1)).c_str());
      out.push_back(std::move(ch));
    }
    return out;
  }

  void deliver(const std::vector<partition_change>& changes, bool resync) {
    std::shared_ptr<commit_listener> listener;
    {
      std::lock_guard lock(_listener_mu);
      listener = _listener;
    }
    if (listener) (*listener)(changes, resync);
  }

  // The listener thread: waits on the LISTEN connection's socket (waking every 100 ms to check
  // for stop), reconnecting with backoff when the connection is lost.
  void listen_loop(std::unique_ptr<pg_conn> conn) {
    int attempt = 0;
    while (_listening.load()) {
      if (!conn) {
        auto fresh = listen_connection();
        if (!fresh) {
          std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100 << attempt, 2000)));
          attempt = std::min(attempt + 1, 5);
          continue;
        }
        conn = std::move(*fresh);
        attempt = 0;
        deliver({}, true);  // anything committed while we were away was missed
      }
      pollfd pfd{PQsocket(conn->raw()), POLLIN, 0};
      int ready = poll(&pfd, 1, 100);
      if (ready < 0) continue;
      if (PQconsumeInput(conn->raw()) == 0 || conn->broken()) {
        conn.reset();
        continue;
      }
      while (PGnotify* n = PQnotifies(conn->raw())) {
        auto changes = parse_notification(n->extra != nullptr ? n->extra : "");
        PQfreemem(n);
        if (!changes.empty()) deliver(changes, false);
      }
    }
  }

  void stop_listener() {
    _listening = false;
    if (_listener_thread.joinable()) _listener_thread.join();
    std::lock_guard lock(_listener_mu);
    _listener.reset();
  }

  static mirror_checkpoint checkpoint_from_row(const pg_result& r, int row) {
    return mirror_checkpoint{r.text(row, 0),
                             r.text(row, 1),
                             static_cast<int32_t>(r.i64(row, 2)),
                             r.text(row, 3),
                             static_cast<int32_t>(r.i64(row, 4)),
                             r.i64(row, 5),
                             r.i64(row, 6)};
  }

  // Whether the registered object holds exactly the ranges of `commit`.
  static mresult<bool> same_mirror_ranges(pg_conn& c, const mirror_commit& commit) {
    SH_META_TRY(r, c.query(k_select_object_entries, params().add(commit.object_key)));
    std::map<std::tuple<std::string, int32_t, uint64_t>, std::pair<int64_t, int64_t>> recorded;
    for (int i = 0; i < r.rows(); ++i) {
      recorded.emplace(std::tuple(r.text(i, 0), static_cast<int32_t>(r.i64(i, 1)),
                                  static_cast<uint64_t>(r.i64(i, 2))),
                       std::pair(r.i64(i, 3), r.i64(i, 4)));
    }
    if (recorded.size() != commit.ranges.size()) return false;
    for (const mirror_range& m : commit.ranges) {
      auto it = recorded.find(std::tuple(m.range.topic, m.range.partition, m.range.byte_offset));
      if (it == recorded.end() || it->second != std::pair(m.base_offset, m.last_offset)) {
        return false;
      }
    }
    return true;
  }

  static broker_registration broker_from_row(const pg_result& r, int row) {
    return broker_registration{static_cast<int32_t>(r.i64(row, 0)),
                               r.text(row, 1),
                               r.text(row, 2),
                               r.text(row, 3),
                               r.i64(row, 4),
                               r.i64(row, 5)};
  }

  mresult<void> change_broker(const statement& stmt, int32_t node_id,
                              const std::string& incarnation) {
    return with_conn([&](pg_conn& c) -> mresult<void> {
      SH_META_TRY(r, c.query(stmt, params().add(node_id).add(incarnation)));
      if (r.rows() == 0) {
        return make_error(errc::fenced, "node id " + std::to_string(node_id) +
                                            " is not registered to incarnation " + incarnation);
      }
      return {};
    });
  }

  static lease lease_from_row(const pg_result& r, int row) {
    return lease{r.text(row, 0), r.text(row, 1), r.i64(row, 2), r.i64(row, 3), r.i64(row, 4)};
  }

  mresult<lease> set_lease_expiry(const std::string& name, const std::string& owner, int64_t epoch,
                                  std::optional<std::string> ttl_ms) {
    return with_conn([&](pg_conn& c) -> mresult<lease> {
      params p;
      p.add(name).add(owner).add(epoch);
      if (ttl_ms) {
        p.add(*ttl_ms);
      } else {
        p.add_null();
      }
      SH_META_TRY(r, c.query(k_set_lease_expiry, p));
      if (r.rows() == 0) {
        return make_error(errc::fenced, "lease '" + name + "' is not held by " + owner +
                                            " at epoch " + std::to_string(epoch));
      }
      return lease_from_row(r, 0);
    });
  }

  // Checks inside a write transaction that `fence` still holds (and keeps it until commit).
  // Objects in the first column of `keys` that no index row references any more become
  // unreferenced (now).
  static mresult<void> mark_unreferenced(pg_conn& c, const pg_result& keys) {
    int64_t now = now_ms();
    for (int i = 0; i < keys.rows(); ++i) {
      SH_META_CHECK(c.query(k_mark_unreferenced, params().add(keys.text(i, 0)).add(now)));
    }
    return {};
  }

  static mresult<void> check_fence(pg_conn& c, const lease_fence& fence) {
    SH_META_TRY(r, c.query(k_check_fence, params().add(fence.name)));
    if (r.rows() == 0 || r.i64(0, 0) != fence.epoch) {
      return make_error(errc::fenced, "lease '" + fence.name + "' epoch " +
                                          std::to_string(fence.epoch) + " is no longer current");
    }
    return {};
  }

  static mresult<void> load_producers(pg_conn& c, const std::set<producer_key>& keys,
                                      producer_states& states) {
    if (keys.empty()) return {};
    std::vector<int64_t> topic_keys, producer_ids;
    std::vector<int32_t> parts;
    for (const producer_key& k : keys) {
      topic_keys.push_back(k.topic_key);
      parts.push_back(k.partition);
      producer_ids.push_back(k.producer_id);
    }
    SH_META_TRY(r, c.query(k_select_producer_batches, params()
                                                          .add(int_array(topic_keys))
                                                          .add(int_array(parts))
                                                          .add(int_array(producer_ids))));
    for (int i = 0; i < r.rows(); ++i) {
      producer_key k{r.i64(i, 2), r.i64(i, 0), static_cast<int32_t>(r.i64(i, 1))};
      states[k].push_back(producer_batch_record{
          static_cast<int16_t>(r.i64(i, 3)), static_cast<int32_t>(r.i64(i, 4)),
          static_cast<int32_t>(r.i64(i, 5)), r.i64(i, 6), r.i64(i, 7)});
    }
    return {};
  }

  static mresult<void> save_producers(pg_conn& c, const producer_states& states,
                                      const std::set<producer_key>& touched) {
    if (touched.empty()) return {};
    std::vector<int64_t> dk, dp;
    std::vector<int32_t> dq;
    std::vector<int64_t> k, p, b, o;
    std::vector<int32_t> q, f, e, l;
    for (const producer_key& key : touched) {
      dk.push_back(key.topic_key);
      dq.push_back(key.partition);
      dp.push_back(key.producer_id);
      auto it = states.find(key);
      if (it == states.end()) continue;
      for (const producer_batch_record& r : it->second) {
        k.push_back(key.topic_key);
        q.push_back(key.partition);
        p.push_back(key.producer_id);
        f.push_back(r.first_sequence);
        e.push_back(r.epoch);
        l.push_back(r.last_sequence);
        b.push_back(r.base_offset);
        o.push_back(r.last_offset);
      }
    }
    SH_META_CHECK(c.query(k_delete_producer_batches,
                          params().add(int_array(dk)).add(int_array(dq)).add(int_array(dp))));
    if (k.empty()) return {};
    SH_META_CHECK(c.query(k_insert_producer_batches, params()
                                                         .add(int_array(k))
                                                         .add(int_array(q))
                                                         .add(int_array(p))
                                                         .add(int_array(f))
                                                         .add(int_array(e))
                                                         .add(int_array(l))
                                                         .add(int_array(b))
                                                         .add(int_array(o))
                                                         .add(now_ms())));
    return {};
  }

  // Runs f(pg_conn&) on a pooled connection, retrying on a fresh connection (with backoff and
  // jitter) when the connection was lost or the transaction hit a deadlock or serialization
  // failure.
  template <class F>
  auto with_conn(F&& f) -> decltype(f(std::declval<pg_conn&>())) {
    for (int attempt = 1;; ++attempt) {
      std::unique_ptr<pg_conn> conn;
      {
        std::unique_lock lock(_mu);
        _cv.wait(lock, [&] { return !_idle.empty() || _open < _options.max_connections; });
        if (!_idle.empty()) {
          conn = std::move(_idle.back());
          _idle.pop_back();
        } else {
          ++_open;
        }
      }
      if (!conn) {
        auto opened = pg_conn::connect(_options);
        if (!opened) {
          release(nullptr);
          if (attempt >= _options.max_attempts) return opened.error();
          backoff(attempt);
          continue;
        }
        conn = std::move(*opened);
      }
      conn->clear_failure();
      auto result = f(*conn);
      bool retry = !result && conn->retryable_failure() && attempt < _options.max_attempts;
      release(conn->broken() ? nullptr : std::move(conn));
      if (!retry) return result;
      backoff(attempt);
    }
  }

  // Returns a connection to the pool; nullptr drops a broken (or never opened) one.
  void release(std::unique_ptr<pg_conn> conn) {
    {
      std::lock_guard lock(_mu);
      if (conn) {
        _idle.push_back(std::move(conn));
      } else {
        --_open;
      }
    }
    _cv.notify_one();
  }

  static void backoff(int attempt) {
    static thread_local std::mt19937 rng(std::random_device{}());
    int base_ms = 20 << std::min(attempt, 6);
    std::uniform_int_distribution<int> jitter(0, base_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(base_ms / 2 + jitter(rng)));
  }

  postgres_options _options;
  std::string _description;
  std::mutex _mu;  // guards _idle and _open
  std::condition_variable _cv;
  std::vector<std::unique_ptr<pg_conn>> _idle;
  int _open = 0;            // connections that exist (idle or in use)
  std::string _channel;     // NOTIFY channel: one per schema, so stores in other schemas don't mix
  std::mutex _listener_mu;  // guards _listener (copied out before each call)
  std::shared_ptr<commit_listener> _listener;
  std::atomic<bool> _listening{false};
  std::thread _listener_thread;
};

}  // namespace

int postgres_schema_version() {
  auto migrations = postgresql_migrations();
  return migrations.empty() ? 0 : migrations.back().version;
}

mresult<std::unique_ptr<metadata_store>> open_postgres_store(const postgres_options& options) {
  if (options.max_connections < 1 || options.max_attempts < 1) {
    return make_error(errc::invalid_argument, "postgresql: bad pool settings");
  }
  SH_META_TRY(conn, pg_conn::connect(options));
  SH_META_CHECK(migrate(*conn));
  // Never the password: host, port, database and user are enough to tell stores apart in logs.
  auto str = [](const char* s) { return std::string(s != nullptr ? s : ""); };
  std::string description = "postgresql://" + str(PQuser(conn->raw())) + "@" +
                            str(PQhost(conn->raw())) + ":" + str(PQport(conn->raw())) + "/" +
                            str(PQdb(conn->raw()));
  PGresult* schema = PQexec(conn->raw(), "SELECT current_schema()");
  std::string channel = "sh_commits";
  if (PQresultStatus(schema) == PGRES_TUPLES_OK && PQntuples(schema) == 1) {
    channel += ".";
    channel += PQgetvalue(schema, 0, 0);
  }
  PQclear(schema);
  channel = channel.substr(0, 63);  // identifiers are at most 63 bytes
  return std::unique_ptr<metadata_store>(
      new postgres_store(options, std::move(conn), std::move(description), std::move(channel)));
}

}  // namespace sh::metadata::detail
