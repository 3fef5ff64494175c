// SQLite-specific tests: URL forms, pragmas, in-memory stores and the query plan of read_index.
// Behaviour every store shares is in metadata_conformance_test.cc.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "sh/metadata/metadata_store.h"
#include "store_harness.h"

namespace sh::metadata::testing {
namespace {

std::string query_text(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string out;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK) {
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(stmt, sqlite3_column_count(stmt) - 1);
      if (!out.empty()) out += "\n";
      out += t != nullptr ? reinterpret_cast<const char*>(t) : "";
    }
  }
  sqlite3_finalize(stmt);
  sqlite3_close_v2(db);
  return out;
}

TEST(sqlite_store, url_forms) {
  temp_dir dir;
  for (const std::string& url : {"sqlite://" + dir.path() + "/a.db", dir.path() + "/b.db",
                                 "sqlite:" + dir.path() + "/c.db"}) {
    auto s = open_metadata_store(url);
    ASSERT_TRUE(s) << url << ": " << s.message();
    EXPECT_EQ((*s)->describe().rfind("sqlite:" + dir.path(), 0), 0u) << (*s)->describe();
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/a.db"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/b.db"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/c.db"));

  // A relative path is relative to the working directory.
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  auto rel = open_metadata_store("sqlite:rel.db");
  std::filesystem::current_path(cwd);
  ASSERT_TRUE(rel) << rel.message();
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/rel.db"));
}

TEST(sqlite_store, bad_urls) {
  auto empty = open_metadata_store("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.code(), errc::invalid_argument);
  auto no_path = open_metadata_store("sqlite:");
  ASSERT_FALSE(no_path);
  EXPECT_EQ(no_path.code(), errc::invalid_argument);
  for (const char* url : {"http://x/y", "mysql://h/db"}) {
    auto r = open_metadata_store(url);
    ASSERT_FALSE(r) << url;
    EXPECT_EQ(r.code(), errc::unsupported) << url;
  }
  auto missing_dir = open_metadata_store("sqlite:///nonexistent-dir-sh/x/meta.db");
  ASSERT_FALSE(missing_dir);
  EXPECT_EQ(missing_dir.code(), errc::io_error) << missing_dir.message();
}

TEST(sqlite_store, not_a_database_is_an_error) {
  temp_dir dir;
  std::string path = dir.path() + "/garbage.db";
  FILE* f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::string junk(4096, 'x');
  fwrite(junk.data(), 1, junk.size(), f);
  fclose(f);
  auto r = open_metadata_store(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::io_error) << r.message();
}

TEST(sqlite_store, durable_settings) {
  temp_dir dir;
  std::string path = dir.path() + "/m.db";
  auto s = open_metadata_store(path);
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(query_text(path, "PRAGMA journal_mode"), "wal");
  // Foreign keys: the index refuses rows for partitions that do not exist.
  EXPECT_EQ(
      query_text(path, "SELECT COUNT(DISTINCT id) FROM pragma_foreign_key_list('index_entries')"),
      "2");
  EXPECT_EQ(query_text(path, "SELECT MAX(version) = COUNT(*) FROM schema_version"), "1");
}

// A broker and its in-process mirror open one new database file at the same moment: switching
// to WAL answers SQLITE_BUSY at once (no busy handler) while the other connection holds a lock.
TEST(sqlite_store, stores_opened_together_on_a_new_file_all_open) {
  temp_dir dir;
  for (int round = 0; round < 20; ++round) {
    const std::string path = dir.path() + "/together-" + std::to_string(round) + ".db";
    std::vector<std::string> errors(4);
    std::vector<std::thread> openers;
    for (size_t i = 0; i < errors.size(); ++i) {
      openers.emplace_back([&, i] {
        auto store = open_metadata_store(path);
        if (!store) errors[i] = store.message();
      });
    }
    for (auto& t : openers) t.join();
    for (const auto& e : errors) EXPECT_EQ(e, "") << "round " << round;
  }
}

TEST(sqlite_store, in_memory_store_works) {
  auto s = open_metadata_store("sqlite::memory:");
  ASSERT_TRUE(s) << s.message();
  metadata_store& store = **s;
  ASSERT_TRUE(store.create_topic("t", 2, {}));
  object_commit c;
  c.object_key = "o";
  c.object_size = 10;
  c.ranges.push_back(range_commit{"t", 1, 0, 10, -1, -1, {batch_commit{3}}});
  auto out = store.commit_object(c);
  ASSERT_TRUE(out) << out.message();
  EXPECT_EQ((*out)[0].last_offset, 2);
  auto idx = store.read_index("t", 1, 0, 10);
  ASSERT_TRUE(idx);
  EXPECT_EQ(idx->size(), 1u);
}

TEST(sqlite_store, read_index_uses_the_primary_key) {
  temp_dir dir;
  std::string path = dir.path() + "/m.db";
  auto s = open_metadata_store(path);
  ASSERT_TRUE(s) << s.message();
  // The same statement the store runs (kept in sync by hand; the point is the plan's shape).
  std::string plan = query_text(
      path,
      "EXPLAIN QUERY PLAN SELECT base_offset, last_offset, max_timestamp, record_count,"
      " object_key, byte_offset, byte_length FROM index_entries"
      " WHERE topic_key = ?1 AND partition = ?2 AND last_offset >= ?3 AND base_offset >= COALESCE("
      "  (SELECT base_offset FROM index_entries WHERE topic_key = ?1 AND partition = ?2"
      "   AND base_offset <= ?3 ORDER BY base_offset DESC LIMIT 1), ?3)"
      " ORDER BY base_offset LIMIT ?4");
  EXPECT_NE(plan.find("USING PRIMARY KEY (topic_key=? AND partition=? AND base_offset>?)"),
            std::string::npos)
      << plan;
  EXPECT_NE(plan.find("USING PRIMARY KEY (topic_key=? AND partition=? AND base_offset<?)"),
            std::string::npos)
      << plan;
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << "no sort step: " << plan;
  EXPECT_EQ(plan.find("SCAN"), std::string::npos) << "no full scan: " << plan;

  std::string by_time =
      query_text(path,
                 "EXPLAIN QUERY PLAN SELECT base_offset, last_offset, max_timestamp, record_count,"
                 " object_key, byte_offset, byte_length FROM index_entries"
                 " WHERE topic_key = ?1 AND partition = ?2 AND timestamp_watermark >= ?3"
                 " ORDER BY timestamp_watermark, base_offset LIMIT 1");
  EXPECT_NE(by_time.find("INDEX index_entries_time (topic_key=? AND partition=? AND "
                         "timestamp_watermark>?)"),
            std::string::npos)
      << by_time;
  EXPECT_EQ(by_time.find("TEMP B-TREE"), std::string::npos) << by_time;
}

}  // namespace
}  // namespace sh::metadata::testing
