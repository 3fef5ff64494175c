#include "store_harness.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
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

  mresult<std::unique_ptr<metadata_store>> open() override {
    return open_metadata_store("sqlite://" + _db_path);
  }

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

}  // namespace

std::vector<harness_factory> all_harness_factories() {
  return {
      {"sqlite", [] { return std::make_unique<sqlite_harness>(); }},
  };
}

}  // namespace sh::metadata::testing
