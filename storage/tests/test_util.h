#pragma once
// Helpers shared by the storage tests: a scratch directory removed on destruction.
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace sh::storage::testing {

class temp_dir {
 public:
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/sh-storage-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    _path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(_path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return _path; }

 private:
  std::filesystem::path _path;
};

}  // namespace sh::storage::testing
