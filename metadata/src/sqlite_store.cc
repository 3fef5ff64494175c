// SQLite metadata_store.
//
// One writer connection guarded by a mutex (SQLite allows one writer at a time anyway) and a
// small pool of reader connections: in WAL mode readers see the last committed state and never
// block, nor are blocked by, the writer. Every commit is durable when it returns
// (journal_mode=WAL + synchronous=FULL fsyncs the WAL on each commit), because the broker answers
// producers right after commit_object returns.
#include "sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "migrations.h"
#include "store_util.h"

namespace sh::metadata::detail {
namespace {

error_info<errc> sqlite_error(sqlite3* db, int rc, std::string_view what) {
  errc code = errc::io_error;
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = errc::busy;
      break;
    case SQLITE_CONSTRAINT:
      code = errc::conflict;
      break;
    default:
      code = errc::io_error;
      break;
  }
  std::string msg = "sqlite: ";
  msg += what;
  msg += ": ";
  msg += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  msg += " (code " + std::to_string(rc) + ")";
  return make_error(code, std::move(msg));
}

// One prepared statement in use: binds, steps, and resets itself when it goes out of scope so the
// cached statement can be reused. Bind errors are remembered and reported by the next step().
class query {
 public:
  query(sqlite3* db, sqlite3_stmt* stmt) : _db(db), _stmt(stmt) {}
  query(query&& other) noexcept
      : _db(other._db), _stmt(std::exchange(other._stmt, nullptr)), _bind_rc(other._bind_rc) {}
  query(const query&) = delete;
  query& operator=(const query&) = delete;
  query& operator=(query&&) = delete;
  ~query() {
    if (_stmt != nullptr) {
      sqlite3_reset(_stmt);
      sqlite3_clear_bindings(_stmt);
    }
  }

  query& bind(int index, int64_t value) {
    note(sqlite3_bind_int64(_stmt, index, value));
    return *this;
  }
  query& bind(int index, std::string_view value) {
    note(sqlite3_bind_text64(_stmt, index, value.data(), value.size(), SQLITE_TRANSIENT,
                             SQLITE_UTF8));
    return *this;
  }
  query& bind_blob(int index, const void* data, size_t size) {
    note(sqlite3_bind_blob64(_stmt, index, data, size, SQLITE_TRANSIENT));
    return *this;
  }

  // true: a row is available; false: done.
  mresult<bool> step() {
    if (_bind_rc != SQLITE_OK) return sqlite_error(_db, _bind_rc, "bind");
    int rc = sqlite3_step(_stmt);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return sqlite_error(_db, rc, sqlite3_sql(_stmt));
  }
  // Runs a statement that returns no rows.
  mresult<void> run() {
    SH_META_TRY(row, step());
    (void)row;
    return {};
  }

  int64_t i64(int col) const { return sqlite3_column_int64(_stmt, col); }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(_stmt, col));
    int n = sqlite3_column_bytes(_stmt, col);
    return p != nullptr ? std::string(p, static_cast<size_t>(n)) : std::string();
  }
  std::string_view blob(int col) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(_stmt, col));
    int n = sqlite3_column_bytes(_stmt, col);
    return p != nullptr ? std::string_view(p, static_cast<size_t>(n)) : std::string_view();
  }

 private:
  void note(int rc) {
    if (rc != SQLITE_OK && _bind_rc == SQLITE_OK) _bind_rc = rc;
  }
  sqlite3* _db;
  sqlite3_stmt* _stmt;
  int _bind_rc = SQLITE_OK;
};

// A connection with its cache of prepared statements. Used by one thread at a time.
class connection {
 public:
  static mresult<std::unique_ptr<connection>> open(const std::string& path, int busy_timeout_ms,
                                                   bool reader) {
    sqlite3* db = nullptr;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    if (!reader) flags |= SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    auto conn = std::unique_ptr<connection>(new connection(db));  // closes db on every path
    if (rc != SQLITE_OK) return sqlite_error(db, rc, "open " + path);
    sqlite3_busy_timeout(db, busy_timeout_ms);
    // Foreign keys guard the index against rows for partitions or objects that don't exist.
    SH_META_CHECK(conn->exec("PRAGMA foreign_keys=ON", "enable foreign keys"));
    if (reader) {
      SH_META_CHECK(conn->exec("PRAGMA query_only=ON", "make reader read-only"));
    } else {
      // Persistent in the file; answers "memory" for in-memory databases, which is fine. Changing
      // the journal mode answers SQLITE_BUSY at once, without the busy handler, while another
      // connection (a broker and its in-process mirror opening one file together) holds a lock:
      // retry for up to the busy timeout.
      const auto give_up = std::chrono::steady_clock::now() +
                           std::chrono::milliseconds(std::max(busy_timeout_ms, 0));
      for (;;) {
        auto wal = conn->exec("PRAGMA journal_mode=WAL", "enable WAL");
        if (wal) break;
        if (wal.code() != errc::busy || std::chrono::steady_clock::now() >= give_up) {
          return wal.error();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      SH_META_CHECK(conn->exec("PRAGMA synchronous=FULL", "set synchronous=FULL"));
    }
    return conn;
  }

  ~connection() {
    for (auto& [sql, stmt] : _stmts) sqlite3_finalize(stmt);
    sqlite3_close_v2(_db);
  }

  sqlite3* db() const { return _db; }

  mresult<void> exec(const char* sql, std::string_view what) {
    char* err = nullptr;
    int rc = sqlite3_exec(_db, sql, nullptr, nullptr, &err);
    sqlite3_free(err);  // sqlite3_errmsg still has the message
    if (rc != SQLITE_OK) return sqlite_error(_db, rc, what);
    return {};
  }

  // `sql` must be a string literal: the cache is keyed by its address.
  mresult<query> prepare(const char* sql) {
    auto it = _stmts.find(sql);
    if (it == _stmts.end()) {
      sqlite3_stmt* stmt = nullptr;
      int rc = sqlite3_prepare_v3(_db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) return sqlite_error(_db, rc, std::string("prepare ") + sql);
      it = _stmts.emplace(sql, stmt).first;
    }
    return query(_db, it->second);
  }

 private:
  explicit connection(sqlite3* db) : _db(db) {}
  sqlite3* _db;
  std::unordered_map<const char*, sqlite3_stmt*> _stmts;
};

// A transaction that rolls back unless commit() succeeded.
class transaction {
 public:
  static mresult<transaction> begin(connection& conn, bool write) {
    // IMMEDIATE takes the write lock up front, so a writer never fails half-way with BUSY.
    SH_META_CHECK(conn.exec(write ? "BEGIN IMMEDIATE" : "BEGIN", "begin transaction"));
    return transaction(&conn);
  }
  transaction(transaction&& other) noexcept : _conn(std::exchange(other._conn, nullptr)) {}
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;
  transaction& operator=(transaction&&) = delete;
  ~transaction() {
    if (_conn != nullptr && sqlite3_get_autocommit(_conn->db()) == 0) {
      sqlite3_exec(_conn->db(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  mresult<void> commit() {
    SH_META_CHECK(_conn->exec("COMMIT", "commit"));
    _conn = nullptr;
    return {};
  }

 private:
  explicit transaction(connection* conn) : _conn(conn) {}
  connection* _conn;
};

// ---- SQL ---------------------------------------------------------------------------------

constexpr const char* k_create_schema_version =
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER NOT NULL PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " applied_at_ms INTEGER NOT NULL) STRICT";
constexpr const char* k_select_schema_version =
    "SELECT COALESCE(MAX(version), 0) FROM schema_version";
constexpr const char* k_insert_schema_version =
    "INSERT INTO schema_version (version, name, applied_at_ms) VALUES (?1, ?2, ?3)";

constexpr const char* k_select_live_topic =
    "SELECT topic_key, name, topic_id, partition_count, created_at_ms FROM topics"
    " WHERE name = ?1 AND deleted_at_ms IS NULL";
constexpr const char* k_select_live_topics =
    "SELECT topic_key, name, topic_id, partition_count, created_at_ms FROM topics"
    " WHERE deleted_at_ms IS NULL ORDER BY name";
constexpr const char* k_select_topic_id_exists = "SELECT 1 FROM topics WHERE topic_id = ?1";
constexpr const char* k_insert_topic =
    "INSERT INTO topics (name, topic_id, partition_count, created_at_ms) VALUES (?1, ?2, ?3, ?4)"
    " RETURNING topic_key";
constexpr const char* k_insert_topic_config =
    "INSERT INTO topic_configs (topic_key, name, value) VALUES (?1, ?2, ?3)";
constexpr const char* k_insert_partitions =
    "WITH RECURSIVE p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p WHERE n + 1 < ?2)"
    " INSERT INTO partitions (topic_key, partition) SELECT ?1, n FROM p";
constexpr const char* k_select_topic_configs =
    "SELECT name, value FROM topic_configs WHERE topic_key = ?1";
constexpr const char* k_select_live_topic_configs =
    "SELECT c.topic_key, c.name, c.value FROM topic_configs c"
    " JOIN topics t ON t.topic_key = c.topic_key WHERE t.deleted_at_ms IS NULL";

constexpr const char* k_select_topic_key =
    "SELECT topic_key FROM topics WHERE name = ?1 AND deleted_at_ms IS NULL";
constexpr const char* k_select_partition_by_name =
    "SELECT p.topic_key, p.log_start_offset, p.high_watermark, p.max_timestamp FROM partitions p"
    " JOIN topics t ON t.topic_key = p.topic_key"
    " WHERE t.name = ?1 AND t.deleted_at_ms IS NULL AND p.partition = ?2";
constexpr const char* k_select_high_watermark =
    "SELECT high_watermark, max_timestamp FROM partitions WHERE topic_key = ?1 AND partition = ?2";
constexpr const char* k_select_partition_offsets =
    "SELECT log_start_offset, high_watermark, max_timestamp FROM partitions"
    " WHERE topic_key = ?1 AND partition = ?2";
constexpr const char* k_update_partition_offsets =
    "UPDATE partitions SET log_start_offset = ?3, high_watermark = ?4, max_timestamp = ?5"
    " WHERE topic_key = ?1 AND partition = ?2";
constexpr const char* k_update_high_watermark =
    "UPDATE partitions SET high_watermark = ?3, max_timestamp = ?4"
    " WHERE topic_key = ?1 AND partition = ?2";

constexpr const char* k_select_producer_batches =
    "SELECT producer_epoch, first_sequence, last_sequence, base_offset, last_offset"
    " FROM producer_sequences WHERE topic_key = ?1 AND partition = ?2 AND producer_id = ?3"
    " ORDER BY base_offset";
constexpr const char* k_delete_producer_batches =
    "DELETE FROM producer_sequences WHERE topic_key = ?1 AND partition = ?2 AND producer_id = ?3";
constexpr const char* k_insert_producer_batch =
    "INSERT INTO producer_sequences (topic_key, partition, producer_id, first_sequence,"
    " producer_epoch, last_sequence, base_offset, last_offset, updated_at_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

constexpr const char* k_select_lease =
    "SELECT name, owner, epoch, acquired_at_ms, expires_at_ms FROM leases WHERE name = ?1";
constexpr const char* k_upsert_lease =
    "INSERT INTO leases (name, owner, epoch, acquired_at_ms, expires_at_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
    " epoch = excluded.epoch, acquired_at_ms = excluded.acquired_at_ms,"
    " expires_at_ms = excluded.expires_at_ms";
constexpr const char* k_update_lease_expiry =
    "UPDATE leases SET expires_at_ms = ?2 WHERE name = ?1";

constexpr const char* k_upsert_checkpoint =
    "INSERT INTO mirror_checkpoints (mirror_name, source_topic, source_partition, topic_key,"
    " partition, next_source_offset, lease_epoch, updated_at_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    " ON CONFLICT (mirror_name, source_topic, source_partition) DO UPDATE SET"
    " topic_key = excluded.topic_key, partition = excluded.partition,"
    " next_source_offset = excluded.next_source_offset, lease_epoch = excluded.lease_epoch,"
    " updated_at_ms = excluded.updated_at_ms";
constexpr const char* k_select_checkpoint =
    "SELECT c.mirror_name, c.source_topic, c.source_partition, t.name, c.partition,"
    " c.next_source_offset, c.updated_at_ms FROM mirror_checkpoints c"
    " JOIN topics t ON t.topic_key = c.topic_key"
    " WHERE c.mirror_name = ?1 AND c.source_topic = ?2 AND c.source_partition = ?3";
constexpr const char* k_select_checkpoints =
    "SELECT c.mirror_name, c.source_topic, c.source_partition, t.name, c.partition,"
    " c.next_source_offset, c.updated_at_ms FROM mirror_checkpoints c"
    " JOIN topics t ON t.topic_key = c.topic_key"
    " WHERE c.mirror_name = ?1 ORDER BY c.source_topic, c.source_partition";

constexpr const char* k_next_producer_id =
    "UPDATE id_counters SET value = value + 1 WHERE name = 'producer_id' RETURNING value - 1";
constexpr const char* k_select_transactional_producer =
    "SELECT producer_id, producer_epoch FROM producers WHERE transactional_id = ?1";
constexpr const char* k_upsert_transactional_producer =
    "INSERT INTO producers (producer_id, producer_epoch, transactional_id, created_at_ms,"
    " updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (transactional_id) DO UPDATE SET"
    " producer_id = excluded.producer_id, producer_epoch = excluded.producer_epoch,"
    " updated_at_ms = excluded.updated_at_ms";
constexpr const char* k_upsert_group =
    "INSERT INTO consumer_groups (group_id, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?2)"
    " ON CONFLICT (group_id) DO UPDATE SET updated_at_ms = excluded.updated_at_ms";
constexpr const char* k_upsert_group_offset =
    "INSERT INTO group_offsets (group_id, topic_key, partition, committed_offset, leader_epoch,"
    " metadata, commit_ts_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    " ON CONFLICT (group_id, topic_key, partition) DO UPDATE SET"
    " committed_offset = excluded.committed_offset, leader_epoch = excluded.leader_epoch,"
    " metadata = excluded.metadata, commit_ts_ms = excluded.commit_ts_ms";
constexpr const char* k_select_group_offsets =
    "SELECT t.name, o.partition, o.committed_offset, o.leader_epoch, o.metadata, o.commit_ts_ms"
    " FROM group_offsets o JOIN topics t ON t.topic_key = o.topic_key"
    " WHERE o.group_id = ?1 AND t.deleted_at_ms IS NULL ORDER BY t.name, o.partition";
constexpr const char* k_select_groups = "SELECT group_id FROM consumer_groups ORDER BY group_id";
constexpr const char* k_delete_group = "DELETE FROM consumer_groups WHERE group_id = ?1";

constexpr const char* k_select_topic_for_update =
    "SELECT topic_key, partition_count FROM topics WHERE name = ?1 AND deleted_at_ms IS NULL";
constexpr const char* k_update_partition_count =
    "UPDATE topics SET partition_count = ?2 WHERE topic_key = ?1";
constexpr const char* k_insert_more_partitions =
    "WITH RECURSIVE p(n) AS (SELECT ?2 UNION ALL SELECT n + 1 FROM p WHERE n + 1 < ?3)"
    " INSERT INTO partitions (topic_key, partition) SELECT ?1, n FROM p";
constexpr const char* k_update_log_start =
    "UPDATE partitions SET log_start_offset = ?3 WHERE topic_key = ?1 AND partition = ?2";
constexpr const char* k_delete_index_below =
    "DELETE FROM index_entries WHERE topic_key = ?1 AND partition = ?2 AND base_offset < ?3"
    " AND last_offset < ?3";
constexpr const char* k_mark_topic_deleted =
    "UPDATE topics SET deleted_at_ms = ?2 WHERE topic_key = ?1";
constexpr const char* k_delete_topic_partitions = "DELETE FROM partitions WHERE topic_key = ?1";
constexpr const char* k_delete_topic_configs = "DELETE FROM topic_configs WHERE topic_key = ?1";

constexpr const char* k_select_broker =
    "SELECT node_id, endpoints, rack, incarnation, registered_at_ms, heartbeat_at_ms"
    " FROM brokers WHERE node_id = ?1";
constexpr const char* k_upsert_broker =
    "INSERT INTO brokers (node_id, endpoints, rack, incarnation, registered_at_ms,"
    " heartbeat_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (node_id) DO UPDATE SET"
    " endpoints = excluded.endpoints, rack = excluded.rack, incarnation = excluded.incarnation,"
    " registered_at_ms = excluded.registered_at_ms, heartbeat_at_ms = excluded.heartbeat_at_ms";
constexpr const char* k_heartbeat_broker =
    "UPDATE brokers SET heartbeat_at_ms = ?3 WHERE node_id = ?1 AND incarnation = ?2";
constexpr const char* k_delete_broker =
    "DELETE FROM brokers WHERE node_id = ?1 AND incarnation = ?2";
constexpr const char* k_select_live_brokers =
    "SELECT node_id, endpoints, rack, incarnation, registered_at_ms, heartbeat_at_ms"
    " FROM brokers WHERE heartbeat_at_ms >= ?1 ORDER BY node_id";

constexpr const char* k_select_object_size =
    "SELECT object_size FROM objects WHERE object_key = ?1";
constexpr const char* k_insert_object =
    "INSERT INTO objects (object_key, object_size, kind, state, created_at_ms)"
    " VALUES (?1, ?2, 'ingest', 'live', ?3)";
constexpr const char* k_insert_index_entry =
    "INSERT INTO index_entries (topic_key, partition, base_offset, last_offset, max_timestamp,"
    " record_count, object_key, byte_offset, byte_length, timestamp_watermark)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
// The watermark never decreases with the offset, so the first entry at or above a time is the
// first row of this index range.
constexpr const char* k_select_by_timestamp =
    "SELECT base_offset, last_offset, max_timestamp, record_count, object_key, byte_offset,"
    " byte_length FROM index_entries"
    " WHERE topic_key = ?1 AND partition = ?2 AND timestamp_watermark >= ?3"
    " ORDER BY timestamp_watermark, base_offset LIMIT 1";
constexpr const char* k_select_object_entries =
    "SELECT t.name, e.partition, e.byte_offset, e.base_offset, e.last_offset"
    " FROM index_entries e JOIN topics t ON t.topic_key = e.topic_key WHERE e.object_key = ?1";
// Ranges of a partition never overlap, so only the entry starting at or before from_offset can
// begin below it: a primary-key seek for that entry, then a primary-key range scan.
constexpr const char* k_select_index =
    "SELECT base_offset, last_offset, max_timestamp, record_count, object_key, byte_offset,"
    " byte_length FROM index_entries"
    " WHERE topic_key = ?1 AND partition = ?2 AND last_offset >= ?3 AND base_offset >= COALESCE("
    "  (SELECT base_offset FROM index_entries WHERE topic_key = ?1 AND partition = ?2"
    "   AND base_offset <= ?3 ORDER BY base_offset DESC LIMIT 1), ?3)"
    " ORDER BY base_offset LIMIT ?4";

constexpr const char* k_select_index_span =
    "SELECT base_offset, last_offset, max_timestamp, record_count, object_key, byte_offset,"
    " byte_length FROM index_entries WHERE topic_key = ?1 AND partition = ?2"
    " AND last_offset >= ?3 AND base_offset <= ?4 ORDER BY base_offset";
constexpr const char* k_select_watermark_before =
    "SELECT timestamp_watermark FROM index_entries WHERE topic_key = ?1 AND partition = ?2"
    " AND base_offset < ?3 ORDER BY base_offset DESC LIMIT 1";
constexpr const char* k_insert_segment_object =
    "INSERT INTO objects (object_key, object_size, kind, state, created_at_ms)"
    " VALUES (?1, ?2, 'segment', 'live', ?3)";
constexpr const char* k_delete_index_span =
    "DELETE FROM index_entries WHERE topic_key = ?1 AND partition = ?2"
    " AND base_offset >= ?3 AND base_offset <= ?4";
// delete_after_ms holds the time the object lost its last index row; the collector adds the
// grace period.
constexpr const char* k_mark_unreferenced =
    "UPDATE objects SET state = 'deleting', delete_after_ms = ?2 WHERE object_key = ?1"
    " AND state = 'live' AND NOT EXISTS (SELECT 1 FROM index_entries WHERE object_key = ?1)";
constexpr const char* k_select_unreferenced =
    "SELECT object_key, object_size, delete_after_ms FROM objects"
    " WHERE state = 'deleting' AND delete_after_ms <= ?1 ORDER BY delete_after_ms, object_key"
    " LIMIT ?2";
constexpr const char* k_select_object_state =
    "SELECT state, EXISTS (SELECT 1 FROM index_entries WHERE object_key = ?1) FROM objects"
    " WHERE object_key = ?1";
constexpr const char* k_delete_object = "DELETE FROM objects WHERE object_key = ?1";
constexpr const char* k_select_objects_below =
    "SELECT DISTINCT object_key FROM index_entries WHERE topic_key = ?1 AND partition = ?2"
    " AND base_offset < ?3 AND last_offset < ?3";
constexpr const char* k_select_topic_objects =
    "SELECT DISTINCT object_key FROM index_entries WHERE topic_key = ?1";

topic_info topic_from_row(const query& q) {
  topic_info t;
  t.name = q.text(1);
  std::string_view id = q.blob(2);
  if (id.size() == t.id.size()) std::memcpy(t.id.data(), id.data(), id.size());
  t.partition_count = static_cast<int32_t>(q.i64(3));
  t.created_at_ms = q.i64(4);
  return t;
}

mresult<int> migrate(connection& conn) {
  auto migrations = sqlite_migrations();
  int known = migrations.empty() ? 0 : migrations.back().version;
  SH_META_TRY(txn, transaction::begin(conn, true));
  SH_META_CHECK(conn.exec(k_create_schema_version, "create schema_version"));
  int64_t current = 0;
  {
    SH_META_TRY(q, conn.prepare(k_select_schema_version));
    SH_META_TRY(row, q.step());
    if (row) current = q.i64(0);
  }
  if (current > known) {
    return make_error(errc::schema_too_new, "metadata database schema version " +
                                                std::to_string(current) +
                                                " is newer than this binary supports (" +
                                                std::to_string(known) + "); upgrade streamhouse");
  }
  for (const migration& m : migrations) {
    if (m.version <= current) continue;
    std::string sql(m.sql);  // exec needs a NUL-terminated string
    SH_META_CHECK(conn.exec(sql.c_str(), "apply migration " + std::to_string(m.version) + " (" +
                                             std::string(m.name) + ")"));
    SH_META_TRY(q, conn.prepare(k_insert_schema_version));
    SH_META_CHECK(q.bind(1, m.version).bind(2, m.name).bind(3, now_ms()).run());
  }
  SH_META_CHECK(txn.commit());
  return known;
}

class sqlite_store final : public metadata_store {
 public:
  sqlite_store(sqlite_options options, std::unique_ptr<connection> writer)
      : _options(std::move(options)), _writer(std::move(writer)) {
    // An in-memory database exists only in its one connection.
    if (_options.path == ":memory:" || _options.path.empty()) _options.read_connections = 0;
  }

  mresult<topic_info> create_topic(const std::string& name, int32_t partitions,
                                   const std::map<std::string, std::string>& configs) override {
    SH_META_CHECK(validate_create_topic(name, partitions, configs));
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    {
      SH_META_TRY(q, c.prepare(k_select_topic_key));
      SH_META_TRY(row, q.bind(1, name).step());
      if (row) return make_error(errc::already_exists, "topic '" + name + "' already exists");
    }
    topic_info t;
    t.name = name;
    t.partition_count = partitions;
    t.configs = configs;
    t.created_at_ms = now_ms();
    for (;;) {  // a collision of 122 random bits won't happen, but costs one lookup to rule out
      t.id = random_topic_id();
      SH_META_TRY(q, c.prepare(k_select_topic_id_exists));
      SH_META_TRY(row, q.bind_blob(1, t.id.data(), t.id.size()).step());
      if (!row) break;
    }
    int64_t key = 0;
    {
      SH_META_TRY(q, c.prepare(k_insert_topic));
      q.bind(1, name).bind_blob(2, t.id.data(), t.id.size()).bind(3, partitions);
      SH_META_TRY(row, q.bind(4, t.created_at_ms).step());
      if (!row) return make_error(errc::io_error, "sqlite: insert topic returned no key");
      key = q.i64(0);
    }
    for (const auto& [k, v] : configs) {
      SH_META_TRY(q, c.prepare(k_insert_topic_config));
      SH_META_CHECK(q.bind(1, key).bind(2, k).bind(3, v).run());
    }
    {
      SH_META_TRY(q, c.prepare(k_insert_partitions));
      SH_META_CHECK(q.bind(1, key).bind(2, partitions).run());
    }
    SH_META_CHECK(txn.commit());
    return t;
  }

  mresult<std::optional<topic_info>> get_topic(const std::string& name) override {
    return with_reader([&](connection& c) -> mresult<std::optional<topic_info>> {
      SH_META_TRY(txn, transaction::begin(c, false));
      (void)txn;
      return topic_of(c, name);
    });
  }

  mresult<std::vector<topic_info>> list_topics() override {
    return with_reader([&](connection& c) -> mresult<std::vector<topic_info>> {
      SH_META_TRY(txn, transaction::begin(c, false));
      (void)txn;
      std::vector<topic_info> topics;
      std::unordered_map<int64_t, size_t> by_key;
      {
        SH_META_TRY(q, c.prepare(k_select_live_topics));
        for (;;) {
          SH_META_TRY(row, q.step());
          if (!row) break;
          by_key.emplace(q.i64(0), topics.size());
          topics.push_back(topic_from_row(q));
        }
      }
      SH_META_TRY(q, c.prepare(k_select_live_topic_configs));
      for (;;) {
        SH_META_TRY(row, q.step());
        if (!row) break;
        auto it = by_key.find(q.i64(0));
        if (it != by_key.end()) topics[it->second].configs.emplace(q.text(1), q.text(2));
      }
      return topics;
    });
  }

  mresult<partition_state> get_partition(const std::string& topic, int32_t partition) override {
    return with_reader([&](connection& c) -> mresult<partition_state> {
      SH_META_TRY(q, c.prepare(k_select_partition_by_name));
      SH_META_TRY(row, q.bind(1, topic).bind(2, partition).step());
      if (!row) return not_found(topic, partition);
      return partition_state{q.i64(1), q.i64(2), q.i64(3)};
    });
  }

  mresult<topic_info> create_partitions(const std::string& topic, int32_t new_count) override {
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    int64_t key = -1;
    int32_t count = 0;
    {
      SH_META_TRY(q, c.prepare(k_select_topic_for_update));
      SH_META_TRY(row, q.bind(1, topic).step());
      if (!row) return make_error(errc::not_found, "unknown topic '" + topic + "'");
      key = q.i64(0);
      count = static_cast<int32_t>(q.i64(1));
    }
    if (new_count <= count || new_count > max_partition_count) {
      return make_error(errc::invalid_argument,
                        "topic '" + topic + "' has " + std::to_string(count) +
                            " partitions; the new count must be above that and at most " +
                            std::to_string(max_partition_count));
    }
    {
      SH_META_TRY(q, c.prepare(k_update_partition_count));
      SH_META_CHECK(q.bind(1, key).bind(2, new_count).run());
    }
    {
      SH_META_TRY(q, c.prepare(k_insert_more_partitions));
      SH_META_CHECK(q.bind(1, key).bind(2, count).bind(3, new_count).run());
    }
    SH_META_TRY(info, topic_of(c, topic));
    SH_META_CHECK(txn.commit());
    return std::move(*info);
  }

  mresult<topic_info> set_topic_configs(
      const std::string& name, const std::map<std::string, std::string>& configs) override {
    SH_META_CHECK(validate_configs(configs));
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    SH_META_TRY(key, topic_key_of(c, name));
    if (key < 0) return make_error(errc::not_found, "unknown topic '" + name + "'");
    {
      SH_META_TRY(q, c.prepare(k_delete_topic_configs));
      SH_META_CHECK(q.bind(1, key).run());
    }
    for (const auto& [k, v] : configs) {
      SH_META_TRY(q, c.prepare(k_insert_topic_config));
      SH_META_CHECK(q.bind(1, key).bind(2, k).bind(3, v).run());
    }
    SH_META_TRY(info, topic_of(c, name));
    SH_META_CHECK(txn.commit());
    if (!info) return make_error(errc::io_error, "sqlite: topic vanished while altering configs");
    return std::move(*info);
  }

  mresult<int64_t> delete_records(const std::string& topic, int32_t partition,
                                  int64_t offset) override {
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    SH_META_TRY(key, topic_key_of(c, topic));
    SH_META_TRY(offsets, partition_offsets_of(c, key, topic, partition));
    auto [log_start, hwm, max_ts] = offsets;
    (void)max_ts;
    if (offset == -1) offset = hwm;
    if (offset < -1 || offset > hwm) {
      return make_error(errc::invalid_argument,
                        "offset " + std::to_string(offset) + " is outside " + topic + "-" +
                            std::to_string(partition) + " (high watermark " + std::to_string(hwm) +
                            ")");
    }
    if (offset <= log_start) return log_start;
    {
      SH_META_TRY(q, c.prepare(k_update_log_start));
      SH_META_CHECK(q.bind(1, key).bind(2, partition).bind(3, offset).run());
    }
    std::vector<std::string> dropped;
    {
      SH_META_TRY(q, c.prepare(k_select_objects_below));
      q.bind(1, key).bind(2, partition).bind(3, offset);
      SH_META_CHECK(collect_texts(q, dropped));
    }
    {
      SH_META_TRY(q, c.prepare(k_delete_index_below));
      SH_META_CHECK(q.bind(1, key).bind(2, partition).bind(3, offset).run());
    }
    SH_META_CHECK(mark_unreferenced(c, dropped));
    SH_META_CHECK(txn.commit());
    return offset;
  }

  mresult<void> delete_topic(const std::string& name) override {
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    SH_META_TRY(key, topic_key_of(c, name));
    if (key < 0) return make_error(errc::not_found, "unknown topic '" + name + "'");
    {
      SH_META_TRY(q, c.prepare(k_mark_topic_deleted));
      SH_META_CHECK(q.bind(1, key).bind(2, now_ms()).run());
    }
    std::vector<std::string> dropped;
    {
      SH_META_TRY(q, c.prepare(k_select_topic_objects));
      q.bind(1, key);
      SH_META_CHECK(collect_texts(q, dropped));
    }
    {
      // Cascades to index entries, group offsets, producer state and mirror checkpoints.
      SH_META_TRY(q, c.prepare(k_delete_topic_partitions));
      SH_META_CHECK(q.bind(1, key).run());
    }
    SH_META_CHECK(mark_unreferenced(c, dropped));
    {
      SH_META_TRY(q, c.prepare(k_delete_topic_configs));
      SH_META_CHECK(q.bind(1, key).run());
    }
    return txn.commit();
  }

  mresult<std::vector<range_outcome>> commit_object(const object_commit& commit) override {
    SH_META_CHECK(validate_commit(commit));
    std::unique_lock lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    {
      SH_META_TRY(q, c.prepare(k_select_object_size));
      SH_META_TRY(row, q.bind(1, commit.object_key).step());
      if (row) {
        if (static_cast<uint64_t>(q.i64(0)) != commit.object_size) {
          return make_error(errc::conflict, "object '" + commit.object_key +
                                                "' is already registered with another size");
        }
        return replay_commit(c, commit);
      }
    }
    {
      SH_META_TRY(q, c.prepare(k_insert_object));
      q.bind(1, commit.object_key).bind(2, static_cast<int64_t>(commit.object_size));
      SH_META_CHECK(q.bind(3, now_ms()).run());
    }
    std::vector<range_outcome> outcomes(commit.ranges.size());
    std::map<std::pair<std::string, int32_t>, int64_t> changed;
    producer_states producers;
    std::set<producer_key> loaded_producers;
    std::set<producer_key> touched_producers;
    const std::string* topic = nullptr;  // the topic of topic_key below
    int64_t topic_key = -1;              // -1: the topic is unknown
    for (size_t idx : commit_lock_order(commit)) {
      const range_commit& r = commit.ranges[idx];
      range_outcome& out = outcomes[idx];
      if (topic == nullptr || *topic != r.topic) {
        topic = &r.topic;
        SH_META_TRY(key, topic_key_of(c, r.topic));
        topic_key = key;
      }
      if (topic_key < 0) {
        out.status = range_status::unknown_topic_or_partition;
        continue;
      }
      int64_t hwm = 0;
      int64_t max_ts = -1;
      {
        SH_META_TRY(q, c.prepare(k_select_high_watermark));
        SH_META_TRY(row, q.bind(1, topic_key).bind(2, r.partition).step());
        if (!row) {
          out.status = range_status::unknown_topic_or_partition;
          continue;
        }
        hwm = q.i64(0);
        max_ts = q.i64(1);
      }
      SH_META_CHECK(load_producers(c, producer_keys(topic_key, r), producers, loaded_producers));
      sequence_verdict verdict = check_sequences(producers, topic_key, r);
      if (verdict.status != range_status::ok) {
        out = range_outcome{verdict.status, verdict.base_offset, verdict.last_offset};
        continue;
      }
      int64_t count = range_offset_count(r);
      if (hwm > std::numeric_limits<int64_t>::max() - count) {
        return make_error(errc::conflict, "offsets of " + r.topic + "-" +
                                              std::to_string(r.partition) + " would overflow");
      }
      out.base_offset = hwm;
      out.last_offset = hwm + count - 1;
      int64_t range_ts = range_max_timestamp(r);
      max_ts = std::max(max_ts, range_ts);
      {
        SH_META_TRY(q, c.prepare(k_insert_index_entry));
        q.bind(1, topic_key).bind(2, r.partition).bind(3, out.base_offset);
        q.bind(4, out.last_offset).bind(5, range_ts).bind(6, count);
        q.bind(7, commit.object_key).bind(8, static_cast<int64_t>(r.byte_offset));
        SH_META_CHECK(q.bind(9, static_cast<int64_t>(r.byte_length)).bind(10, max_ts).run());
      }
      {
        SH_META_TRY(q, c.prepare(k_update_high_watermark));
        q.bind(1, topic_key).bind(2, r.partition).bind(3, hwm + count);
        SH_META_CHECK(q.bind(4, max_ts).run());
      }
      record_sequences(producers, touched_producers, topic_key, r, out.base_offset);
      changed[std::pair(r.topic, r.partition)] = hwm + count;
    }
    SH_META_CHECK(save_producers(c, producers, touched_producers));
    SH_META_CHECK(txn.commit());
    lock.unlock();  // a listener may call back into the store
    notify(changed);
    return outcomes;
  }

  mresult<std::vector<index_entry>> read_index(const std::string& topic, int32_t partition,
                                               int64_t from_offset, size_t max_entries) override {
    return with_reader([&](connection& c) -> mresult<std::vector<index_entry>> {
      SH_META_TRY(txn, transaction::begin(c, false));
      (void)txn;
      int64_t key = 0;
      {
        SH_META_TRY(q, c.prepare(k_select_partition_by_name));
        SH_META_TRY(row, q.bind(1, topic).bind(2, partition).step());
        if (!row) return not_found(topic, partition);
        key = q.i64(0);
      }
      std::vector<index_entry> entries;
      if (max_entries == 0) return entries;
      int64_t limit = max_entries > static_cast<size_t>(std::numeric_limits<int64_t>::max())
                          ? std::numeric_limits<int64_t>::max()
                          : static_cast<int64_t>(max_entries);
      SH_META_TRY(q, c.prepare(k_select_index));
      q.bind(1, key).bind(2, partition).bind(3, from_offset).bind(4, limit);
      for (;;) {
        SH_META_TRY(row, q.step());
        if (!row) break;
        index_entry e;
        e.base_offset = q.i64(0);
        e.last_offset = q.i64(1);
        e.max_timestamp = q.i64(2);
        e.record_count = q.i64(3);
        e.object_key = q.text(4);
        e.byte_offset = static_cast<uint64_t>(q.i64(5));
        e.byte_length = static_cast<uint64_t>(q.i64(6));
        entries.push_back(std::move(e));
      }
      return entries;
    });
  }

  mresult<void> commit_mirror_object(const mirror_commit& commit) override {
    SH_META_CHECK(validate_mirror_commit(commit));
    std::unique_lock lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    if (commit.fence) SH_META_CHECK(check_fence(c, *commit.fence));
    const bool checkpoint_only = commit.object_key.empty();
    if (!checkpoint_only) {
      SH_META_TRY(q, c.prepare(k_select_object_size));
      SH_META_TRY(row, q.bind(1, commit.object_key).step());
      if (row) {
        bool same_size = static_cast<uint64_t>(q.i64(0)) == commit.object_size;
        SH_META_TRY(same, same_size ? same_mirror_ranges(c, commit) : mresult<bool>(false));
        if (!same) {
          return make_error(errc::conflict, "object '" + commit.object_key +
                                                "' is already registered with other content");
        }
        return {};  // a retry of a commit that succeeded
      }
      SH_META_TRY(ins, c.prepare(k_insert_object));
      ins.bind(1, commit.object_key).bind(2, static_cast<int64_t>(commit.object_size));
      SH_META_CHECK(ins.bind(3, now_ms()).run());
    }
    std::vector<size_t> order(commit.ranges.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const range_commit& ra = commit.ranges[a].range;
      const range_commit& rb = commit.ranges[b].range;
      return std::tie(ra.topic, ra.partition, a) < std::tie(rb.topic, rb.partition, b);
    });
    std::map<std::pair<std::string, int32_t>, int64_t> changed;
    for (size_t idx : order) {
      const mirror_range& m = commit.ranges[idx];
      const range_commit& r = m.range;
      SH_META_TRY(key, topic_key_of(c, r.topic));
      SH_META_TRY(offsets, partition_offsets_of(c, key, r.topic, r.partition));
      auto [log_start, hwm, max_ts] = offsets;
      if (m.base_offset < hwm) {
        return make_error(errc::conflict, "mirror range at offset " +
                                              std::to_string(m.base_offset) + " is below " +
                                              r.topic + "-" + std::to_string(r.partition) +
                                              "'s high watermark " + std::to_string(hwm));
      }
      int64_t range_ts = range_max_timestamp(r);
      int64_t watermark = std::max(max_ts, range_ts);
      {
        SH_META_TRY(q, c.prepare(k_insert_index_entry));
        q.bind(1, key).bind(2, r.partition).bind(3, m.base_offset).bind(4, m.last_offset);
        q.bind(5, range_ts).bind(6, range_offset_count(r));
        q.bind(7, commit.object_key).bind(8, static_cast<int64_t>(r.byte_offset));
        SH_META_CHECK(q.bind(9, static_cast<int64_t>(r.byte_length)).bind(10, watermark).run());
      }
      // An empty log starts where its first data starts (the source's log start).
      SH_META_TRY(q, c.prepare(k_update_partition_offsets));
      q.bind(1, key).bind(2, r.partition).bind(3, log_start == hwm ? m.base_offset : log_start);
      SH_META_CHECK(q.bind(4, m.last_offset + 1).bind(5, watermark).run());
      changed[std::pair(r.topic, r.partition)] = m.last_offset + 1;
    }
    int64_t now = now_ms();
    for (const mirror_checkpoint& cp : commit.checkpoints) {
      SH_META_TRY(key, topic_key_of(c, cp.topic));
      SH_META_TRY(offsets, partition_offsets_of(c, key, cp.topic, cp.partition));
      auto [log_start, hwm, max_ts] = offsets;
      if (checkpoint_only && cp.next_source_offset < hwm) {
        return checkpoint_behind(cp, hwm);
      }
      {
        SH_META_TRY(q, c.prepare(k_upsert_checkpoint));
        q.bind(1, cp.mirror_name).bind(2, cp.source_topic).bind(3, cp.source_partition);
        q.bind(4, key).bind(5, cp.partition).bind(6, cp.next_source_offset);
        SH_META_CHECK(q.bind(7, commit.fence ? commit.fence->epoch : 0).bind(8, now).run());
      }
      if (!checkpoint_only && cp.next_source_offset > hwm) {
        SH_META_TRY(q, c.prepare(k_update_partition_offsets));
        q.bind(1, key).bind(2, cp.partition);
        q.bind(3, log_start == hwm ? cp.next_source_offset : log_start);
        SH_META_CHECK(q.bind(4, cp.next_source_offset).bind(5, max_ts).run());
        changed[std::pair(cp.topic, cp.partition)] = cp.next_source_offset;
      }
    }
    SH_META_CHECK(txn.commit());
    lock.unlock();  // a listener may call back into the store
    notify(changed);
    return {};
  }

  mresult<std::optional<mirror_checkpoint>> get_mirror_checkpoint(
      const std::string& mirror_name, const std::string& source_topic,
      int32_t source_partition) override {
    return with_reader([&](connection& c) -> mresult<std::optional<mirror_checkpoint>> {
      SH_META_TRY(q, c.prepare(k_select_checkpoint));
      q.bind(1, mirror_name).bind(2, source_topic).bind(3, source_partition);
      SH_META_TRY(row, q.step());
      if (!row) return std::optional<mirror_checkpoint>();
      return std::optional<mirror_checkpoint>(checkpoint_from_row(q));
    });
  }

  mresult<std::vector<mirror_checkpoint>> list_mirror_checkpoints(
      const std::string& mirror_name) override {
    return with_reader([&](connection& c) -> mresult<std::vector<mirror_checkpoint>> {
      SH_META_TRY(q, c.prepare(k_select_checkpoints));
      q.bind(1, mirror_name);
      std::vector<mirror_checkpoint> out;
      for (;;) {
        SH_META_TRY(row, q.step());
        if (!row) break;
        out.push_back(checkpoint_from_row(q));
      }
      return out;
    });
  }

  mresult<producer_identity> init_producer_id(const std::string& transactional_id) override {
    SH_META_CHECK(validate_transactional_id(transactional_id));
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    producer_identity id;
    if (!transactional_id.empty()) {
      SH_META_TRY(q, c.prepare(k_select_transactional_producer));
      SH_META_TRY(row, q.bind(1, transactional_id).step());
      if (row && q.i64(1) < std::numeric_limits<int16_t>::max() - 1) {
        id = producer_identity{q.i64(0), static_cast<int16_t>(q.i64(1) + 1)};
      }
    }
    if (id.producer_id < 0) {
      SH_META_TRY(q, c.prepare(k_next_producer_id));
      SH_META_TRY(row, q.step());
      if (!row) return make_error(errc::io_error, "sqlite: producer id counter is missing");
      id = producer_identity{q.i64(0), 0};
    }
    if (!transactional_id.empty()) {
      SH_META_TRY(q, c.prepare(k_upsert_transactional_producer));
      q.bind(1, id.producer_id).bind(2, id.producer_epoch).bind(3, transactional_id);
      SH_META_CHECK(q.bind(4, now_ms()).run());
    }
    SH_META_CHECK(txn.commit());
    return id;
  }

  mresult<std::vector<errc>> commit_group_offsets(
      const std::string& group_id, const std::vector<group_offset>& offsets,
      const std::optional<lease_fence>& fence) override {
    SH_META_CHECK(validate_group_id(group_id));
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    if (fence) SH_META_CHECK(check_fence(c, *fence));
    int64_t now = now_ms();
    {
      SH_META_TRY(q, c.prepare(k_upsert_group));
      SH_META_CHECK(q.bind(1, group_id).bind(2, now).run());
    }
    std::map<std::pair<std::string_view, int32_t>, errc> fate;
    for (size_t i : last_offset_per_partition(offsets)) {
      const group_offset& o = offsets[i];
      auto& code = fate[std::pair<std::string_view, int32_t>(o.topic, o.partition)];
      SH_META_TRY(key, topic_key_of(c, o.topic));
      auto exists = partition_offsets_of(c, key, o.topic, o.partition);
      if (!exists) {
        if (exists.code() != errc::not_found) return exists.error();
        code = errc::not_found;
        continue;
      }
      code = errc::ok;
      SH_META_TRY(q, c.prepare(k_upsert_group_offset));
      q.bind(1, group_id).bind(2, key).bind(3, o.partition).bind(4, o.offset);
      q.bind(5, o.leader_epoch).bind(6, o.metadata);
      SH_META_CHECK(q.bind(7, o.commit_timestamp_ms > 0 ? o.commit_timestamp_ms : now).run());
    }
    SH_META_CHECK(txn.commit());
    // Earlier entries for a partition share the fate of the last one, which was stored.
    std::vector<errc> codes;
    for (const group_offset& o : offsets) {
      codes.push_back(fate[std::pair<std::string_view, int32_t>(o.topic, o.partition)]);
    }
    return codes;
  }

  mresult<std::vector<group_offset>> fetch_group_offsets(const std::string& group_id) override {
    SH_META_CHECK(validate_group_id(group_id));
    return with_reader([&](connection& c) -> mresult<std::vector<group_offset>> {
      SH_META_TRY(q, c.prepare(k_select_group_offsets));
      q.bind(1, group_id);
      std::vector<group_offset> out;
      for (;;) {
        SH_META_TRY(row, q.step());
        if (!row) break;
        out.push_back(group_offset{q.text(0), static_cast<int32_t>(q.i64(1)), q.i64(2),
                                   static_cast<int32_t>(q.i64(3)), q.text(4), q.i64(5)});
      }
      return out;
    });
  }

  mresult<std::vector<std::string>> list_groups() override {
    return with_reader([&](connection& c) -> mresult<std::vector<std::string>> {
      SH_META_TRY(q, c.prepare(k_select_groups));
      std::vector<std::string> out;
      for (;;) {
        SH_META_TRY(row, q.step());
        if (!row) break;
        out.push_back(q.text(0));
      }
      return out;
    });
  }

  mresult<void> delete_group(const std::string& group_id,
                             const std::optional<lease_fence>& fence) override {
    SH_META_CHECK(validate_group_id(group_id));
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    if (fence) SH_META_CHECK(check_fence(c, *fence));
    {
      SH_META_TRY(q, c.prepare(k_delete_group));
      SH_META_CHECK(q.bind(1, group_id).run());
    }
    if (sqlite3_changes(c.db()) == 0) {
      return make_error(errc::not_found, "unknown group '" + group_id + "'");
    }
    return txn.commit();
  }

  mresult<broker_registration> register_broker(const broker_registration& broker,
                                               int64_t session_timeout_ms) override {
    SH_META_CHECK(validate_broker(broker, session_timeout_ms));
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    int64_t now = now_ms();
    broker_registration out = broker;
    out.registered_at_ms = now;
    out.heartbeat_at_ms = now;
    {
      SH_META_TRY(q, c.prepare(k_select_broker));
      SH_META_TRY(row, q.bind(1, broker.node_id).step());
      if (row) {
        if (q.text(3) == broker.incarnation) {
          out.registered_at_ms = q.i64(4);
        } else if (q.i64(5) > now - session_timeout_ms) {
          return make_error(errc::conflict, "node id " + std::to_string(broker.node_id) +
                                                " is in use by a live broker (incarnation " +
                                                q.text(3) + ")");
        }
      }
    }
    {
      SH_META_TRY(q, c.prepare(k_upsert_broker));
      q.bind(1, out.node_id).bind(2, out.endpoints).bind(3, out.rack).bind(4, out.incarnation);
      SH_META_CHECK(q.bind(5, out.registered_at_ms).bind(6, out.heartbeat_at_ms).run());
    }
    SH_META_CHECK(txn.commit());
    return out;
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
    return with_reader([&](connection& c) -> mresult<std::vector<broker_registration>> {
      SH_META_TRY(q, c.prepare(k_select_live_brokers));
      q.bind(1, now_ms() - max_age_ms);
      std::vector<broker_registration> out;
      for (;;) {
        SH_META_TRY(row, q.step());
        if (!row) break;
        out.push_back(broker_registration{static_cast<int32_t>(q.i64(0)), q.text(1), q.text(2),
                                          q.text(3), q.i64(4), q.i64(5)});
      }
      return out;
    });
  }

  mresult<lease> acquire_lease(const std::string& name, const std::string& owner,
                               int64_t ttl_ms) override {
    SH_META_CHECK(validate_lease_args(name, owner, ttl_ms));
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    SH_META_TRY(current, lease_of(c, name));
    int64_t now = now_ms();
    lease next{name, owner, 1, now, now + ttl_ms};
    if (current) {
      if (current->owner == owner) {
        next.epoch = current->epoch;
        next.acquired_at_ms = current->acquired_at_ms;
      } else if (current->expires_at_ms > now) {
        return *current;  // held by someone else
      } else {
        next.epoch = current->epoch + 1;
      }
    }
    {
      SH_META_TRY(q, c.prepare(k_upsert_lease));
      q.bind(1, name).bind(2, owner).bind(3, next.epoch).bind(4, next.acquired_at_ms);
      SH_META_CHECK(q.bind(5, next.expires_at_ms).run());
    }
    SH_META_CHECK(txn.commit());
    return next;
  }

  mresult<lease> renew_lease(const std::string& name, const std::string& owner, int64_t epoch,
                             int64_t ttl_ms) override {
    SH_META_CHECK(validate_lease_args(name, owner, ttl_ms));
    return set_lease_expiry(name, owner, epoch, now_ms() + ttl_ms);
  }

  mresult<void> release_lease(const std::string& name, const std::string& owner,
                              int64_t epoch) override {
    SH_META_CHECK(validate_lease_args(name, owner, 1));
    SH_META_CHECK(set_lease_expiry(name, owner, epoch, 0));
    return {};
  }

  mresult<std::optional<lease>> get_lease(const std::string& name) override {
    return with_reader([&](connection& c) { return lease_of(c, name); });
  }

  mresult<std::optional<index_entry>> find_by_timestamp(const std::string& topic, int32_t partition,
                                                        int64_t timestamp) override {
    return with_reader([&](connection& c) -> mresult<std::optional<index_entry>> {
      SH_META_TRY(txn, transaction::begin(c, false));
      (void)txn;
      int64_t key = 0;
      {
        SH_META_TRY(q, c.prepare(k_select_partition_by_name));
        SH_META_TRY(row, q.bind(1, topic).bind(2, partition).step());
        if (!row) return not_found(topic, partition);
        key = q.i64(0);
      }
      SH_META_TRY(q, c.prepare(k_select_by_timestamp));
      SH_META_TRY(row, q.bind(1, key).bind(2, partition).bind(3, timestamp).step());
      if (!row) return std::optional<index_entry>();
      return std::optional<index_entry>(index_entry{q.i64(0), q.i64(1), q.i64(2), q.i64(3),
                                                    q.text(4), static_cast<uint64_t>(q.i64(5)),
                                                    static_cast<uint64_t>(q.i64(6))});
    });
  }

  mresult<void> replace_with_segment(const segment_replacement& r) override {
    SH_META_CHECK(validate_segment_replacement(r));
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    SH_META_CHECK(check_fence(c, r.fence));
    SH_META_TRY(key, topic_key_of(c, r.topic));
    SH_META_TRY(offsets, partition_offsets_of(c, key, r.topic, r.partition));
    (void)offsets;
    {
      // The rows must be exactly what the compactor copied: anything else (DeleteRecords, another
      // compactor) makes the segment stale.
      SH_META_TRY(q, c.prepare(k_select_index_span));
      q.bind(1, key).bind(2, r.partition).bind(3, r.first_offset).bind(4, r.last_offset);
      size_t i = 0;
      for (;; ++i) {
        SH_META_TRY(row, q.step());
        if (!row) break;
        index_entry e{q.i64(0),
                      q.i64(1),
                      q.i64(2),
                      q.i64(3),
                      q.text(4),
                      static_cast<uint64_t>(q.i64(5)),
                      static_cast<uint64_t>(q.i64(6))};
        if (i >= r.replaced.size() || !same_index_entry(e, r.replaced[i])) {
          return make_error(errc::conflict, "index of " + r.topic + "-" +
                                                std::to_string(r.partition) +
                                                " changed under compaction");
        }
      }
      if (i != r.replaced.size()) {
        return make_error(errc::conflict, "index rows of " + r.topic + "-" +
                                              std::to_string(r.partition) + " are gone");
      }
    }
    int64_t watermark = -1;
    {
      SH_META_TRY(q, c.prepare(k_select_watermark_before));
      SH_META_TRY(row, q.bind(1, key).bind(2, r.partition).bind(3, r.first_offset).step());
      if (row) watermark = q.i64(0);
    }
    {
      SH_META_TRY(q, c.prepare(k_select_object_size));
      SH_META_TRY(row, q.bind(1, r.segment_key).step());
      if (row) {
        return make_error(errc::conflict, "object '" + r.segment_key + "' is already registered");
      }
    }
    int64_t now = now_ms();
    {
      SH_META_TRY(q, c.prepare(k_insert_segment_object));
      q.bind(1, r.segment_key).bind(2, static_cast<int64_t>(r.segment_size));
      SH_META_CHECK(q.bind(3, now).run());
    }
    {
      SH_META_TRY(q, c.prepare(k_delete_index_span));
      q.bind(1, key).bind(2, r.partition).bind(3, r.first_offset).bind(4, r.last_offset);
      SH_META_CHECK(q.run());
    }
    for (const index_entry& e : r.entries) {
      watermark = std::max(watermark, e.max_timestamp);
      SH_META_TRY(q, c.prepare(k_insert_index_entry));
      q.bind(1, key).bind(2, r.partition).bind(3, e.base_offset);
      q.bind(4, e.last_offset).bind(5, e.max_timestamp).bind(6, e.record_count);
      q.bind(7, r.segment_key).bind(8, static_cast<int64_t>(e.byte_offset));
      SH_META_CHECK(q.bind(9, static_cast<int64_t>(e.byte_length)).bind(10, watermark).run());
    }
    std::set<std::string> old_objects;
    for (const index_entry& e : r.replaced) old_objects.insert(e.object_key);
    for (const std::string& object : old_objects) {
      SH_META_TRY(q, c.prepare(k_mark_unreferenced));
      SH_META_CHECK(q.bind(1, object).bind(2, now).run());
    }
    return txn.commit();
  }

  mresult<std::vector<unreferenced_object>> list_unreferenced_objects(
      int64_t unreferenced_before_ms, size_t max_objects) override {
    return with_reader([&](connection& c) -> mresult<std::vector<unreferenced_object>> {
      std::vector<unreferenced_object> out;
      if (max_objects == 0) return out;
      int64_t limit = max_objects > static_cast<size_t>(std::numeric_limits<int64_t>::max())
                          ? std::numeric_limits<int64_t>::max()
                          : static_cast<int64_t>(max_objects);
      SH_META_TRY(q, c.prepare(k_select_unreferenced));
      q.bind(1, unreferenced_before_ms).bind(2, limit);
      for (;;) {
        SH_META_TRY(row, q.step());
        if (!row) break;
        out.push_back({q.text(0), static_cast<uint64_t>(q.i64(1)), q.i64(2)});
      }
      return out;
    });
  }

  mresult<void> forget_object(const std::string& object_key) override {
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    {
      SH_META_TRY(q, c.prepare(k_select_object_state));
      SH_META_TRY(row, q.bind(1, object_key).step());
      if (!row) return {};
      if (q.text(0) != "deleting" || q.i64(1) != 0) {
        return make_error(errc::conflict, "object '" + object_key + "' is still referenced");
      }
    }
    {
      SH_META_TRY(q, c.prepare(k_delete_object));
      SH_META_CHECK(q.bind(1, object_key).run());
    }
    return txn.commit();
  }

  mresult<std::vector<std::string>> registered_objects(
      const std::vector<std::string>& object_keys) override {
    if (object_keys.size() > 10000) {
      return make_error(errc::invalid_argument, "registered_objects: more than 10000 keys");
    }
    return with_reader([&](connection& c) -> mresult<std::vector<std::string>> {
      std::vector<std::string> out;
      for (const std::string& k : object_keys) {
        SH_META_TRY(q, c.prepare(k_select_object_size));
        SH_META_TRY(row, q.bind(1, k).step());
        if (row) out.push_back(k);
      }
      return out;
    });
  }

  mresult<void> set_commit_listener(commit_listener listener) override {
    std::lock_guard lock(_listener_mu);
    _listener = listener ? std::make_shared<commit_listener>(std::move(listener)) : nullptr;
    return {};
  }

  std::string describe() const override { return "sqlite:" + _options.path; }

 private:
  static error_info<errc> not_found(const std::string& topic, int32_t partition) {
    return make_error(errc::not_found,
                      "unknown topic or partition " + topic + "-" + std::to_string(partition));
  }

  // The outcomes recorded for an object committed before (a retried commit).
  mresult<std::vector<range_outcome>> replay_commit(connection& c, const object_commit& commit) {
    std::map<std::tuple<std::string, int32_t, uint64_t>, std::pair<int64_t, int64_t>> recorded;
    {
      SH_META_TRY(q, c.prepare(k_select_object_entries));
      q.bind(1, commit.object_key);
      for (;;) {
        SH_META_TRY(row, q.step());
        if (!row) break;
        recorded.emplace(
            std::tuple(q.text(0), static_cast<int32_t>(q.i64(1)), static_cast<uint64_t>(q.i64(2))),
            std::pair(q.i64(3), q.i64(4)));
      }
    }
    std::vector<range_outcome> outcomes(commit.ranges.size());
    producer_states producers;
    std::set<producer_key> loaded;
    for (size_t i = 0; i < commit.ranges.size(); ++i) {
      const range_commit& r = commit.ranges[i];
      auto it = recorded.find(std::tuple(r.topic, r.partition, r.byte_offset));
      if (it != recorded.end()) {
        outcomes[i].base_offset = it->second.first;
        outcomes[i].last_offset = it->second.second;
        continue;
      }
      // Not committed the first time: unknown partition or refused by the sequence checks.
      // Recompute what can still be known; a duplicate keeps its original offsets.
      outcomes[i].status = range_status::unknown_topic_or_partition;
      SH_META_TRY(key, topic_key_of(c, r.topic));
      if (key < 0) continue;
      {
        SH_META_TRY(q, c.prepare(k_select_high_watermark));
        SH_META_TRY(row, q.bind(1, key).bind(2, r.partition).step());
        if (!row) continue;
      }
      SH_META_CHECK(load_producers(c, producer_keys(key, r), producers, loaded));
      sequence_verdict verdict = check_sequences(producers, key, r);
      if (verdict.status != range_status::ok) {
        outcomes[i] = range_outcome{verdict.status, verdict.base_offset, verdict.last_offset};
      }
    }
    return outcomes;
  }

  static mirror_checkpoint checkpoint_from_row(const query& q) {
    return mirror_checkpoint{q.text(0),
                             q.text(1),
                             static_cast<int32_t>(q.i64(2)),
                             q.text(3),
                             static_cast<int32_t>(q.i64(4)),
                             q.i64(5),
                             q.i64(6)};
  }

  struct partition_row {
    int64_t log_start;
    int64_t high_watermark;
    int64_t max_timestamp;
  };

  // not_found when the topic (key < 0) or partition is unknown.
  static mresult<partition_row> partition_offsets_of(connection& c, int64_t key,
                                                     const std::string& topic, int32_t partition) {
    if (key >= 0) {
      SH_META_TRY(q, c.prepare(k_select_partition_offsets));
      SH_META_TRY(row, q.bind(1, key).bind(2, partition).step());
      if (row) return partition_row{q.i64(0), q.i64(1), q.i64(2)};
    }
    return not_found(topic, partition);
  }

  // Whether the registered object holds exactly the ranges of `commit`.
  static mresult<bool> same_mirror_ranges(connection& c, const mirror_commit& commit) {
    std::map<std::tuple<std::string, int32_t, uint64_t>, std::pair<int64_t, int64_t>> recorded;
    SH_META_TRY(q, c.prepare(k_select_object_entries));
    q.bind(1, commit.object_key);
    for (;;) {
      SH_META_TRY(row, q.step());
      if (!row) break;
      recorded.emplace(
          std::tuple(q.text(0), static_cast<int32_t>(q.i64(1)), static_cast<uint64_t>(q.i64(2))),
          std::pair(q.i64(3), q.i64(4)));
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

  // Runs a heartbeat or unregister statement; fenced when no row of that incarnation exists.
  mresult<void> change_broker(const char* sql, int32_t node_id, const std::string& incarnation) {
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(q, c.prepare(sql));
    q.bind(1, node_id).bind(2, incarnation);
    if (sql == k_heartbeat_broker) q.bind(3, now_ms());
    SH_META_CHECK(q.run());
    if (sqlite3_changes(c.db()) == 0) {
      return make_error(errc::fenced, "node id " + std::to_string(node_id) +
                                          " is not registered to incarnation " + incarnation);
    }
    return {};
  }

  static mresult<std::optional<lease>> lease_of(connection& c, const std::string& name) {
    SH_META_TRY(q, c.prepare(k_select_lease));
    SH_META_TRY(row, q.bind(1, name).step());
    if (!row) return std::optional<lease>();
    return std::optional<lease>(lease{q.text(0), q.text(1), q.i64(2), q.i64(3), q.i64(4)});
  }

  static mresult<void> collect_texts(query& q, std::vector<std::string>& out) {
    for (;;) {
      SH_META_TRY(row, q.step());
      if (!row) return {};
      out.push_back(q.text(0));
    }
  }

  // Objects among `keys` that no index row references any more become unreferenced (now).
  static mresult<void> mark_unreferenced(connection& c, const std::vector<std::string>& keys) {
    int64_t now = now_ms();
    for (const std::string& object : keys) {
      SH_META_TRY(q, c.prepare(k_mark_unreferenced));
      SH_META_CHECK(q.bind(1, object).bind(2, now).run());
    }
    return {};
  }

  // Checks inside a write transaction that `fence` still holds.
  static mresult<void> check_fence(connection& c, const lease_fence& fence) {
    SH_META_TRY(current, lease_of(c, fence.name));
    if (!current || current->epoch != fence.epoch) {
      return make_error(errc::fenced, "lease '" + fence.name + "' epoch " +
                                          std::to_string(fence.epoch) + " is no longer current");
    }
    return {};
  }

  mresult<lease> set_lease_expiry(const std::string& name, const std::string& owner, int64_t epoch,
                                  int64_t expires_at_ms) {
    std::lock_guard lock(_write_mu);
    connection& c = *_writer;
    SH_META_TRY(txn, transaction::begin(c, true));
    SH_META_TRY(current, lease_of(c, name));
    if (!current || current->owner != owner || current->epoch != epoch) {
      return make_error(errc::fenced, "lease '" + name + "' is not held by " + owner +
                                          " at epoch " + std::to_string(epoch));
    }
    {
      SH_META_TRY(q, c.prepare(k_update_lease_expiry));
      SH_META_CHECK(q.bind(1, name).bind(2, expires_at_ms).run());
    }
    SH_META_CHECK(txn.commit());
    current->expires_at_ms = expires_at_ms;
    return *current;
  }

  static mresult<std::optional<topic_info>> topic_of(connection& c, const std::string& name) {
    topic_info t;
    int64_t key = 0;
    {
      SH_META_TRY(q, c.prepare(k_select_live_topic));
      SH_META_TRY(row, q.bind(1, name).step());
      if (!row) return std::optional<topic_info>();
      key = q.i64(0);
      t = topic_from_row(q);
    }
    SH_META_TRY(q, c.prepare(k_select_topic_configs));
    q.bind(1, key);
    for (;;) {
      SH_META_TRY(row, q.step());
      if (!row) break;
      t.configs.emplace(q.text(0), q.text(1));
    }
    return std::optional<topic_info>(std::move(t));
  }

  // The live topic's key, or -1.
  static mresult<int64_t> topic_key_of(connection& c, const std::string& topic) {
    SH_META_TRY(q, c.prepare(k_select_topic_key));
    SH_META_TRY(row, q.bind(1, topic).step());
    return row ? q.i64(0) : int64_t{-1};
  }

  // Loads the retained batches of `keys` not loaded yet into `states`.
  static mresult<void> load_producers(connection& c, const std::set<producer_key>& keys,
                                      producer_states& states, std::set<producer_key>& loaded) {
    for (const producer_key& k : keys) {
      if (!loaded.insert(k).second) continue;
      SH_META_TRY(q, c.prepare(k_select_producer_batches));
      q.bind(1, k.topic_key).bind(2, k.partition).bind(3, k.producer_id);
      std::vector<producer_batch_record> batches;
      for (;;) {
        SH_META_TRY(row, q.step());
        if (!row) break;
        batches.push_back(
            producer_batch_record{static_cast<int16_t>(q.i64(0)), static_cast<int32_t>(q.i64(1)),
                                  static_cast<int32_t>(q.i64(2)), q.i64(3), q.i64(4)});
      }
      if (!batches.empty()) states[k] = std::move(batches);
    }
    return {};
  }

  static mresult<void> save_producers(connection& c, const producer_states& states,
                                      const std::set<producer_key>& touched) {
    int64_t now = now_ms();
    for (const producer_key& k : touched) {
      {
        SH_META_TRY(q, c.prepare(k_delete_producer_batches));
        SH_META_CHECK(q.bind(1, k.topic_key).bind(2, k.partition).bind(3, k.producer_id).run());
      }
      auto it = states.find(k);
      if (it == states.end()) continue;
      for (const producer_batch_record& b : it->second) {
        SH_META_TRY(q, c.prepare(k_insert_producer_batch));
        q.bind(1, k.topic_key).bind(2, k.partition).bind(3, k.producer_id);
        q.bind(4, b.first_sequence).bind(5, b.epoch).bind(6, b.last_sequence);
        SH_META_CHECK(q.bind(7, b.base_offset).bind(8, b.last_offset).bind(9, now).run());
      }
    }
    return {};
  }

  // Called after a commit, outside the write lock.
  void notify(const std::map<std::pair<std::string, int32_t>, int64_t>& changed) {
    if (changed.empty()) return;
    std::shared_ptr<commit_listener> listener;
    {
      std::lock_guard lock(_listener_mu);
      listener = _listener;
    }
    if (!listener) return;
    std::vector<partition_change> changes;
    changes.reserve(changed.size());
    for (const auto& [key, hwm] : changed) changes.push_back({key.first, key.second, hwm});
    (*listener)(changes, false);
  }

  // Runs f(connection&) on a pooled reader connection (or on the writer when there is no pool).
  template <class F>
  auto with_reader(F&& f) -> decltype(f(std::declval<connection&>())) {
    if (_options.read_connections <= 0) {
      std::lock_guard lock(_write_mu);
      return f(*_writer);
    }
    std::unique_ptr<connection> conn;
    {
      std::unique_lock lock(_pool_mu);
      _pool_cv.wait(lock,
                    [&] { return !_idle.empty() || _open_readers < _options.read_connections; });
      if (!_idle.empty()) {
        conn = std::move(_idle.back());
        _idle.pop_back();
      } else {
        ++_open_readers;
      }
    }
    if (!conn) {
      auto opened = connection::open(_options.path, _options.busy_timeout_ms, true);
      if (!opened) {
        {
          std::lock_guard lock(_pool_mu);
          --_open_readers;
        }
        _pool_cv.notify_one();
        return opened.error();
      }
      conn = std::move(*opened);
    }
    auto result = f(*conn);
    {
      std::lock_guard lock(_pool_mu);
      _idle.push_back(std::move(conn));
    }
    _pool_cv.notify_one();
    return result;
  }

  sqlite_options _options;
  std::mutex _write_mu;  // guards _writer
  std::unique_ptr<connection> _writer;
  std::mutex _pool_mu;  // guards _idle and _open_readers
  std::condition_variable _pool_cv;
  std::vector<std::unique_ptr<connection>> _idle;
  int _open_readers = 0;
  std::mutex _listener_mu;  // guards _listener (copied out before each call)
  std::shared_ptr<commit_listener> _listener;
};

}  // namespace

int sqlite_schema_version() {
  auto migrations = sqlite_migrations();
  return migrations.empty() ? 0 : migrations.back().version;
}

mresult<std::unique_ptr<metadata_store>> open_sqlite_store(const sqlite_options& options) {
  SH_META_TRY(writer, connection::open(options.path, options.busy_timeout_ms, false));
  SH_META_TRY(version, migrate(*writer));
  (void)version;
  return std::unique_ptr<metadata_store>(new sqlite_store(options, std::move(writer)));
}

}  // namespace sh::metadata::detail
