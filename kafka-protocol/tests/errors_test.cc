#include "sh/kafka/errors.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace sh::kafka {
namespace {

TEST(errors, values_match_kafka) {
  EXPECT_EQ(to_wire(error_code::none), 0);
  EXPECT_EQ(to_wire(error_code::unknown_server_error), -1);
  EXPECT_EQ(to_wire(error_code::not_leader_or_follower), 6);
  EXPECT_EQ(to_wire(error_code::message_too_large), 10);
  EXPECT_EQ(to_wire(error_code::unsupported_version), 35);
  EXPECT_EQ(to_wire(error_code::out_of_order_sequence_number), 45);
  EXPECT_EQ(to_wire(error_code::unknown_topic_id), 100);
  EXPECT_EQ(to_wire(error_code::transaction_abortable), 120);
}

TEST(errors, every_code_has_a_distinct_name) {
  std::set<std::string> names;
  for (int v = -1; v <= 120; ++v) {
    std::string n = error_name(static_cast<int16_t>(v));
    EXPECT_NE(n, "unknown") << v;
    EXPECT_TRUE(names.insert(n).second) << n;
  }
  EXPECT_STREQ(error_name(static_cast<int16_t>(999)), "unknown");
  EXPECT_STREQ(error_name(error_code::corrupt_message), "corrupt_message");
}

TEST(errors, retriable) {
  EXPECT_TRUE(is_retriable(error_code::not_leader_or_follower));
  EXPECT_TRUE(is_retriable(error_code::coordinator_load_in_progress));
  EXPECT_FALSE(is_retriable(error_code::none));
  EXPECT_FALSE(is_retriable(error_code::topic_authorization_failed));
}

}  // namespace
}  // namespace sh::kafka
