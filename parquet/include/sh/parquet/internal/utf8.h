#pragma once
// UTF-8 validation as RFC 3629 defines it: no overlong forms, no surrogates (U+D800..U+DFFF), no
// code point above U+10FFFF, no truncated sequence.
#include <string>
#include <string_view>

namespace sh::parquet {

bool valid_utf8(std::string_view s) noexcept;

// `s` with every invalid byte sequence replaced by U+FFFD (for header keys, which the schema
// declares as STRING).
std::string sanitize_utf8(std::string_view s);

}  // namespace sh::parquet
