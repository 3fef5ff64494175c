// File-level behaviour of record_writer that needs no Parquet reader: magic bytes and footer
// framing, the temporary name, errors as values. DuckDB checks the contents
// (duckdb_roundtrip_test.sh).
#include "sh/parquet/record_writer.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace sh::parquet {
namespace {

namespace fs = std::filesystem;

class RecordWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    _dir = fs::temp_directory_path() /
           ("sh_parquet_test." + std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(_dir);
    fs::create_directories(_dir);
  }
  void TearDown() override { fs::remove_all(_dir); }

  std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  size_t entries() { return std::distance(fs::directory_iterator(_dir), fs::directory_iterator()); }

  fs::path _dir;
};

record_row row(int64_t offset) {
  record_row r{};
  r.topic = "t";
  r.partition = 0;
  r.offset = offset;
  r.timestamp_ms = 1000 + offset;
  r.timestamp_type = 0;
  r.key = "k";
  r.value = "v";
  return r;
}

TEST_F(RecordWriterTest, MagicFooterAndRename) {
  const fs::path out = _dir / "a.parquet";
  auto w = record_writer::open(out, writer_options{});
  ASSERT_TRUE(w) << w.message();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*w)->append(row(i)));
  EXPECT_EQ((*w)->rows_written(), 10u);
  // Before close only the temporary file exists, not the final name.
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(entries(), 1u);
  ASSERT_TRUE((*w)->close());
  ASSERT_TRUE(fs::exists(out));
  EXPECT_EQ(entries(), 1u);  // the temporary name is gone
  const std::string f = read(out);
  ASSERT_GE(f.size(), 12u);
  EXPECT_EQ(f.substr(0, 4), "PAR1");
  EXPECT_EQ(f.substr(f.size() - 4), "PAR1");
  uint32_t footer_len = 0;
  for (int i = 0; i < 4; ++i)
    footer_len |= static_cast<uint32_t>(static_cast<uint8_t>(f[f.size() - 8 + i])) << (8 * i);
  ASSERT_LT(footer_len, f.size() - 12);
  // The footer holds created_by.
  const std::string footer = f.substr(f.size() - 8 - footer_len, footer_len);
  EXPECT_NE(footer.find("streamhouse"), std::string::npos);
}

TEST_F(RecordWriterTest, ZeroRows) {
  const fs::path out = _dir / "empty.parquet";
  auto w = record_writer::open(out, writer_options{});
  ASSERT_TRUE(w);
  ASSERT_TRUE((*w)->close());
  EXPECT_EQ((*w)->rows_written(), 0u);
  const std::string f = read(out);
  EXPECT_EQ(f.substr(0, 4), "PAR1");
  EXPECT_EQ(f.substr(f.size() - 4), "PAR1");
}

TEST_F(RecordWriterTest, DestroyedWithoutCloseLeavesNothing) {
  const fs::path out = _dir / "b.parquet";
  {
    auto w = record_writer::open(out, writer_options{});
    ASSERT_TRUE(w);
    ASSERT_TRUE((*w)->append(row(1)));
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(entries(), 0u);
}

TEST_F(RecordWriterTest, ClosedErrors) {
  auto w = record_writer::open(_dir / "c.parquet", writer_options{});
  ASSERT_TRUE(w);
  ASSERT_TRUE((*w)->close());
  auto a = (*w)->append(row(1));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.code(), errc::closed);
  auto c = (*w)->close();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.code(), errc::closed);
}

TEST_F(RecordWriterTest, InvalidArguments) {
  writer_options o;
  o.page_bytes = 0;
  auto w = record_writer::open(_dir / "d.parquet", o);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.code(), errc::invalid_argument);
  o = writer_options{};
  o.row_group_bytes = 0;
  EXPECT_EQ(record_writer::open(_dir / "d.parquet", o).code(), errc::invalid_argument);
  EXPECT_EQ(record_writer::open("", writer_options{}).code(), errc::invalid_argument);

  auto ok = record_writer::open(_dir / "d.parquet", writer_options{});
  ASSERT_TRUE(ok);
  record_row r = row(0);
  r.topic = "bad\xff";
  auto a = (*ok)->append(r);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.code(), errc::invalid_argument);
  // A rejected row leaves the writer usable.
  ASSERT_TRUE((*ok)->append(row(1)));
  EXPECT_EQ((*ok)->rows_written(), 1u);
  ASSERT_TRUE((*ok)->close());
}

TEST_F(RecordWriterTest, UnwritableDirectoryIsIoError) {
  auto w = record_writer::open((_dir / "missing" / "x.parquet").string(), writer_options{});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.code(), errc::io_error);
  EXPECT_STREQ(to_string(w.code()), "io_error");
}

TEST_F(RecordWriterTest, RowGroupsBoundedBySize) {
  // Many small row groups: the file grows with each flushed group before close.
  const fs::path out = _dir / "e.parquet";
  writer_options o;
  o.compression = codec::none;
  o.row_group_bytes = 4096;
  o.page_bytes = 1024;
  auto w = record_writer::open(out, o);
  ASSERT_TRUE(w);
  std::string big(100, 'x');
  for (int i = 0; i < 1000; ++i) {
    record_row r = row(i);
    r.value = big;
    ASSERT_TRUE((*w)->append(r));
  }
  ASSERT_TRUE((*w)->close());
  // 1000 values of 104 bytes need at least 25 groups of 4 KiB; each column chunk's offset is
  // in the footer, so the footer grows with the group count.
  EXPECT_GT(fs::file_size(out), 100000u);
}

// A write error (here EFBIG from a file size limit, as a full disk would give ENOSPC) is an
// io_error value, the writer is then closed, and neither the final name nor the temporary file
// is left behind. Runs in a child process because the limit is per process.
TEST_F(RecordWriterTest, WriteErrorIsIoErrorAndLeavesNoFile) {
  const fs::path out = _dir / "full.parquet";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{64 << 10, 64 << 10};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(10);
    writer_options o;
    o.compression = codec::none;
    o.row_group_bytes = 16 << 10;
    auto w = record_writer::open(out, o);
    if (!w) ::_exit(11);
    std::string big(1000, 'x');
    presult<void> a;
    for (int i = 0; i < 10000 && a; ++i) {
      record_row r = row(i);
      r.value = big;
      a = (*w)->append(r);
    }
    if (a || a.code() != errc::io_error) ::_exit(12);
    if ((*w)->append(row(0)).code() != errc::closed) ::_exit(13);
    if ((*w)->close().code() != errc::closed) ::_exit(14);
    w->reset();  // the destructor removes the temporary file
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(entries(), 0u);
}

// A process killed while writing never leaves a file under the final name.
TEST_F(RecordWriterTest, KilledWriterLeavesNoFinalFile) {
  const fs::path out = _dir / "killed.parquet";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto w = record_writer::open(out, writer_options{});
    if (!w) ::_exit(11);
    for (int i = 0;; ++i) {
      if (!(*w)->append(row(i))) ::_exit(12);
      if (i == 1000 && ::write(ready[1], "x", 1) != 1) ::_exit(13);
    }
  }
  ::close(ready[1]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace sh::parquet
