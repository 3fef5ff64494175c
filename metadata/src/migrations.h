#pragma once
// Schema migrations embedded into the binary at build time (see cmake/embed_migrations.cmake).
#include <span>
#include <string_view>

namespace sh::metadata::detail {

struct migration {
  int version;            // 1, 2, 3... in order
  std::string_view name;  // file name without number and extension, e.g. "initial"
  std::string_view sql;   // the whole file; may hold many statements
};

std::span<const migration> sqlite_migrations();
std::span<const migration> postgresql_migrations();

}  // namespace sh::metadata::detail
