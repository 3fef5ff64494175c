#pragma once
// Test harnesses for the metadata_store conformance suite. A harness owns one fresh, empty
// database of one implementation; every open() of the same harness reaches the same database
// (so tests can close and reopen). Adding an implementation = adding a factory here.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sh/metadata/metadata_store.h"

namespace sh::metadata::testing {

// An object with one range of one batch of `records` records (100 bytes at offset 0) for
// `topic`-`partition`, every timestamp `max_timestamp` (-1: none).
inline object_commit one_range(const std::string& key, const std::string& topic, int32_t partition,
                               int32_t records, int64_t max_timestamp = -1) {
  object_commit c;
  c.object_key = key;
  c.object_size = 100;
  range_commit r;
  r.topic = topic;
  r.partition = partition;
  r.byte_offset = 0;
  r.byte_length = 100;
  r.max_timestamp = max_timestamp;
  batch_commit b;
  b.offset_count = records;
  b.max_timestamp = max_timestamp;
  r.batches.push_back(b);
  c.ranges.push_back(r);
  return c;
}

class store_harness {
 public:
  virtual ~store_harness() = default;
  // The url open() passes to open_metadata_store.
  virtual std::string url() const = 0;
  virtual mresult<std::unique_ptr<metadata_store>> open() { return open_metadata_store(url()); }
  // Runs SQL directly on the database behind the store (for migration tests). Returns "" on
  // success or the database's error message.
  virtual std::string exec_sql(const std::string& sql) = 0;
  // The first column of the first row of a query, or nullopt on error or no row.
  virtual std::optional<int64_t> query_int(const std::string& sql) = 0;
  // Why the harness cannot run here (e.g. no database server configured); "" when it can.
  virtual std::string skip_reason() const { return {}; }
};

struct harness_factory {
  std::string name;  // a GoogleTest parameter name: [A-Za-z0-9_]
  std::function<std::unique_ptr<store_harness>()> make;
};

std::vector<harness_factory> all_harness_factories();

// The PostgreSQL harness on its own (for PostgreSQL-specific tests); skip_reason() says when
// PG_DSN is unset.
std::unique_ptr<store_harness> make_postgres_harness();

// A fresh temporary directory, removed with everything in it on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return _path; }

 private:
  std::string _path;
};

}  // namespace sh::metadata::testing
