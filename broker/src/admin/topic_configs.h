#pragma once
// Topic configs the broker knows: Kafka's names, defaults and value rules, shared by
// CreateTopics, DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sh/broker/config.h"

namespace sh::broker {

// Kafka's DescribeConfigs ConfigType values.
enum class config_type : int8_t {
  unknown = 0,
  boolean = 1,
  string = 2,
  int_type = 3,
  short_type = 4,
  long_type = 5,
  double_type = 6,
  list = 7,
  class_type = 8,
  password = 9,
};

// Kafka's DescribeConfigs ConfigSource values (the ones this broker reports).
inline constexpr int8_t config_source_dynamic_topic = 1;
inline constexpr int8_t config_source_static_broker = 4;
inline constexpr int8_t config_source_default = 5;

struct topic_config_def {
  const char* name;
  // Default; empty: computed from the broker config (see topic_config_default).
  const char* default_value;
  config_type type;
  const char* doc;
};

// Every topic config the broker accepts, ordered by name.
const std::vector<topic_config_def>& topic_config_defs();
const topic_config_def* find_topic_config(std::string_view name);
// The broker key that gives a topic config its default (Kafka's synonym: segment.bytes ->
// log.segment.bytes, segment.ms -> log.roll.ms, retention.ms -> log.retention.ms,
// retention.bytes -> log.retention.bytes, max.message.bytes -> message.max.bytes), or nullptr.
const char* topic_config_broker_key(std::string_view name);
// The broker's value for `def` when the broker config sets its synonym key, else nullopt.
std::optional<std::string> topic_config_broker_value(const topic_config_def& def,
                                                     const broker_config& cfg);
// The value a topic has when it does not set `def`: the broker's synonym if set, else the
// built-in default (max.message.bytes always follows the broker's message.max.bytes).
std::string topic_config_default(const topic_config_def& def, const broker_config& cfg);
// The value in force for a topic: its own setting, else topic_config_default ("" for a name
// not in the table).
std::string effective_topic_config(const std::map<std::string, std::string>& topic_configs,
                                   std::string_view name, const broker_config& cfg);

// nullopt when `value` is acceptable for config `name`, else a message for the client
// (unknown name, or a value of the wrong form).
std::optional<std::string> validate_topic_config(std::string_view name, std::string_view value);
// The first problem in a whole set, or nullopt.
std::optional<std::string> validate_topic_configs(
    const std::map<std::string, std::string>& configs);

// Comma-separated list values (cleanup.policy), trimmed, empty items dropped.
std::vector<std::string> split_config_list(std::string_view value);
std::string join_config_list(const std::vector<std::string>& items);

// Broker settings whose values are secrets (keys naming a secret, URLs with credentials):
// DescribeConfigs reports them as sensitive with a null value.
bool is_sensitive_broker_config(std::string_view key, std::string_view value);

}  // namespace sh::broker
