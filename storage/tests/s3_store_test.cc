// S3-only behaviour against a real server (skipped unless S3_ENDPOINT is set).
#include <gtest/gtest.h>

#include "sh/storage/object_store.h"
#include "test_util.h"

namespace sh::storage {
namespace {

class s3_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opts = testing::s3_options_from_env();
    if (!opts) GTEST_SKIP() << "S3_ENDPOINT is not set; start tests/services/test-services.sh";
    _opts = *opts;
    auto made = s3_create_bucket(_bucket, _opts);
    ASSERT_TRUE(made) << made.message();
    _prefix = testing::unique_prefix("s3");
  }
  std::unique_ptr<object_store> open(const s3_options& o) {
    auto s = open_object_store("s3://" + _bucket + "/" + _prefix, o);
    EXPECT_TRUE(s) << s.message();
    return s ? std::move(*s) : nullptr;
  }
  s3_options _opts;
  std::string _bucket = testing::s3_test_bucket();
  std::string _prefix;
};

TEST_F(s3_store_test, wrong_secret_is_auth_failed) {
  auto o = _opts;
  o.secret_key = "not-the-secret";
  auto store = open(o);
  auto r = store->put("k", bytes{1, 2, 3});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::auth_failed);
  EXPECT_NE(r.message().find("wrong credentials"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("SignatureDoesNotMatch"), std::string::npos) << r.message();
  EXPECT_EQ(store->get("k").code(), errc::auth_failed);
  EXPECT_EQ(store->list("").code(), errc::auth_failed);
  auto p = store->probe();
  EXPECT_EQ(p.code(), errc::auth_failed);
  EXPECT_NE(p.message().find("wrong credentials"), std::string::npos) << p.message();
}

TEST_F(s3_store_test, unknown_access_key_is_auth_failed) {
  auto o = _opts;
  o.access_key = "nobody:none";
  auto r = open(o)->get("k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::auth_failed) << r.message();
}

TEST_F(s3_store_test, missing_bucket) {
  auto s = open_object_store("s3://sh-no-such-bucket-" + std::to_string(::getpid()) + "/p", _opts);
  ASSERT_TRUE(s);
  auto r = (*s)->put("k", bytes{1});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::invalid_argument) << r.message();
  EXPECT_NE(r.message().find("does not exist"), std::string::npos) << r.message();
  // A HEAD's 404 has no body, so it cannot tell a missing bucket from a missing key; probe() can.
  EXPECT_EQ((*s)->head("k").code(), errc::not_found);
  auto p = (*s)->probe();
  EXPECT_EQ(p.code(), errc::invalid_argument) << p.message();
  EXPECT_NE(p.message().find("does not exist"), std::string::npos) << p.message();
  EXPECT_TRUE(open(_opts)->probe());
}

TEST_F(s3_store_test, list_pages) {
  auto o = _opts;
  o.list_page_size = 3;
  auto store = open(o);
  std::vector<std::string> expect;
  for (int i = 0; i < 10; ++i) {
    std::string k = "page/" + std::to_string(i);
    ASSERT_TRUE(store->put(k, bytes(static_cast<size_t>(i), 1)));
    expect.push_back(k);
  }
  ASSERT_TRUE(store->put("other", bytes{}));
  auto r = store->list("page/");
  ASSERT_TRUE(r) << r.message();
  ASSERT_EQ(r->size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ((*r)[i].key, expect[i]);
    EXPECT_EQ((*r)[i].size, i);
  }
  expect.push_back("other");
  ASSERT_TRUE(store->remove_many(expect));
  EXPECT_TRUE(store->list("")->empty());
}

TEST_F(s3_store_test, prefix_isolation_and_describe) {
  auto store = open(_opts);
  EXPECT_EQ(store->describe(), "s3://" + _bucket + "/" + _prefix + " at " + _opts.endpoint);
  ASSERT_TRUE(store->put("k", bytes{7}));
  // The same bucket under another prefix sees nothing of it.
  auto other = open_object_store("s3://" + _bucket + "/" + _prefix + "-other", _opts);
  ASSERT_TRUE(other);
  EXPECT_TRUE((*other)->list("")->empty());
  EXPECT_EQ((*other)->get("k").code(), errc::not_found);
  ASSERT_TRUE(store->remove("k"));
}

}  // namespace
}  // namespace sh::storage
