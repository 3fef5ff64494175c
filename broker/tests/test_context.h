#pragma once
// A broker_context on the embedded stores (SQLite + local directory) in a fresh directory of its
// own, for broker unit tests that exercise handlers, the read path or the compactor directly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "broker_context.h"

namespace sh::broker::testing {

// A new, empty directory named after the prefix, the process and the running test (so parallel
// test processes never share one). The caller removes it.
inline std::filesystem::path fresh_test_dir(const std::string& prefix) {
  auto dir = std::filesystem::temp_directory_path() /
             (prefix + "-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Objects under dir/objects, metadata in dir/meta.db. Null (with a test failure) if either
// store does not open.
inline std::unique_ptr<broker_context> make_embedded_context(const std::filesystem::path& dir,
                                                             broker_config cfg = {}) {
  auto s = storage::open_object_store((dir / "objects").string());
  EXPECT_TRUE(s) << s.message();
  auto m = metadata::open_metadata_store((dir / "meta.db").string());
  EXPECT_TRUE(m) << m.message();
  if (!s || !m) return nullptr;
  return std::make_unique<broker_context>(cfg,
                                          std::shared_ptr<storage::object_store>(std::move(*s)),
                                          std::shared_ptr<metadata::metadata_store>(std::move(*m)));
}

}  // namespace sh::broker::testing
