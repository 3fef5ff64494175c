#include "sh/parquet/internal/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace sh::parquet {
namespace {

TEST(Utf8, Valid) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("plain ascii, long enough for the 8-byte fast path"));
  EXPECT_TRUE(valid_utf8("\xc3\xa9"));              // é
  EXPECT_TRUE(valid_utf8("\xe2\x82\xac"));          // €
  EXPECT_TRUE(valid_utf8("\xf0\x9d\x84\x9e"));      // U+1D11E
  EXPECT_TRUE(valid_utf8("\xf4\x8f\xbf\xbf"));      // U+10FFFF
  EXPECT_TRUE(valid_utf8("\xed\x9f\xbf"));          // U+D7FF, just below the surrogates
  EXPECT_TRUE(valid_utf8("\xee\x80\x80"));          // U+E000, just above
  EXPECT_TRUE(valid_utf8(std::string("a\0b", 3)));  // NUL is valid UTF-8
}

TEST(Utf8, Invalid) {
  EXPECT_FALSE(valid_utf8("\x80"));              // lone continuation
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(valid_utf8("\xc1\xbf"));          // overlong
  EXPECT_FALSE(valid_utf8("\xe0\x80\xaf"));      // overlong 3-byte
  EXPECT_FALSE(valid_utf8("\xf0\x80\x80\xaf"));  // overlong 4-byte
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(valid_utf8("\xed\xbf\xbf"));      // surrogate U+DFFF
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(valid_utf8("\xf5\x80\x80\x80"));
  EXPECT_FALSE(valid_utf8("\xff"));
  EXPECT_FALSE(valid_utf8("\xe2\x82"));              // truncated
  EXPECT_FALSE(valid_utf8("\xc3"));                  // truncated at the end
  EXPECT_FALSE(valid_utf8("\xc3\x28"));              // bad continuation
  EXPECT_FALSE(valid_utf8("0123456789abcdef\xff"));  // after the fast path
  EXPECT_FALSE(
      valid_utf8("01234567\x80"
                 "89abcdef"));
}

TEST(Utf8, Sanitize) {
  EXPECT_EQ(sanitize_utf8("abc"), "abc");
  EXPECT_EQ(sanitize_utf8("a\xff"
                          "b"),
            "a\xef\xbf\xbd"
            "b");
  EXPECT_EQ(sanitize_utf8("\xc3\xa9\xe2\x82"), "\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_TRUE(valid_utf8(sanitize_utf8("\xed\xa0\x80\xf4\x90\x80\x80 ok")));
}

}  // namespace
}  // namespace sh::parquet
