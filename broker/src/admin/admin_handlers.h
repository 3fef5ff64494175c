#pragma once
// Admin API handlers (registered by admin_handlers()) and the pieces unit tests call directly.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "../handlers/handlers.h"
#include "sh/kafka/messages/describe_configs_response.h"
#include "sh/kafka/messages/incremental_alter_configs_request.h"

namespace sh::broker {

// An error and its message for one resource / topic / partition.
struct admin_outcome {
  kafka::error_code error = kafka::error_code::none;
  std::optional<std::string> message;
  static admin_outcome ok() { return {}; }
  static admin_outcome fail(kafka::error_code e, std::string m) { return {e, std::move(m)}; }
};

awaitable<handler_response> handle_delete_topics(broker_context&, connection_state&,
                                                 const request&);
awaitable<handler_response> handle_delete_records(broker_context&, connection_state&,
                                                  const request&);
awaitable<handler_response> handle_create_partitions(broker_context&, connection_state&,
                                                     const request&);
awaitable<handler_response> handle_describe_configs(broker_context&, connection_state&,
                                                    const request&);
awaitable<handler_response> handle_alter_configs(broker_context&, connection_state&,
                                                 const request&);
awaitable<handler_response> handle_incremental_alter_configs(broker_context&, connection_state&,
                                                             const request&);
awaitable<handler_response> handle_describe_cluster(broker_context&, connection_state&,
                                                    const request&);

// DescribeConfigs answers for one topic / this broker. `keys` null or empty: every config.
kafka::describe_configs_response::describe_configs_result describe_topic_configs(
    const broker_config& cfg, const metadata::topic_info& topic,
    const std::optional<std::vector<std::string>>& keys, bool synonyms, bool documentation);
kafka::describe_configs_response::describe_configs_result describe_broker_configs(
    const broker_config& cfg, const std::string& resource_name,
    const std::optional<std::vector<std::string>>& keys, bool synonyms, bool documentation);

// Applies IncrementalAlterConfigs operations (SET/DELETE/APPEND/SUBTRACT) to `current`; values
// are validated afterwards by validate_topic_configs.
admin_outcome apply_incremental(
    std::map<std::string, std::string>& current,
    const std::vector<kafka::incremental_alter_configs_request::alterable_config>& ops,
    const broker_config& cfg);

}  // namespace sh::broker
