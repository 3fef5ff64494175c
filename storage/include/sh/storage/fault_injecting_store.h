#pragma once
// An object_store decorator that injects failures and delays, for tests of everything above
// storage (commit paths, fetch, compaction): fail the next N calls of an operation, fail at
// random with a seeded generator, add latency, or apply a put/remove to the backend and still
// report failure (the ambiguous outcome a lost response gives). Thread-safe like any store.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "sh/storage/object_store.h"

namespace sh::storage {

enum class store_op { put, get, get_range, head, list, remove, remove_many };
const char* to_string(store_op op) noexcept;

// One injected behaviour, e.g.
//   fault_rule(store_op::put, errc::unavailable).for_prefix("ingest/").failing_times(2)
//   fault_rule(store_op::put, errc::timeout).applied()      // written, but reported as failed
//   fault_rule(store_op::get_range, errc::ok).delayed(50ms)  // latency only
struct fault_rule {
  fault_rule(store_op o, errc c) : op(o), code(c) {}

  store_op op;
  errc code;               // errc::ok: only the delay, the call goes through
  std::string key_prefix;  // applies to keys (list: prefixes) starting with this; "" = all
  int skip = 0;            // let this many matching calls through first
  int times = 1;           // then fail this many (-1: every one from then on)
  // put / remove / remove_many: perform the call on the backend, then report the failure.
  bool after_effect = false;
  std::chrono::milliseconds delay{0};  // before the call (or the failure)

  fault_rule& for_prefix(std::string p) {
    key_prefix = std::move(p);
    return *this;
  }
  fault_rule& skipping(int n) {
    skip = n;
    return *this;
  }
  fault_rule& failing_times(int n) {
    times = n;
    return *this;
  }
  fault_rule& forever() {
    times = -1;
    return *this;
  }
  fault_rule& applied() {
    after_effect = true;
    return *this;
  }
  fault_rule& delayed(std::chrono::milliseconds d) {
    delay = d;
    return *this;
  }
};

class fault_injecting_store final : public object_store {
 public:
  explicit fault_injecting_store(std::unique_ptr<object_store> backend, uint64_t seed = 1);

  void add_rule(fault_rule rule);
  // Every call of `op` fails with probability p (after rules), from a generator seeded at
  // construction, so a failing run can be replayed.
  void set_failure_probability(store_op op, double p, errc code = errc::unavailable);
  // Called before every operation (outside the store's lock), e.g. to block on a latch.
  void set_before_call(std::function<void(store_op, const std::string&)> hook);
  void clear();  // rules, probabilities and hook

  uint64_t calls(store_op op) const;  // calls made to this decorator
  uint64_t injected_failures() const;
  object_store& backend() { return *_backend; }

  sresult<void> put(const std::string& key, std::span<const uint8_t> data) override;
  // Counted and failed as store_op::put.
  sresult<void> put_if_absent(const std::string& key, std::span<const uint8_t> data) override;
  sresult<void> put_multipart(const std::string& key, std::span<const uint8_t> data,
                              uint64_t part_size = 0) override;
  sresult<bytes> get(const std::string& key) override;
  sresult<bytes> get_range(const std::string& key, uint64_t offset, uint64_t length) override;
  sresult<object_info> head(const std::string& key) override;
  sresult<std::vector<object_info>> list(const std::string& prefix) override;
  sresult<void> remove(const std::string& key) override;
  sresult<void> remove_many(std::span<const std::string> keys) override;
  std::string describe() const override;

 private:
  struct decision {
    bool fail = false;
    bool after_effect = false;
    errc code = errc::ok;
    std::chrono::milliseconds delay{0};
  };
  decision decide(store_op op, const std::string& key);
  error_info<errc> injected(store_op op, const std::string& key, errc code) const;

  std::unique_ptr<object_store> _backend;
  mutable std::mutex _mu;
  std::vector<fault_rule> _rules;
  std::vector<int> _rule_seen;  // matching calls seen per rule
  double _probability[7] = {};
  errc _probability_code[7] = {};
  uint64_t _calls[7] = {};
  uint64_t _injected = 0;
  std::mt19937_64 _rng;
  std::function<void(store_op, const std::string&)> _before;
};

}  // namespace sh::storage
