#include "sh/storage/fault_injecting_store.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace sh::storage {
namespace {

class fault_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto local = open_local_store(_dir.path());
    ASSERT_TRUE(local);
    _store = std::make_unique<fault_injecting_store>(std::move(*local), 7);
  }
  testing::temp_dir _dir;
  std::unique_ptr<fault_injecting_store> _store;
};

TEST_F(fault_store_test, next_n_calls_fail_then_pass) {
  _store->add_rule(fault_rule(store_op::put, errc::unavailable).failing_times(2));
  EXPECT_EQ(_store->put("a", bytes{1}).code(), errc::unavailable);
  auto second = _store->put("a", bytes{1});
  EXPECT_EQ(second.code(), errc::unavailable);
  EXPECT_NE(second.message().find("injected"), std::string::npos) << second.message();
  EXPECT_EQ(_store->backend().get("a").code(), errc::not_found);  // nothing written
  EXPECT_TRUE(_store->put("a", bytes{1}));
  EXPECT_EQ(_store->calls(store_op::put), 3u);
  EXPECT_EQ(_store->injected_failures(), 2u);
}

// Conditional and multipart puts are "puts" to the rules, and reach the backend's own versions.
TEST_F(fault_store_test, conditional_and_multipart_puts_count_as_put) {
  _store->add_rule(fault_rule(store_op::put, errc::unavailable).failing_times(1));
  EXPECT_EQ(_store->put_if_absent("c", bytes{1}).code(), errc::unavailable);
  EXPECT_TRUE(_store->put_if_absent("c", bytes{1}));
  EXPECT_EQ(_store->put_if_absent("c", bytes{2}).code(), errc::already_exists);
  _store->add_rule(fault_rule(store_op::put, errc::timeout).applied());
  EXPECT_EQ(_store->put_multipart("m", bytes{1, 2, 3}, 1).code(), errc::timeout);
  EXPECT_EQ(_store->backend().get("m")->size(), 3u);  // written, reported failed
  EXPECT_EQ(_store->calls(store_op::put), 4u);
}

TEST_F(fault_store_test, skip_prefix_and_forever) {
  _store->add_rule(
      fault_rule(store_op::get, errc::timeout).for_prefix("seg/").skipping(1).forever());
  ASSERT_TRUE(_store->put("seg/1", bytes{1}));
  ASSERT_TRUE(_store->put("other", bytes{2}));
  EXPECT_TRUE(_store->get("seg/1"));  // skipped
  for (int i = 0; i < 5; ++i) EXPECT_EQ(_store->get("seg/1").code(), errc::timeout);
  EXPECT_TRUE(_store->get("other"));  // prefix does not match
  _store->clear();
  EXPECT_TRUE(_store->get("seg/1"));
}

TEST_F(fault_store_test, after_effect_is_the_ambiguous_outcome) {
  _store->add_rule(fault_rule(store_op::put, errc::timeout).applied());
  EXPECT_EQ(_store->put("k", bytes{9}).code(), errc::timeout);
  auto there = _store->backend().get("k");  // ...but the write happened
  ASSERT_TRUE(there);
  EXPECT_EQ(*there, bytes{9});
  _store->add_rule(fault_rule(store_op::remove, errc::unavailable).applied());
  EXPECT_EQ(_store->remove("k").code(), errc::unavailable);
  EXPECT_EQ(_store->backend().get("k").code(), errc::not_found);
}

TEST_F(fault_store_test, delay_and_hook) {
  _store->add_rule(fault_rule(store_op::head, errc::ok).delayed(std::chrono::milliseconds(50)));
  std::vector<std::string> seen;
  _store->set_before_call([&](store_op op, const std::string& key) {
    seen.push_back(std::string(to_string(op)) + ":" + key);
  });
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(_store->head("x").code(), errc::not_found);  // passed through after the delay
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(50));
  EXPECT_EQ(seen, (std::vector<std::string>{"head:x"}));
}

TEST_F(fault_store_test, seeded_random_failures_replay) {
  auto run = [&](uint64_t seed) {
    fault_injecting_store s(open_memory_store(), seed);
    s.set_failure_probability(store_op::put, 0.3, errc::io_error);
    std::string pattern;
    for (int i = 0; i < 200; ++i) pattern += s.put("k", bytes{1}) ? '.' : 'x';
    return pattern;
  };
  const std::string a = run(5);
  EXPECT_EQ(a, run(5));
  EXPECT_NE(a, run(6));
  const auto fails = std::count(a.begin(), a.end(), 'x');
  EXPECT_GT(fails, 30);
  EXPECT_LT(fails, 90);
}

}  // namespace
}  // namespace sh::storage
