#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "sh/storage/aligned_buffer.h"
#include "sh/storage/crc32c.h"
#include "sh/storage/object_store.h"
#include "test_util.h"

namespace sh::storage {
namespace {

namespace fs = std::filesystem;
using testing::temp_dir;

bytes to_bytes(std::string_view s) { return bytes(s.begin(), s.end()); }
std::string to_string(const bytes& b) { return std::string(b.begin(), b.end()); }

void write_raw(const fs::path& p, std::string_view content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

class local_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = open_local_store(_dir.path() / "store");
    ASSERT_TRUE(s) << s.message();
    _store = std::move(*s);
  }
  fs::path root() const { return _dir.path() / "store"; }

  void put_ok(const std::string& key, std::string_view value) {
    auto r = _store->put(key, to_bytes(value));
    ASSERT_TRUE(r) << r.message();
  }
  std::vector<std::string> keys(const std::string& prefix) {
    auto r = _store->list(prefix);
    EXPECT_TRUE(r) << r.message();
    std::vector<std::string> out;
    if (r) {
      for (auto& i : *r) out.push_back(i.key);
    }
    return out;
  }

  temp_dir _dir;
  std::unique_ptr<object_store> _store;
};

TEST_F(local_store_test, put_get_overwrite) {
  put_ok("a/b/c.bin", "hello");
  auto g = _store->get("a/b/c.bin");
  ASSERT_TRUE(g) << g.message();
  EXPECT_EQ(to_string(*g), "hello");
  put_ok("a/b/c.bin", "bye");
  EXPECT_EQ(to_string(*_store->get("a/b/c.bin")), "bye");
  put_ok("empty", "");
  auto e = _store->get("empty");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->empty());
  EXPECT_TRUE(fs::is_regular_file(root() / "a/b/c.bin"));
}

TEST_F(local_store_test, missing_objects_are_not_found) {
  auto g = _store->get("no/such");
  ASSERT_FALSE(g);
  EXPECT_EQ(g.code(), errc::not_found);
  EXPECT_NE(g.message().find("no/such"), std::string::npos) << g.message();
  EXPECT_EQ(_store->head("no/such").code(), errc::not_found);
  EXPECT_EQ(_store->get_range("no/such", 0, 1).code(), errc::not_found);
  // A key that is only a prefix of other keys is not an object.
  put_ok("dir/obj", "x");
  EXPECT_EQ(_store->get("dir").code(), errc::not_found);
  EXPECT_EQ(_store->head("dir").code(), errc::not_found);
  // A key under an object ("dir/obj" is a file) is simply absent.
  EXPECT_EQ(_store->get("dir/obj/deeper").code(), errc::not_found);
}

TEST_F(local_store_test, ranges) {
  put_ok("r", "0123456789");
  auto mid = _store->get_range("r", 2, 3);
  ASSERT_TRUE(mid) << mid.message();
  EXPECT_EQ(to_string(*mid), "234");
  auto tail = _store->get_range("r", 7, 100);
  ASSERT_TRUE(tail);
  EXPECT_EQ(to_string(*tail), "789");
  auto huge = _store->get_range("r", 1, UINT64_MAX);
  ASSERT_TRUE(huge);
  EXPECT_EQ(to_string(*huge), "123456789");
  auto at_end = _store->get_range("r", 10, 5);
  ASSERT_TRUE(at_end);
  EXPECT_TRUE(at_end->empty());
  auto zero = _store->get_range("r", 4, 0);
  ASSERT_TRUE(zero);
  EXPECT_TRUE(zero->empty());
  auto past = _store->get_range("r", 11, 1);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.code(), errc::invalid_argument);
  EXPECT_NE(past.message().find("past the end"), std::string::npos) << past.message();
}

TEST_F(local_store_test, probe_notices_a_vanished_root) {
  EXPECT_TRUE(_store->probe());
  fs::remove_all(root());
  auto r = _store->probe();
  EXPECT_EQ(r.code(), errc::io_error);
  EXPECT_NE(r.message().find("not a directory"), std::string::npos) << r.message();
}

TEST_F(local_store_test, head) {
  put_ok("h/x", "abcdef");
  auto h = _store->head("h/x");
  ASSERT_TRUE(h) << h.message();
  EXPECT_EQ(h->key, "h/x");
  EXPECT_EQ(h->size, 6u);
}

TEST_F(local_store_test, list_is_recursive_in_key_order) {
  // '-' (0x2d) sorts before '/' (0x2f): byte-wise key order differs from a directory walk.
  for (const char* k : {"b", "a/y/z", "a-b", "a/x", "ab", "a/y0", "topics/t/0/1.seg"}) {
    put_ok(k, k);
  }
  EXPECT_EQ(keys(""), (std::vector<std::string>{"a-b", "a/x", "a/y/z", "a/y0", "ab", "b",
                                                "topics/t/0/1.seg"}));
  EXPECT_EQ(keys("a"), (std::vector<std::string>{"a-b", "a/x", "a/y/z", "a/y0", "ab"}));
  EXPECT_EQ(keys("a/"), (std::vector<std::string>{"a/x", "a/y/z", "a/y0"}));
  EXPECT_EQ(keys("a/y"), (std::vector<std::string>{"a/y/z", "a/y0"}));
  EXPECT_EQ(keys("a/y/"), (std::vector<std::string>{"a/y/z"}));
  EXPECT_EQ(keys("a/y/z"), (std::vector<std::string>{"a/y/z"}));
  EXPECT_EQ(keys("topics/t/"), (std::vector<std::string>{"topics/t/0/1.seg"}));
  EXPECT_TRUE(keys("zzz").empty());
  EXPECT_TRUE(keys("nope/deeper/").empty());
  auto sizes = _store->list("a/y");
  ASSERT_TRUE(sizes);
  EXPECT_EQ((*sizes)[0].size, 5u);
  EXPECT_EQ(_store->list("../").code(), errc::invalid_argument);
  EXPECT_EQ(_store->list("/abs").code(), errc::invalid_argument);
  EXPECT_EQ(_store->list("a//").code(), errc::invalid_argument);
}

TEST_F(local_store_test, remove) {
  put_ok("x/y/z", "1");
  put_ok("x/w", "2");
  ASSERT_TRUE(_store->remove("x/y/z"));
  EXPECT_EQ(_store->get("x/y/z").code(), errc::not_found);
  // The emptied directory is gone, its non-empty parent stays.
  EXPECT_FALSE(fs::exists(root() / "x/y"));
  EXPECT_TRUE(fs::exists(root() / "x/w"));
  EXPECT_TRUE(_store->remove("x/y/z"));  // absent is ok
  EXPECT_TRUE(_store->remove("never/existed"));
  EXPECT_TRUE(_store->remove("x"));  // a prefix, not an object: nothing to do
  EXPECT_EQ(to_string(*_store->get("x/w")), "2");
  ASSERT_TRUE(_store->remove("x/w"));
  EXPECT_TRUE(fs::exists(root()));
  EXPECT_TRUE(fs::is_empty(root()));
  put_ok("x/y/z", "3");  // directories come back
  EXPECT_EQ(to_string(*_store->get("x/y/z")), "3");
}

TEST_F(local_store_test, invalid_keys) {
  const std::string bad[] = {"",
                             "/abs",
                             "a//b",
                             "a/",
                             "../x",
                             "a/../b",
                             "./a",
                             "a/.",
                             "..",
                             ".shtmp-1",
                             "d/.shtmp-2-3",
                             std::string("a\0b", 3),
                             std::string(1025, 'k')};
  for (const auto& k : bad) {
    SCOPED_TRACE("key '" + k + "'");
    EXPECT_EQ(_store->put(k, to_bytes("v")).code(), errc::invalid_argument);
    EXPECT_EQ(_store->get(k).code(), errc::invalid_argument);
    EXPECT_EQ(_store->get_range(k, 0, 1).code(), errc::invalid_argument);
    EXPECT_EQ(_store->head(k).code(), errc::invalid_argument);
    EXPECT_EQ(_store->remove(k).code(), errc::invalid_argument);
  }
  // Nothing escaped the root.
  EXPECT_FALSE(fs::exists(_dir.path() / "x"));
  EXPECT_FALSE(fs::exists(_dir.path() / "abs"));
  // Unusual but valid names.
  put_ok("..a/b..", "ok");
  put_ok(".hidden", "ok");
  put_ok("with space/ü", "ok");
  EXPECT_EQ(keys("").size(), 3u);
}

TEST_F(local_store_test, key_and_prefix_conflict) {
  put_ok("a", "file");
  auto r = _store->put("a/b", to_bytes("x"));
  EXPECT_EQ(r.code(), errc::invalid_argument) << r.message();
  put_ok("c/d", "x");
  r = _store->put("c", to_bytes("y"));
  EXPECT_EQ(r.code(), errc::invalid_argument) << r.message();
  EXPECT_EQ(to_string(*_store->get("c/d")), "x");
}

// A put that crashed before its rename leaves only a temp file: it must be invisible and must not
// disturb the previous version of the object.
TEST_F(local_store_test, crashed_put_leaves_no_partial_object) {
  put_ok("p/obj", "complete old value");
  write_raw(root() / "p/.shtmp-4242-0", "partial new va");
  write_raw(root() / ".shtmp-4242-1", "partial");
  write_raw(root() / "q/.shtmp-4242-2", "partial in a fresh directory");
  EXPECT_EQ(keys(""), (std::vector<std::string>{"p/obj"}));
  EXPECT_TRUE(keys("q").empty());
  EXPECT_EQ(to_string(*_store->get("p/obj")), "complete old value");
  EXPECT_EQ(_store->get("p/.shtmp-4242-0").code(), errc::invalid_argument);
  EXPECT_EQ(_store->head(".shtmp-4242-1").code(), errc::invalid_argument);
  // A later put of the same key still works and wins.
  put_ok("p/obj", "new");
  EXPECT_EQ(to_string(*_store->get("p/obj")), "new");
  // No temp file of our own is left behind by successful puts.
  size_t temps = 0;
  for (auto& e : fs::recursive_directory_iterator(root())) {
    if (e.path().filename().string().starts_with(".shtmp-")) ++temps;
  }
  EXPECT_EQ(temps, 3u);
}

// The real thing: a writer process killed with SIGKILL mid-stream. Every object that became
// visible must be complete.
TEST_F(local_store_test, killed_writer_leaves_only_complete_objects) {
  constexpr size_t object_size = 512 * 1024;
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    bytes data(object_size);
    for (uint32_t i = 0;; ++i) {
      std::memset(data.data(), static_cast<int>(i & 0xff), data.size());
      std::memcpy(data.data(), &i, sizeof i);
      auto r = _store->put("crash/" + std::to_string(i % 50), data);
      if (!r) ::_exit(2);
    }
  }
  // Kill it mid-stream: once a few objects exist (so later puts overwrite), at a random moment.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    auto l = _store->list("crash/");
    if (l && l->size() >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(std::random_device{}() % 50));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "writer stopped by itself: " << status;
  auto listed = _store->list("crash/");
  ASSERT_TRUE(listed) << listed.message();
  ASSERT_FALSE(listed->empty());
  for (auto& info : *listed) {
    auto g = _store->get(info.key);
    ASSERT_TRUE(g) << g.message();
    ASSERT_EQ(g->size(), object_size) << info.key;
    uint32_t i;
    std::memcpy(&i, g->data(), sizeof i);
    for (size_t b = sizeof i; b < g->size(); ++b) {
      ASSERT_EQ((*g)[b], static_cast<uint8_t>(i & 0xff)) << info.key << " byte " << b;
    }
  }
}

TEST_F(local_store_test, concurrent_put_get_remove) {
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::string first_failure;
  auto fail = [&](const std::string& why) {
    std::lock_guard lock(mu);
    if (!failed.exchange(true)) first_failure = why;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int n = 0; n < 300 && !failed; ++n) {
        // Few keys in few directories, so removes (rmdir of emptied directories) race puts.
        std::string key = "c/" + std::to_string(rng() % 3) + "/" + std::to_string(rng() % 3);
        switch (rng() % 3) {
          case 0: {
            bytes v(1 + rng() % 5000, static_cast<uint8_t>(rng()));
            uint32_t crc = crc32c(v);
            v.insert(v.end(), reinterpret_cast<uint8_t*>(&crc),
                     reinterpret_cast<uint8_t*>(&crc) + 4);
            if (auto r = _store->put(key, v); !r) fail(r.message());
            break;
          }
          case 1: {
            auto g = _store->get(key);
            if (!g) {
              if (g.code() != errc::not_found) fail(g.message());
            } else {
              uint32_t crc;
              if (g->size() < 5) {
                fail("short object " + key);
                break;
              }
              std::memcpy(&crc, g->data() + g->size() - 4, 4);
              if (crc != crc32c(std::span(*g).first(g->size() - 4))) fail("torn object " + key);
            }
            break;
          }
          default:
            if (auto r = _store->remove(key); !r) fail(r.message());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(failed) << first_failure;
}

// put() with O_DIRECT (aligned source without a bounce copy, unaligned through the bounce
// buffer, padded last block truncated back), buffered, and with a block size the kernel
// refuses (EINVAL at write time: the store falls back to buffered writes for good): every
// size comes back byte for byte, with the exact file size and no temp file left.
TEST(local_store_direct_io, sizes_sources_and_fallback) {
  struct mode {
    const char* name;
    local_store_options options;
    bool direct_after;
  };
  const mode modes[] = {
      {"direct", local_store_options{}, true},
      {"buffered", local_store_options{.direct_io = false}, false},
      {"refused", local_store_options{.direct_io = true, .direct_io_block = 100}, false},
  };
  const size_t sizes[] = {0,
                          1,
                          511,
                          4095,
                          4096,
                          4097,
                          8191,
                          size_t{1} << 20,
                          (size_t{1} << 20) + 4097,
                          (size_t{3} << 20) + 5};
  std::mt19937 rng(7);
  for (const auto& m : modes) {
    temp_dir dir;
    auto opened = open_local_store(dir.path() / "s", m.options);
    ASSERT_TRUE(opened) << opened.message();
    auto& store = **opened;
    EXPECT_EQ(local_store_direct_io_active(store), m.options.direct_io) << m.name;
    int n = 0;
    for (size_t size : sizes) {
      for (bool aligned : {true, false}) {
        aligned_buffer abuf;
        bytes ubuf(size + 1);
        abuf.resize_uninitialized(size);
        std::span<uint8_t> src = aligned ? abuf.span() : std::span(ubuf).subspan(1, size);
        for (auto& x : src) x = static_cast<uint8_t>(rng());
        const std::string key = std::string("t/") + m.name + "/" + std::to_string(n++);
        auto put = n % 3 == 0 ? store.put_if_absent(key, src) : store.put(key, src);
        ASSERT_TRUE(put) << m.name << " " << size << ": " << put.message();
        auto got = store.get(key);
        ASSERT_TRUE(got) << got.message();
        ASSERT_EQ(got->size(), size) << m.name << " aligned=" << aligned;
        ASSERT_TRUE(std::equal(got->begin(), got->end(), src.begin()))
            << m.name << " " << size << " aligned=" << aligned;
        EXPECT_EQ(fs::file_size(dir.path() / "s" / key), size);
        if (size > 10) {
          auto range = store.get_range(key, size - 10, 100);
          ASSERT_TRUE(range);
          EXPECT_TRUE(std::equal(range->begin(), range->end(), src.end() - 10));
        }
        // Overwrite with a shorter object: no stale tail.
        if (size > 3) {
          ASSERT_TRUE(store.put(key, src.first(3)));
          EXPECT_EQ(fs::file_size(dir.path() / "s" / key), 3u);
        }
      }
    }
    EXPECT_EQ(local_store_direct_io_active(store), m.direct_after) << m.name;
    for (const auto& e : fs::recursive_directory_iterator(dir.path() / "s")) {
      EXPECT_EQ(e.path().filename().string().rfind(".shtmp-", 0), std::string::npos) << e.path();
    }
  }
}

TEST(open_object_store, urls) {
  temp_dir dir;
  auto a = open_object_store("file://" + (dir.path() / "a").string());
  ASSERT_TRUE(a) << a.message();
  EXPECT_EQ((*a)->describe(), "file://" + (dir.path() / "a").string());
  EXPECT_TRUE(fs::is_directory(dir.path() / "a"));
  auto b = open_object_store((dir.path() / "b/c/").string());
  ASSERT_TRUE(b) << b.message();
  EXPECT_EQ((*b)->describe(), "file://" + (dir.path() / "b/c").string());
  EXPECT_EQ(open_object_store("file://relative/x").code(), errc::invalid_argument);
  EXPECT_EQ(open_object_store("").code(), errc::invalid_argument);
  EXPECT_EQ(open_object_store("ftp://host/x").code(), errc::invalid_argument);
  auto s3 = open_object_store("s3://bucket/prefix");  // no credentials given
  EXPECT_EQ(s3.code(), errc::invalid_argument) << (s3 ? "" : s3.message());
  write_raw(dir.path() / "file", "x");
  EXPECT_FALSE(open_object_store((dir.path() / "file").string()));
}

TEST(local_store_direct_io, open_object_store_passes_local_options) {
  const auto root =
      std::filesystem::temp_directory_path() / ("sh-local-options-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  for (bool direct : {false, true}) {
    auto store =
        open_object_store(root.string(), s3_options{}, local_store_options{.direct_io = direct});
    ASSERT_TRUE(store) << store.message();
    ASSERT_TRUE((*store)->put("k", std::vector<uint8_t>(5000, 7)));
    // The broker's local.direct.io reaches the store (this file system accepts O_DIRECT).
    EXPECT_EQ(local_store_direct_io_active(**store), direct);
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace sh::storage
