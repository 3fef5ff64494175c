#pragma once
// Shared test data for the benchmarks: deterministic payloads and Kafka batches.
//
// Two payload kinds, because codec and CRC speed depend on the data:
//  - random bytes: incompressible (worst case for codecs, what encrypted payloads look like);
//  - "events": JSON-ish log lines with repeated field names and a few random values, which
//    compress 3-6x like typical application events.
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "sh/kafka/record_batch.h"

namespace sh::bench {

inline std::vector<uint8_t> random_bytes(size_t n, uint64_t seed = 42) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    for (int b = 0; b < 8; ++b) out[i + b] = static_cast<uint8_t>(v >> (8 * b));
  }
  for (; i < n; ++i) out[i] = static_cast<uint8_t>(rng());
  return out;
}

inline std::string random_string(size_t n, std::mt19937_64& rng) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// One application-event-like value of exactly `size` bytes.
inline std::string event_value(size_t size, std::mt19937_64& rng) {
  static const char* const events[] = {"page_view", "click",  "add_to_cart", "checkout",
                                       "login",     "logout", "search"};
  static const char* const paths[] = {"/",     "/products/shoes",   "/products/hats",
                                      "/cart", "/account/settings", "/search?q=boots"};
  std::string s;
  s.reserve(size + 64);
  while (s.size() < size) {
    char buf[256];
    int n = std::snprintf(buf, sizeof buf,
                          "{\"ts\":%llu,\"user\":\"user-%05u\",\"event\":\"%s\",\"path\":\"%s\","
                          "\"session\":\"%08x\",\"amount\":%u.%02u}\n",
                          static_cast<unsigned long long>(1700000000000ULL + rng() % 100000000),
                          static_cast<unsigned>(rng() % 100000), events[rng() % 7],
                          paths[rng() % 6], static_cast<unsigned>(rng()),
                          static_cast<unsigned>(rng() % 1000), static_cast<unsigned>(rng() % 100));
    s.append(buf, static_cast<size_t>(n));
  }
  s.resize(size);
  return s;
}

enum class payload { random, events };

inline std::vector<kafka::record_spec> make_records(size_t count, size_t value_size, payload kind,
                                                    uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::vector<kafka::record_spec> recs(count);
  for (size_t i = 0; i < count; ++i) {
    recs[i].key = "key-" + std::to_string(i % 1000);
    recs[i].value =
        kind == payload::random ? random_string(value_size, rng) : event_value(value_size, rng);
    recs[i].timestamp_delta = static_cast<int64_t>(i);
  }
  return recs;
}

// One magic-2 batch of `count` records (uncompressed unless `codec` says otherwise).
inline std::vector<uint8_t> make_batch(
    size_t count, size_t value_size, payload kind,
    kafka::compression_type codec = kafka::compression_type::none, uint64_t seed = 7) {
  kafka::batch_build_options opt;
  opt.attributes = static_cast<int16_t>(codec);
  opt.base_timestamp = 1700000000000;
  return kafka::build_batch(opt, make_records(count, value_size, kind, seed));
}

}  // namespace sh::bench
