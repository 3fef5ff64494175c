#include <spdlog/spdlog.h>

#include "../admin/topic_configs.h"
#include "handlers.h"
#include "sh/kafka/messages/create_topics_request.h"
#include "sh/kafka/messages/create_topics_response.h"

namespace sh::broker {

awaitable<handler_response> handle_create_topics(broker_context& ctx, connection_state& conn,
                                                 const request& req) {
  kafka::create_topics_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "CreateTopics body");

  kafka::create_topics_response resp;
  for (const auto& t : in.topics) {
    kafka::create_topics_response::creatable_topic_result tr;
    tr.name = t.name;
    const int32_t partitions = t.num_partitions == -1 ? ctx.cfg.num_partitions : t.num_partitions;
    std::map<std::string, std::string> configs;
    for (const auto& c : t.configs) {
      if (c.value) configs[c.name] = *c.value;
    }
    auto fail = [&](kafka::error_code err, std::string msg) {
      tr.error_code = static_cast<int16_t>(err);
      tr.error_message = std::move(msg);
    };
    if (partitions <= 0 && t.assignments.empty()) {
      fail(kafka::error_code::invalid_partitions, "Number of partitions must be larger than 0.");
    } else if (t.replication_factor == 0 || t.replication_factor < -1) {
      fail(kafka::error_code::invalid_replication_factor,
           "Replication factor must be larger than 0, or -1 to use the default.");
    } else if (auto bad = validate_topic_configs(configs)) {
      fail(kafka::error_code::invalid_config, *bad);
    } else if (in.validate_only) {
      auto existing = co_await run_blocking(ctx.blocking, [&] { return ctx.topics.find(t.name); });
      if (existing && existing->has_value()) {
        fail(kafka::error_code::topic_already_exists, "Topic '" + t.name + "' already exists.");
      }
    } else {
      const int32_t count =
          t.assignments.empty() ? partitions : static_cast<int32_t>(t.assignments.size());
      auto created = co_await run_blocking(
          ctx.blocking, [&] { return ctx.topics.create(t.name, count, configs); });
      if (created) {
        std::copy(created->id.begin(), created->id.end(), tr.topic_id.begin());
        spdlog::info("created topic {} with {} partitions (client {} at {})", t.name, count,
                     req.client_id.value_or("-"), conn.peer);
      } else if (created.code() == metadata::errc::already_exists) {
        fail(kafka::error_code::topic_already_exists, "Topic '" + t.name + "' already exists.");
      } else if (created.code() == metadata::errc::invalid_argument) {
        fail(kafka::error_code::invalid_topic_exception, created.message());
      } else {
        spdlog::error("create topic {}: {}", t.name, created.message());
        fail(kafka::error_code::unknown_server_error, created.message());
      }
    }
    if (tr.error_code == 0) {
      tr.num_partitions =
          t.assignments.empty() ? partitions : static_cast<int32_t>(t.assignments.size());
      tr.replication_factor = 1;
      tr.configs.emplace();
      for (const auto& [k, v] : configs) {
        kafka::create_topics_response::creatable_topic_configs c;
        c.name = k;
        c.value = v;
        c.config_source = 1;  // DYNAMIC_TOPIC_CONFIG
        tr.configs->push_back(std::move(c));
      }
    } else {
      tr.num_partitions = -1;
      tr.replication_factor = -1;
    }
    resp.topics.push_back(std::move(tr));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

}  // namespace sh::broker
