// The S3 client against a scripted fake server: retries, backoff, error mapping, request shape.
// (The real-server tests are in object_store_conformance_test.cc and s3_store_test.cc.)
#include <gtest/gtest.h>

#include "../src/s3_sigv4.h"
#include "fake_http_server.h"
#include "sh/storage/object_store.h"

namespace sh::storage {
namespace {

using testing::fake_http_server;
using testing::fake_reply;

std::string s3_error(std::string_view code, std::string_view message) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + std::string(code) +
         "</Code><Message>" + std::string(message) + "</Message></Error>";
}

class s3_fault_test : public ::testing::Test {
 protected:
  std::unique_ptr<object_store> open(int max_attempts = 4) {
    s3_options o;
    o.endpoint = _server.endpoint();
    o.access_key = "test:tester";
    o.secret_key = "testing";
    o.max_attempts = max_attempts;
    o.backoff_base = std::chrono::milliseconds(1);
    o.backoff_max = std::chrono::milliseconds(20);
    o.request_timeout = std::chrono::milliseconds(500);
    o.list_page_size = 2;
    auto s = open_object_store("s3://bkt/pre/fix/", o);
    EXPECT_TRUE(s) << s.message();
    return s ? std::move(*s) : nullptr;
  }
  fake_http_server _server;
};

TEST_F(s3_fault_test, put_request_shape) {
  auto store = open();
  bytes data = {'h', 'e', 'l', 'l', 'o'};
  ASSERT_TRUE(store->put("a b/c+d", data));
  auto reqs = _server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "PUT");
  EXPECT_EQ(reqs[0].target, "/bkt/pre/fix/a%20b/c%2Bd");
  EXPECT_EQ(reqs[0].body, "hello");
  EXPECT_EQ(reqs[0].header("x-amz-content-sha256"), s3::sha256_hex(data));
  EXPECT_EQ(reqs[0].header("host"), _server.endpoint().substr(7));
  EXPECT_EQ(reqs[0].header("expect"), "");
  const std::string auth = reqs[0].header("authorization");
  EXPECT_TRUE(auth.starts_with("AWS4-HMAC-SHA256 Credential=test:tester/")) << auth;
  EXPECT_NE(auth.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"), std::string::npos)
      << auth;
}

TEST_F(s3_fault_test, retries_503_slowdown_then_succeeds) {
  auto store = open();
  _server.script({503, s3_error("SlowDown", "Please reduce your request rate.")});
  _server.script({503, s3_error("SlowDown", "Please reduce your request rate.")});
  auto r = store->put("k", bytes{1, 2, 3});
  ASSERT_TRUE(r) << r.message();
  auto reqs = _server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  for (auto& q : reqs) EXPECT_EQ(q.body, std::string("\x01\x02\x03", 3));
}

TEST_F(s3_fault_test, gives_up_after_max_attempts) {
  auto store = open(3);
  _server.set_default({503, s3_error("SlowDown", "Please reduce your request rate.")});
  auto r = store->get("k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::unavailable);
  EXPECT_EQ(_server.requests().size(), 3u);
  for (const char* part : {"get 'k'", "HTTP 503 SlowDown", "3 attempts", "s3://bkt/pre/fix"}) {
    EXPECT_NE(r.message().find(part), std::string::npos) << part << " in: " << r.message();
  }
}

TEST_F(s3_fault_test, retries_500_on_head_without_body) {
  auto store = open();
  _server.script({500, ""});
  _server.script({200, ""});  // the fake's Content-Length: 0 is the object size
  auto r = store->head("k");
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(r->size, 0u);
  EXPECT_EQ(_server.requests().size(), 2u);
}

TEST_F(s3_fault_test, retries_connection_reset) {
  auto store = open();
  fake_reply reset;
  reset.reset = true;
  _server.script(reset);
  _server.script({200, "payload"});
  auto r = store->get("k");
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(std::string(r->begin(), r->end()), "payload");
  EXPECT_EQ(_server.requests().size(), 2u);
}

TEST_F(s3_fault_test, timeout_is_retried_then_reported) {
  auto store = open(2);
  fake_reply slow{200, "late"};
  slow.delay = std::chrono::milliseconds(800);
  _server.set_default(slow);
  auto r = store->get("k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::timeout) << r.message();
  EXPECT_EQ(_server.requests().size(), 2u);
}

TEST_F(s3_fault_test, wrong_credentials_are_not_retried) {
  auto store = open();
  _server.set_default({403, s3_error("SignatureDoesNotMatch",
                                     "The request signature we calculated does not match")});
  auto r = store->put("k", bytes{1});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::auth_failed);
  EXPECT_NE(r.message().find("wrong credentials"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("403"), std::string::npos) << r.message();
  EXPECT_EQ(_server.requests().size(), 1u);
}

TEST_F(s3_fault_test, status_mapping) {
  auto store = open();
  _server.script({404, s3_error("NoSuchKey", "The specified key does not exist.")});
  EXPECT_EQ(store->get("k").code(), errc::not_found);
  _server.script({404, ""});
  EXPECT_EQ(store->head("k").code(), errc::not_found);
  _server.script({404, s3_error("NoSuchBucket", "The specified bucket does not exist")});
  auto nb = store->get("k");
  EXPECT_EQ(nb.code(), errc::invalid_argument);
  EXPECT_NE(nb.message().find("bucket 'bkt' does not exist"), std::string::npos) << nb.message();
  _server.script({403, s3_error("AccessDenied", "Access Denied")});
  auto ad = store->get("k");
  EXPECT_EQ(ad.code(), errc::auth_failed);
  EXPECT_NE(ad.message().find("access denied"), std::string::npos) << ad.message();
  _server.script({400, s3_error("InvalidArgument", "bad")});
  EXPECT_EQ(store->get("k").code(), errc::io_error);
  _server.script({412, s3_error("PreconditionFailed", "no")});
  EXPECT_EQ(store->put("k", bytes{}).code(), errc::precondition_failed);
  _server.script({404, s3_error("NoSuchKey", "gone")});
  EXPECT_TRUE(store->remove("k"));  // absent is ok
  _server.script({204, ""});
  EXPECT_TRUE(store->remove("k"));
  // None of those were retried.
  EXPECT_EQ(_server.requests().size(), 8u);
}

TEST_F(s3_fault_test, range_requests) {
  auto store = open();
  _server.script({206, "cde", {"Content-Range: bytes 2-4/10"}});
  auto r = store->get_range("k", 2, 3);
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(std::string(r->begin(), r->end()), "cde");
  EXPECT_EQ(_server.requests().back().header("range"), "bytes=2-4");
  // A server ignoring Range sends the whole object; the client cuts it.
  _server.script({200, "0123456789"});
  r = store->get_range("k", 7, 100);
  ASSERT_TRUE(r);
  EXPECT_EQ(std::string(r->begin(), r->end()), "789");
  // A range answer starting elsewhere is refused.
  _server.script({206, "xyz", {"Content-Range: bytes 0-2/10"}});
  EXPECT_EQ(store->get_range("k", 2, 3).code(), errc::io_error);
  // 416: the client asks HEAD for the size to tell "at the end" from "past the end".
  _server.script({416, s3_error("InvalidRange", "")});
  _server.script({200, "", {}});  // HEAD, Content-Length: 0 (the fake's empty body)
  r = store->get_range("k", 0, 5);
  ASSERT_TRUE(r) << r.message();
  EXPECT_TRUE(r->empty());
  _server.script({416, s3_error("InvalidRange", "")});
  _server.script({200, "", {}});
  EXPECT_EQ(store->get_range("k", 3, 5).code(), errc::invalid_argument);
  // Huge lengths become an open-ended range.
  _server.script({206, "9", {"Content-Range: bytes 9-9/10"}});
  ASSERT_TRUE(store->get_range("k", 9, UINT64_MAX));
  EXPECT_EQ(_server.requests().back().header("range"), "bytes=9-");
}

TEST_F(s3_fault_test, list_pages_and_unescapes) {
  auto store = open();
  auto page = [](std::vector<std::string> keys, const char* next) {
    std::string x =
        "<ListBucketResult><IsTruncated>" + std::string(next ? "true" : "false") + "</IsTruncated>";
    for (auto& k : keys) x += "<Contents><Key>" + k + "</Key><Size>7</Size></Contents>";
    if (next) x += "<NextContinuationToken>" + std::string(next) + "</NextContinuationToken>";
    return x + "</ListBucketResult>";
  };
  _server.script({200, page({"pre/fix/b", "pre/fix/a&amp;b"}, "tok/1+")});
  _server.script({200, page({"pre/fix/c&#252;"}, nullptr)});
  auto r = store->list("");
  ASSERT_TRUE(r) << r.message();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].key, "a&b");
  EXPECT_EQ((*r)[1].key, "b");
  EXPECT_EQ((*r)[2].key, "c\xc3\xbc");
  EXPECT_EQ((*r)[2].size, 7u);
  auto reqs = _server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, "/bkt?list-type=2&max-keys=2&prefix=pre%2Ffix%2F");
  EXPECT_EQ(reqs[1].target,
            "/bkt?continuation-token=tok%2F1%2B&list-type=2&max-keys=2&prefix=pre%2Ffix%2F");
  // A truncated page without a token would loop forever: refused.
  _server.script({200, page({"pre/fix/x"}, "")});
  EXPECT_EQ(store->list("").code(), errc::io_error);
}

TEST_F(s3_fault_test, remove_many_batches_with_md5) {
  auto store = open();
  std::vector<std::string> keys;
  for (int i = 0; i < 1500; ++i) keys.push_back("k/" + std::to_string(i));
  _server.script({200, "<DeleteResult></DeleteResult>"});
  _server.script({200,
                  "<DeleteResult><Error><Key>pre/fix/k/7</Key><Code>NoSuchKey</Code>"
                  "<Message>x</Message></Error></DeleteResult>"});
  ASSERT_TRUE(store->remove_many(keys));
  auto reqs = _server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/bkt?delete=");
  const auto* body = reinterpret_cast<const uint8_t*>(reqs[0].body.data());
  EXPECT_EQ(reqs[0].header("content-md5"), s3::md5_base64({body, reqs[0].body.size()}));
  EXPECT_NE(reqs[0].body.find("<Key>pre/fix/k/999</Key>"), std::string::npos);
  EXPECT_EQ(reqs[0].body.find("<Key>pre/fix/k/1000</Key>"), std::string::npos);
  EXPECT_NE(reqs[1].body.find("<Key>pre/fix/k/1499</Key>"), std::string::npos);
  // A real failure inside a 200 answer is reported.
  _server.script({200,
                  "<DeleteResult><Error><Key>pre/fix/k/1</Key><Code>AccessDenied</Code>"
                  "<Message>no</Message></Error></DeleteResult>"});
  auto r = store->remove_many(std::span(keys).first(3));
  ASSERT_FALSE(r);
  EXPECT_NE(r.message().find("AccessDenied"), std::string::npos) << r.message();
}

// AWS-style virtual-hosted addressing: the bucket moves into the host name. curl resolves every
// "*.localhost" name to loopback, so the fake server receives it.
TEST_F(s3_fault_test, virtual_hosted_style) {
  s3_options o;
  const std::string port = _server.endpoint().substr(_server.endpoint().rfind(':') + 1);
  o.endpoint = "http://localhost:" + port;
  o.access_key = "a";
  o.secret_key = "b";
  o.path_style = false;
  auto store = open_object_store("s3://bkt/pre", o);
  ASSERT_TRUE(store);
  ASSERT_TRUE((*store)->put("k 1", bytes{1}));
  _server.script({200, "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"});
  ASSERT_TRUE((*store)->list("x"));
  auto reqs = _server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, "/pre/k%201");
  EXPECT_EQ(reqs[0].header("host"), "bkt.localhost:" + port);
  EXPECT_EQ(reqs[1].target, "/?list-type=2&max-keys=1000&prefix=pre%2Fx");
}

TEST_F(s3_fault_test, unreachable_endpoint) {
  s3_options o;
  o.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  o.access_key = "a";
  o.secret_key = "b";
  o.max_attempts = 2;
  o.backoff_base = std::chrono::milliseconds(1);
  auto store = open_object_store("s3://bkt", o);
  ASSERT_TRUE(store);
  auto r = (*store)->get("k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::unavailable) << r.message();
  EXPECT_EQ((*store)->probe().code(), errc::unavailable);
}

TEST(s3_options_check, rejected_at_open) {
  s3_options o;
  o.access_key = "a";
  o.secret_key = "b";
  o.endpoint = "http://localhost:9000";
  EXPECT_TRUE(open_object_store("s3://bucket", o));
  EXPECT_TRUE(open_object_store("s3://bucket/a/b/", o));
  EXPECT_EQ(open_object_store("s3://", o).code(), errc::invalid_argument);
  EXPECT_EQ(open_object_store("s3://bucket/a/../b", o).code(), errc::invalid_argument);
  EXPECT_EQ(open_object_store("s3://bucket").code(), errc::invalid_argument);  // no credentials
  o.endpoint = "localhost:9000";
  EXPECT_EQ(open_object_store("s3://bucket", o).code(), errc::invalid_argument);
  o.endpoint = "ftp://localhost";
  EXPECT_EQ(open_object_store("s3://bucket", o).code(), errc::invalid_argument);
  o.endpoint = "";
  auto aws = open_object_store("s3://bucket/p", o);
  ASSERT_TRUE(aws);
  EXPECT_EQ((*aws)->describe(), "s3://bucket/p at https://s3.us-east-1.amazonaws.com");
  o.max_attempts = 0;
  EXPECT_EQ(open_object_store("s3://bucket", o).code(), errc::invalid_argument);
}

}  // namespace
}  // namespace sh::storage
