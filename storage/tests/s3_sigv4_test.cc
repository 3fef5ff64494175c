// SigV4 against the worked examples in AWS's S3 documentation ("Signature Calculations for the
// Authorization Header"), which use the documentation's example credentials.
#include "../src/s3_sigv4.h"

#include <gtest/gtest.h>

namespace sh::storage::s3 {
namespace {

constexpr std::string_view akid = "AKIAIOSFODNN7EXAMPLE";
constexpr std::string_view secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr std::string_view empty_hash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

sign_input base(std::string_view method, std::string_view uri, std::string_view query,
                std::string_view payload_hash) {
  sign_input in;
  in.method = method;
  in.canonical_uri = uri;
  in.canonical_query = query;
  in.payload_hash = payload_hash;
  in.amz_date = "20130524T000000Z";
  in.region = "us-east-1";
  in.access_key = akid;
  in.secret_key = secret;
  return in;
}

TEST(sigv4, get_object_with_range) {
  auto in = base("GET", "/test.txt", "", empty_hash);
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"Range", "bytes=0-9"},
                {"x-amz-content-sha256", std::string(empty_hash)},
                {"x-amz-date", "20130524T000000Z"}};
  auto sig = sign(in);
  EXPECT_EQ(sig.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            "\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sig.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(sig.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(sigv4, put_object) {
  const std::string body_hash = sha256_hex(as_bytes("Welcome to Amazon S3."));
  EXPECT_EQ(body_hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  std::string uri = "/";  // (not "/" + ...: GCC 12 -Wrestrict false positive)
  uri += uri_encode("test$file.text", false);
  EXPECT_EQ(uri, "/test%24file.text");
  auto in = base("PUT", uri, "", body_hash);
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                {"x-amz-date", "20130524T000000Z"},
                {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                {"x-amz-content-sha256", body_hash}};
  EXPECT_EQ(sign(in).signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(sigv4, get_bucket_lifecycle_empty_query_value) {
  const std::string query = canonical_query({{"lifecycle", ""}});
  EXPECT_EQ(query, "lifecycle=");
  auto in = base("GET", "/", query, empty_hash);
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"x-amz-date", "20130524T000000Z"},
                {"x-amz-content-sha256", std::string(empty_hash)}};
  EXPECT_EQ(sign(in).signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(sigv4, list_objects_sorted_query) {
  const std::string query = canonical_query({{"prefix", "J"}, {"max-keys", "2"}});
  EXPECT_EQ(query, "max-keys=2&prefix=J");
  auto in = base("GET", "/", query, empty_hash);
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"x-amz-date", "20130524T000000Z"},
                {"x-amz-content-sha256", std::string(empty_hash)}};
  EXPECT_EQ(sign(in).signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(sigv4, encoding) {
  EXPECT_EQ(uri_encode("a b/c+d=e&f~g_h.i-j", false), "a%20b/c%2Bd%3De%26f~g_h.i-j");
  EXPECT_EQ(uri_encode("a/b", true), "a%2Fb");
  EXPECT_EQ(uri_encode("\xc3\xbc", true), "%C3%BC");
  EXPECT_EQ(canonical_query({{"prefix", "a/b c"}, {"list-type", "2"}}),
            "list-type=2&prefix=a%2Fb%20c");
  EXPECT_EQ(md5_base64(as_bytes("")), "1B2M2Y8AsgTpgAmY7PhCfg==");
  EXPECT_EQ(amz_date(std::chrono::system_clock::time_point(std::chrono::seconds(1369353600))),
            "20130524T000000Z");
}

}  // namespace
}  // namespace sh::storage::s3
