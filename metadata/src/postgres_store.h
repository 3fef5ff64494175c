#pragma once
// The PostgreSQL metadata_store (many brokers share one database). Internal: open it through
// open_metadata_store("postgresql://..." or "postgresql:<libpq keyword conninfo>").
#include <memory>
#include <string>

#include "sh/metadata/metadata_store.h"

namespace sh::metadata::detail {

struct postgres_options {
  std::string conninfo;  // a libpq URI or keyword/value connection string
  int max_connections = 8;
  int connect_timeout_s = 10;
  int max_attempts = 3;  // of a transaction, on a lost connection, deadlock or serialization error
};

mresult<std::unique_ptr<metadata_store>> open_postgres_store(const postgres_options& options);

// The newest schema version this binary knows for PostgreSQL.
int postgres_schema_version();

}  // namespace sh::metadata::detail
