// Multipart uploads and conditional puts: request shapes and failure handling against the
// scripted fake server, then the real thing: multipart against Swift s3api (S3_ENDPOINT),
// conditional put against moto (S3_MOTO_ENDPOINT; Swift answers If-None-Match: * with 501, which
// must come back as unsupported), and put_if_absent on the local and memory stores.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "fake_http_server.h"
#include "sh/storage/object_store.h"
#include "test_util.h"

namespace sh::storage {
namespace {

using testing::fake_http_server;
using testing::fake_reply;

bytes to_bytes(std::string_view s) { return bytes(s.begin(), s.end()); }

bytes random_bytes(size_t n, uint64_t seed) {
  bytes out(n);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (size_t i = n & ~size_t{7}; i < n; ++i) out[i] = static_cast<uint8_t>(rng());
  return out;
}

std::string s3_error(std::string_view code) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + std::string(code) +
         "</Code><Message>m</Message></Error>";
}

// --- fake server -----------------------------------------------------------------------------

class s3_multipart_fake_test : public ::testing::Test {
 protected:
  std::unique_ptr<object_store> open(
      s3_options::conditional_put_mode mode = s3_options::conditional_put_mode::detect) {
    s3_options o;
    o.endpoint = _server.endpoint();
    o.access_key = "k";
    o.secret_key = "s";
    o.max_attempts = 3;
    o.backoff_base = std::chrono::milliseconds(1);
    o.backoff_max = std::chrono::milliseconds(5);
    o.multipart_threshold = 8;
    o.multipart_part_size = 4;
    o.multipart_concurrency = 1;  // the fake server answers in script order
    o.conditional_put = mode;
    auto s = open_object_store("s3://bkt/p", o);
    EXPECT_TRUE(s) << s.message();
    return s ? std::move(*s) : nullptr;
  }
  void script_create() {
    _server.script({200,
                    "<?xml version=\"1.0\"?><InitiateMultipartUploadResult><Bucket>bkt</Bucket>"
                    "<Key>p/k</Key><UploadId>up&amp;1</UploadId></InitiateMultipartUploadResult>"});
  }
  fake_http_server _server;
};

TEST_F(s3_multipart_fake_test, put_above_threshold_goes_multipart_with_part_retries) {
  auto store = open();
  script_create();
  _server.script({200, "", {"ETag: \"e1\""}});
  _server.script({503, s3_error("SlowDown")});  // part 2, first try: retried
  _server.script({200, "", {"ETag: \"e2\""}});
  _server.script({200, "", {"ETag: \"e3\""}});
  _server.script({200,
                  "<CompleteMultipartUploadResult><ETag>\"x-3\"</ETag>"
                  "</CompleteMultipartUploadResult>"});
  auto r = store->put("k", to_bytes("0123456789"));  // 10 bytes > threshold 8: parts 4+4+2
  ASSERT_TRUE(r) << r.message();
  auto q = _server.requests();
  ASSERT_EQ(q.size(), 6u);
  EXPECT_EQ(q[0].method, "POST");
  EXPECT_EQ(q[0].target, "/bkt/p/k?uploads=");
  EXPECT_EQ(q[1].method, "PUT");
  EXPECT_EQ(q[1].target, "/bkt/p/k?partNumber=1&uploadId=up%261");
  EXPECT_EQ(q[1].body, "0123");
  EXPECT_EQ(q[2].body, "4567");
  EXPECT_EQ(q[3].target, "/bkt/p/k?partNumber=2&uploadId=up%261");
  EXPECT_EQ(q[3].body, "4567");
  EXPECT_EQ(q[4].target, "/bkt/p/k?partNumber=3&uploadId=up%261");
  EXPECT_EQ(q[4].body, "89");
  EXPECT_EQ(q[5].method, "POST");
  EXPECT_EQ(q[5].target, "/bkt/p/k?uploadId=up%261");
  for (const char* part : {"<Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag></Part>",
                           "<PartNumber>2</PartNumber><ETag>&quot;e2&quot;",
                           "<PartNumber>3</PartNumber><ETag>&quot;e3&quot;"}) {
    EXPECT_NE(q[5].body.find(part), std::string::npos) << part << " in " << q[5].body;
  }
  // At or below the threshold: one plain PUT.
  ASSERT_TRUE(store->put("small", to_bytes("01234567")));
  q = _server.requests();
  ASSERT_EQ(q.size(), 7u);
  EXPECT_EQ(q[6].method, "PUT");
  EXPECT_EQ(q[6].target, "/bkt/p/small");
}

TEST_F(s3_multipart_fake_test, failed_part_aborts_the_upload) {
  auto store = open();
  script_create();
  _server.script({200, "", {"ETag: \"e1\""}});
  _server.script({403, s3_error("AccessDenied")});  // final: not retried
  _server.script({204, ""});                        // the abort
  auto r = store->put_multipart("k", to_bytes("0123456789"), 4);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::auth_failed);
  EXPECT_NE(r.message().find("part 2"), std::string::npos) << r.message();
  auto q = _server.requests();
  ASSERT_EQ(q.size(), 4u);
  EXPECT_EQ(q[3].method, "DELETE");
  EXPECT_EQ(q[3].target, "/bkt/p/k?uploadId=up%261");
}

TEST_F(s3_multipart_fake_test, complete_answering_200_with_error_aborts) {
  auto store = open();
  script_create();
  _server.script({200, "", {"ETag: \"e1\""}});
  _server.script({200, "", {"ETag: \"e2\""}});
  _server.script({200, "\n  \n" + s3_error("InternalError")});
  _server.script({204, ""});
  auto r = store->put_multipart("k", to_bytes("01234567"), 4);
  ASSERT_FALSE(r);
  EXPECT_NE(r.message().find("InternalError"), std::string::npos) << r.message();
  auto q = _server.requests();
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q[4].method, "DELETE");
}

TEST_F(s3_multipart_fake_test, conditional_put_sends_if_none_match_and_maps_412) {
  auto store = open(s3_options::conditional_put_mode::enabled);
  _server.script({412, s3_error("PreconditionFailed")});
  auto r = store->put_if_absent("k", to_bytes("v"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::already_exists) << r.message();
  auto q = _server.requests();
  ASSERT_EQ(q.size(), 1u);  // 412 is final, never retried
  EXPECT_EQ(q[0].method, "PUT");
  EXPECT_EQ(q[0].header("if-none-match"), "*");
  EXPECT_NE(q[0].header("authorization").find("if-none-match"), std::string::npos);
  ASSERT_TRUE(store->put_if_absent("k2", to_bytes("v")));
}

TEST_F(s3_multipart_fake_test, server_ignoring_if_none_match_is_detected_as_unsupported) {
  auto store = open();
  // The probe: both conditional PUTs of the scratch key "succeed" (header ignored), then its
  // removal.
  _server.script({200, ""});
  _server.script({200, ""});
  _server.script({204, ""});
  auto r = store->put_if_absent("k", to_bytes("v"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::unsupported) << r.message();
  auto q = _server.requests();
  ASSERT_EQ(q.size(), 3u);  // the real key was never written
  EXPECT_TRUE(q[0].target.starts_with("/bkt/p/streamhouse-probe/conditional-put-")) << q[0].target;
  EXPECT_EQ(q[2].method, "DELETE");
  // The answer is kept: no second probe.
  EXPECT_EQ(store->put_if_absent("k", to_bytes("v")).code(), errc::unsupported);
  EXPECT_EQ(_server.requests().size(), 3u);
}

TEST_F(s3_multipart_fake_test, server_answering_501_is_unsupported) {
  auto store = open();
  _server.script({501, s3_error("NotImplemented")});
  EXPECT_EQ(store->put_if_absent("k", to_bytes("v")).code(), errc::unsupported);
  EXPECT_EQ(_server.requests().size(), 1u);  // 501 is not retried
  auto disabled = open(s3_options::conditional_put_mode::disabled);
  EXPECT_EQ(disabled->put_if_absent("k", to_bytes("v")).code(), errc::unsupported);
  EXPECT_EQ(_server.requests().size(), 1u);
}

// --- local and memory stores -------------------------------------------------------------------

void check_put_if_absent(object_store& store) {
  ASSERT_TRUE(store.put_if_absent("a/first", to_bytes("one")));
  auto again = store.put_if_absent("a/first", to_bytes("two"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.code(), errc::already_exists) << again.message();
  auto got = store.get("a/first");
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, to_bytes("one"));
  // Nothing stray is listed (the local store's temp file is gone).
  auto all = store.list("a/");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  // After a remove the key is free again.
  ASSERT_TRUE(store.remove("a/first"));
  ASSERT_TRUE(store.put_if_absent("a/first", to_bytes("three")));
  // Racers: exactly one wins, the object holds the winner's bytes.
  for (int round = 0; round < 5; ++round) {
    const std::string key = "race/" + std::to_string(round);
    constexpr int racers = 8;
    std::atomic<int> wins{0};
    std::atomic<int> winner{-1};
    std::atomic<int> other_errors{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < racers; ++i) {
      threads.emplace_back([&, i] {
        auto r = store.put_if_absent(key, to_bytes("racer-" + std::to_string(i)));
        if (r) {
          ++wins;
          winner = i;
        } else if (r.code() != errc::already_exists) {
          ++other_errors;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(wins.load(), 1) << key;
    EXPECT_EQ(other_errors.load(), 0) << key;
    auto v = store.get(key);
    ASSERT_TRUE(v) << v.message();
    EXPECT_EQ(*v, to_bytes("racer-" + std::to_string(winner.load())));
  }
}

TEST(put_if_absent, local_store) {
  testing::temp_dir dir;
  auto store = open_local_store(dir.path());
  ASSERT_TRUE(store);
  check_put_if_absent(**store);
  // A key naming an existing directory is a conflict, not "exists".
  ASSERT_TRUE((*store)->put("d/x", to_bytes("1")));
  EXPECT_EQ((*store)->put_if_absent("d", to_bytes("1")).code(), errc::invalid_argument);
}

TEST(put_if_absent, memory_store) { check_put_if_absent(*open_memory_store()); }

TEST(put_multipart, local_and_memory_round_trip) {
  testing::temp_dir dir;
  auto local = open_local_store(dir.path());
  ASSERT_TRUE(local);
  const bytes data = random_bytes(3 << 20, 7);
  for (object_store* s : {local->get(), open_memory_store().release()}) {
    ASSERT_TRUE(s->put_multipart("m/obj", data, 1 << 20));
    auto got = s->get("m/obj");
    ASSERT_TRUE(got);
    EXPECT_TRUE(*got == data);
    if (s != local->get()) delete s;
  }
}

// --- moto: conditional put ----------------------------------------------------------------------

TEST(s3_moto, conditional_put) {
  const char* endpoint = std::getenv("S3_MOTO_ENDPOINT");
  if (endpoint == nullptr || *endpoint == 0) {
    GTEST_SKIP() << "S3_MOTO_ENDPOINT is not set; start tests/services/test-services.sh";
  }
  s3_options o;
  o.endpoint = endpoint;
  o.access_key = "moto";  // moto checks no signatures
  o.secret_key = "moto";
  o.backoff_base = std::chrono::milliseconds(5);
  ASSERT_TRUE(s3_create_bucket("sh-moto-test", o));
  auto store = open_object_store("s3://sh-moto-test/" + testing::unique_prefix("cond"), o);
  ASSERT_TRUE(store) << store.message();
  check_put_if_absent(**store);
}

// --- Swift s3api: multipart, and conditional put refused
// ------------------------------------------

class s3_swift_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opts = testing::s3_options_from_env();
    if (!opts) GTEST_SKIP() << "S3_ENDPOINT is not set; start tests/services/test-services.sh";
    _opts = *opts;
    ASSERT_TRUE(s3_create_bucket(testing::s3_test_bucket(), _opts));
  }
  std::unique_ptr<object_store> open(const s3_options& o) {
    auto s = open_object_store(
        "s3://" + testing::s3_test_bucket() + "/" + testing::unique_prefix("multipart"), o);
    EXPECT_TRUE(s) << s.message();
    return s ? std::move(*s) : nullptr;
  }
  s3_options _opts;
};

TEST_F(s3_swift_test, multipart_above_threshold_reads_back_identical) {
  s3_options o = _opts;
  o.multipart_threshold = 12 << 20;
  o.multipart_part_size = 5 << 20;  // S3's minimum
  auto store = open(o);
  const bytes data = random_bytes((23 << 20) + 12345, 42);  // 5 parts, the last one short
  auto put = store->put("big", data);
  ASSERT_TRUE(put) << put.message();
  auto got = store->get("big");
  ASSERT_TRUE(got) << got.message();
  EXPECT_EQ(got->size(), data.size());
  EXPECT_TRUE(*got == data);
  auto range = store->get_range("big", (5 << 20) - 10, 20);  // across a part boundary
  ASSERT_TRUE(range);
  EXPECT_TRUE(std::equal(range->begin(), range->end(), data.begin() + (5 << 20) - 10));
  // The explicit call, default part size, a single part.
  ASSERT_TRUE(store->put_multipart("one-part", to_bytes("tiny")));
  auto tiny = store->get("one-part");
  ASSERT_TRUE(tiny);
  EXPECT_EQ(*tiny, to_bytes("tiny"));
  ASSERT_TRUE(store->remove_many(std::vector<std::string>{"big", "one-part"}));
}

TEST_F(s3_swift_test, failed_multipart_is_aborted_and_leaves_no_object) {
  // Parts under 5 MiB: Swift accepts each part and refuses the completion (EntityTooSmall), so
  // put() above the threshold fails, aborts, and leaves nothing. That it fails at all proves put()
  // went multipart (a plain PUT of 3 MiB succeeds, as the last line shows).
  s3_options o = _opts;
  o.multipart_threshold = 1 << 20;
  o.multipart_part_size = 1 << 20;
  auto store = open(o);
  const bytes data = random_bytes(3 << 20, 3);
  auto r = store->put("small-parts", data);
  ASSERT_FALSE(r);
  EXPECT_NE(r.message().find("EntityTooSmall"), std::string::npos) << r.message();
  EXPECT_EQ(store->head("small-parts").code(), errc::not_found);
  auto listed = store->list("");
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());
  s3_options plain = o;
  plain.multipart_threshold = 0;
  auto plain_store = open(plain);
  ASSERT_TRUE(plain_store->put("small-parts", data));
  ASSERT_TRUE(plain_store->remove("small-parts"));
}

TEST_F(s3_swift_test, conditional_put_is_unsupported_not_an_overwrite) {
  auto store = open(_opts);
  ASSERT_TRUE(store->put("k", to_bytes("first")));
  auto r = store->put_if_absent("k", to_bytes("second"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::unsupported) << r.message();
  auto got = store->get("k");
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, to_bytes("first"));
  auto left = store->list("");
  ASSERT_TRUE(left);
  EXPECT_EQ(left->size(), 1u);  // the probe's scratch key is gone
  ASSERT_TRUE(store->remove("k"));
}

}  // namespace
}  // namespace sh::storage
