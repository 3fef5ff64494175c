#include "store_harness.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <stdexcept>

namespace sh::metadata::testing {

temp_dir::temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sh_metadata_test.XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  _path = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(_path, ec);
}

namespace {

class sqlite_harness final : public store_harness {
 public:
  sqlite_harness() : _db_path(_dir.path() + "/metadata.db") {}

  std::string url() const override { return "sqlite://" + _db_path; }

  std::string exec_sql(const std::string& sql) override {
    sqlite3* db = nullptr;
    std::string err;
    if (sqlite3_open_v2(_db_path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        nullptr) != SQLITE_OK) {
      err = sqlite3_errmsg(db);
    } else if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      err = sqlite3_errmsg(db);
    }
    sqlite3_close_v2(db);
    return err;
  }

  std::optional<int64_t> query_int(const std::string& sql) override {
    sqlite3* db = nullptr;
    std::optional<int64_t> value;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_open_v2(_db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      value = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    sqlite3_close_v2(db);
    return value;
  }

 private:
  temp_dir _dir;
  std::string _db_path;
};

// A fresh schema in the PostgreSQL database named by $PG_DSN (dropped at the end), so tests are
// hermetic and may run in parallel against one server. Skipped when PG_DSN is unset.
class postgres_harness final : public store_harness {
 public:
  postgres_harness() {
    const char* dsn = std::getenv("PG_DSN");
    if (dsn == nullptr || *dsn == '\0') return;
    _dsn = dsn;
    std::random_device rd;
    char buf[17];
    snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
    _schema = std::string("sh_test_") + buf;
    _admin = PQconnectdb(_dsn.c_str());
    PQsetNoticeProcessor(
        _admin, [](void*, const char*) {}, nullptr);
    exec_raw("CREATE SCHEMA " + _schema);
  }
  ~postgres_harness() override {
    if (_admin != nullptr) {
      exec_raw("DROP SCHEMA IF EXISTS " + _schema + " CASCADE");
      PQfinish(_admin);
    }
  }

  std::string skip_reason() const override {
    return _dsn.empty() ? "PG_DSN is not set (e.g. \"host=127.0.0.1 port=5433 user=postgres "
                          "dbname=broker_test\")"
                        : "";
  }

  // The store's url: the DSN with the test schema as search_path.
  // The store's url: the DSN with the test schema as search_path and as application_name (so a
  // test can find its own connections in pg_stat_activity).
  std::string url() const override {
    if (_dsn.starts_with("postgres")) {  // a URI
      return _dsn + (_dsn.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" +
             _schema + "&application_name=" + _schema;
    }
    return "postgresql:" + _dsn + " options='-csearch_path=" + _schema +
           "' application_name=" + _schema;
  }

  std::string exec_sql(const std::string& sql) override {
    return exec_raw("SET search_path TO " + _schema + "; " + sql);
  }

  std::optional<int64_t> query_int(const std::string& sql) override {
    PGresult* r = PQexec(_admin, ("SET search_path TO " + _schema + "; " + sql).c_str());
    std::optional<int64_t> value;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
      value = std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
    }
    PQclear(r);
    return value;
  }

  const std::string& schema() const { return _schema; }

 private:
  std::string exec_raw(const std::string& sql) {
    PGresult* r = PQexec(_admin, sql.c_str());
    std::string err;
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
      err = PQerrorMessage(_admin);
      if (err.empty()) err = "error";
    }
    PQclear(r);
    return err;
  }

  std::string _dsn;
  std::string _schema;
  PGconn* _admin = nullptr;
};

}  // namespace

std::unique_ptr<store_harness> make_postgres_harness() {
  return std::make_unique<postgres_harness>();
}

std::vector<harness_factory> all_harness_factories() {
  return {
      {"sqlite", [] { return std::make_unique<sqlite_harness>(); }},
      {"postgresql", [] { return make_postgres_harness(); }},
  };
}

}  // namespace sh::metadata::testing
