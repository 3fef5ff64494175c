// Behaviour every object_store must share, run against each implementation: the memory and local
// directory stores always, S3 when S3_ENDPOINT is set (tests/services/test-services.sh starts a
// real Swift s3api server and exports it); otherwise the S3 instances skip with a message.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "sh/storage/crc32c.h"
#include "sh/storage/ingest_object.h"
#include "sh/storage/object_store.h"
#include "test_util.h"

namespace sh::storage {
namespace {

using testing::temp_dir;

bytes to_bytes(std::string_view s) { return bytes(s.begin(), s.end()); }
std::string to_string(const bytes& b) { return std::string(b.begin(), b.end()); }

class conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    if (GetParam() == "memory") {
      _store = open_memory_store();
      return;
    }
    if (GetParam() == "local") {
      _dir.emplace();
      auto s = open_local_store(_dir->path());
      ASSERT_TRUE(s) << s.message();
      _store = std::move(*s);
      return;
    }
    auto opts = testing::s3_options_from_env();
    if (!opts) GTEST_SKIP() << "S3_ENDPOINT is not set; start tests/services/test-services.sh";
    const std::string bucket = testing::s3_test_bucket();
    auto made = s3_create_bucket(bucket, *opts);
    ASSERT_TRUE(made) << made.message();
    std::string prefix = testing::unique_prefix(name.substr(0, name.find('/')));
    auto s = open_object_store("s3://" + bucket + "/" + prefix, *opts);
    ASSERT_TRUE(s) << s.message();
    _store = std::move(*s);
  }
  void TearDown() override {
    if (!_store || GetParam() != "s3") return;
    auto all = _store->list("");
    if (!all) return;
    std::vector<std::string> keys;
    for (auto& i : *all) keys.push_back(i.key);
    EXPECT_TRUE(_store->remove_many(keys));
  }

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

  std::optional<temp_dir> _dir;
  std::unique_ptr<object_store> _store;
};

TEST_P(conformance, probe) {
  auto r = _store->probe();
  EXPECT_TRUE(r) << r.message();
}

TEST_P(conformance, put_get_overwrite_empty) {
  put_ok("a/b/c.bin", "hello");
  auto g = _store->get("a/b/c.bin");
  ASSERT_TRUE(g) << g.message();
  EXPECT_EQ(to_string(*g), "hello");
  put_ok("a/b/c.bin", "bye");
  EXPECT_EQ(to_string(*_store->get("a/b/c.bin")), "bye");
  put_ok("empty", "");
  auto e = _store->get("empty");
  ASSERT_TRUE(e) << e.message();
  EXPECT_TRUE(e->empty());
  auto h = _store->head("empty");
  ASSERT_TRUE(h) << h.message();
  EXPECT_EQ(h->size, 0u);
}

TEST_P(conformance, not_found) {
  for (auto code : {_store->get("no/such").code(), _store->head("no/such").code(),
                    _store->get_range("no/such", 0, 10).code()}) {
    EXPECT_EQ(code, errc::not_found) << to_string(code);
  }
  auto g = _store->get("no/such");
  EXPECT_NE(g.message().find("no/such"), std::string::npos) << g.message();
}

TEST_P(conformance, ranges) {
  put_ok("r", "0123456789");
  EXPECT_EQ(to_string(*_store->get_range("r", 2, 3)), "234");
  EXPECT_EQ(to_string(*_store->get_range("r", 0, 10)), "0123456789");
  EXPECT_EQ(to_string(*_store->get_range("r", 7, 100)), "789");
  EXPECT_EQ(to_string(*_store->get_range("r", 1, UINT64_MAX)), "123456789");
  auto at_end = _store->get_range("r", 10, 5);
  ASSERT_TRUE(at_end) << at_end.message();
  EXPECT_TRUE(at_end->empty());
  auto zero = _store->get_range("r", 4, 0);
  ASSERT_TRUE(zero) << zero.message();
  EXPECT_TRUE(zero->empty());
  auto past = _store->get_range("r", 11, 1);
  EXPECT_EQ(past.code(), errc::invalid_argument) << (past ? "" : past.message());
  put_ok("e", "");
  auto empty_obj = _store->get_range("e", 0, 4);
  ASSERT_TRUE(empty_obj) << empty_obj.message();
  EXPECT_TRUE(empty_obj->empty());
}

TEST_P(conformance, list_in_key_order) {
  for (const char* k : {"b", "a/y/z", "a-b", "a/x", "ab", "a/y0", "topics/t/0/1.seg"}) put_ok(k, k);
  EXPECT_EQ(keys(""), (std::vector<std::string>{"a-b", "a/x", "a/y/z", "a/y0", "ab", "b",
                                                "topics/t/0/1.seg"}));
  EXPECT_EQ(keys("a"), (std::vector<std::string>{"a-b", "a/x", "a/y/z", "a/y0", "ab"}));
  EXPECT_EQ(keys("a/"), (std::vector<std::string>{"a/x", "a/y/z", "a/y0"}));
  EXPECT_EQ(keys("a/y"), (std::vector<std::string>{"a/y/z", "a/y0"}));
  EXPECT_EQ(keys("a/y/z"), (std::vector<std::string>{"a/y/z"}));
  EXPECT_TRUE(keys("zzz").empty());
  EXPECT_TRUE(keys("nope/deeper/").empty());
  auto sized = _store->list("a/y/");
  ASSERT_TRUE(sized);
  ASSERT_EQ(sized->size(), 1u);
  EXPECT_EQ((*sized)[0].size, 5u);
}

TEST_P(conformance, remove_and_remove_many) {
  put_ok("x/y/z", "1");
  put_ok("x/w", "2");
  ASSERT_TRUE(_store->remove("x/y/z"));
  EXPECT_EQ(_store->get("x/y/z").code(), errc::not_found);
  EXPECT_TRUE(_store->remove("x/y/z"));
  EXPECT_TRUE(_store->remove("never/existed"));
  EXPECT_EQ(to_string(*_store->get("x/w")), "2");
  for (int i = 0; i < 5; ++i) put_ok("m/" + std::to_string(i), "v");
  std::vector<std::string> doomed = {"m/0", "m/2", "m/4", "m/absent", "x/w"};
  auto r = _store->remove_many(doomed);
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(keys(""), (std::vector<std::string>{"m/1", "m/3"}));
  EXPECT_TRUE(_store->remove_many({}));
}

TEST_P(conformance, invalid_keys) {
  for (const std::string k : {"", "/abs", "a//b", "a/", "../x", "a/../b", "./a", ".shtmp-1"}) {
    SCOPED_TRACE("key '" + k + "'");
    EXPECT_EQ(_store->put(k, to_bytes("v")).code(), errc::invalid_argument);
    EXPECT_EQ(_store->get(k).code(), errc::invalid_argument);
    EXPECT_EQ(_store->get_range(k, 0, 1).code(), errc::invalid_argument);
    EXPECT_EQ(_store->head(k).code(), errc::invalid_argument);
    EXPECT_EQ(_store->remove(k).code(), errc::invalid_argument);
  }
}

TEST_P(conformance, unusual_characters) {
  const std::vector<std::string> ks = {"sp ace/plus+eq=amp&", "pct%41/tilde~star*",
                                       "quote'paren(x)",
                                       "\xc3\xbc"
                                       "ber/\xe6\x97\xa5",
                                       "q?h#semi;comma,at@"};
  for (const auto& k : ks) {
    SCOPED_TRACE(k);
    put_ok(k, k);
    auto g = _store->get(k);
    ASSERT_TRUE(g) << g.message();
    EXPECT_EQ(to_string(*g), k);
    auto h = _store->head(k);
    ASSERT_TRUE(h) << h.message();
    EXPECT_EQ(h->size, k.size());
  }
  auto sorted = ks;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(keys(""), sorted);
  EXPECT_EQ(keys("sp ace/"), (std::vector<std::string>{"sp ace/plus+eq=amp&"}));
  for (const auto& k : ks) EXPECT_TRUE(_store->remove(k));
  EXPECT_TRUE(keys("").empty());
}

TEST_P(conformance, large_object) {
  bytes big(9 * 1024 * 1024 + 123);
  std::mt19937 rng(1);
  for (auto& b : big) b = static_cast<uint8_t>(rng());
  auto r = _store->put("big/object", big);
  ASSERT_TRUE(r) << r.message();
  auto g = _store->get("big/object");
  ASSERT_TRUE(g) << g.message();
  EXPECT_TRUE(*g == big);
  auto tail = _store->get_range("big/object", big.size() - 1000, 4096);
  ASSERT_TRUE(tail) << tail.message();
  EXPECT_TRUE(std::equal(tail->begin(), tail->end(), big.end() - 1000));
  EXPECT_EQ(tail->size(), 1000u);
  EXPECT_EQ(_store->head("big/object")->size, big.size());
}

TEST_P(conformance, concurrent_callers) {
  std::atomic<int> failures{0};
  std::string first;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 15; ++i) {
        const std::string key = "conc/" + std::to_string(t) + "/" + std::to_string(i);
        bytes v(1000 + static_cast<size_t>(t * 100 + i), static_cast<uint8_t>(i));
        auto p = _store->put(key, v);
        auto g = _store->get(key);
        if (!p || !g || *g != v) {
          std::lock_guard lock(mu);
          if (failures++ == 0)
            first = key + ": " + (!p ? p.message() : !g ? g.message() : "mismatch");
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0) << first;
  EXPECT_EQ(keys("conc/").size(), 60u);
}

TEST_P(conformance, ingest_object_round_trip) {
  ingest_object_builder b("broker-9");
  std::mt19937 rng(3);
  for (int i = 0; i < 50; ++i) {
    bytes batch(100 + rng() % 1000);
    for (auto& x : batch) x = static_cast<uint8_t>(rng());
    b.add("topic-" + std::to_string(i % 3), i % 2, batch, {1, i, i});
  }
  auto f = b.finish();
  const std::string key = ingest_object_key("", "broker-9", 7);
  ASSERT_TRUE(_store->put(key, f.data));
  auto footer = read_ingest_footer(*_store, key);
  ASSERT_TRUE(footer) << footer.message();
  ASSERT_EQ(footer->ranges.size(), 6u);
  for (const auto& r : footer->ranges) {
    auto got = _store->get_range(key, r.offset, r.length);
    ASSERT_TRUE(got) << got.message();
    auto ok = verify_range(*got, r);
    EXPECT_TRUE(ok) << ok.message();
  }
}

INSTANTIATE_TEST_SUITE_P(stores, conformance, ::testing::Values("memory", "local", "s3"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace sh::storage
