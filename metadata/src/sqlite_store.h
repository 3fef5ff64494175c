#pragma once
// The SQLite metadata_store (embedded, single broker). Internal: open it through
// open_metadata_store("sqlite:...").
#include <memory>
#include <string>

#include "sh/metadata/metadata_store.h"

namespace sh::metadata::detail {

struct sqlite_options {
  std::string path;  // file path, or ":memory:" (one connection, gone on close)
  int busy_timeout_ms = 5000;
  int read_connections = 4;  // WAL lets readers run beside the single writer
};

mresult<std::unique_ptr<metadata_store>> open_sqlite_store(const sqlite_options& options);

// The newest schema version this binary knows for SQLite.
int sqlite_schema_version();

}  // namespace sh::metadata::detail
