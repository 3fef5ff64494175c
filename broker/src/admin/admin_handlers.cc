// Admin APIs: DeleteTopics, DeleteRecords, DescribeConfigs, AlterConfigs, CreatePartitions,
// IncrementalAlterConfigs, DescribeCluster. Every metadata call runs on the blocking pool; a
// change to a topic drops it from the topic cache so Produce/Metadata see it at once.
#include "admin_handlers.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "../handlers/handlers.h"
#include "sh/kafka/messages/alter_configs_request.h"
#include "sh/kafka/messages/alter_configs_response.h"
#include "sh/kafka/messages/create_partitions_request.h"
#include "sh/kafka/messages/create_partitions_response.h"
#include "sh/kafka/messages/delete_records_request.h"
#include "sh/kafka/messages/delete_records_response.h"
#include "sh/kafka/messages/delete_topics_request.h"
#include "sh/kafka/messages/delete_topics_response.h"
#include "sh/kafka/messages/describe_cluster_request.h"
#include "sh/kafka/messages/describe_cluster_response.h"
#include "sh/kafka/messages/describe_configs_request.h"
#include "sh/kafka/messages/describe_configs_response.h"
#include "sh/kafka/messages/incremental_alter_configs_request.h"
#include "sh/kafka/messages/incremental_alter_configs_response.h"
#include "topic_configs.h"

namespace sh::broker {
namespace {

using kafka::error_code;

constexpr int8_t resource_topic = 2;
constexpr int8_t resource_broker = 4;

int16_t code(error_code e) { return static_cast<int16_t>(e); }

using outcome = admin_outcome;

outcome store_failure(const std::string& what, const sh::error_info<metadata::errc>& err) {
  spdlog::error("{}: {}", what, err.message);
  return outcome::fail(error_code::unknown_server_error, err.message);
}

// ---- DeleteTopics ----

outcome delete_one_topic(broker_context& ctx, const std::string& name) {
  auto r = ctx.meta->delete_topic(name);
  ctx.topics.invalidate(name);
  if (r) return outcome::ok();
  if (r.code() == metadata::errc::not_found) {
    return outcome::fail(error_code::unknown_topic_or_partition,
                         "This server does not host this topic-partition.");
  }
  return store_failure("delete topic " + name, r.error());
}

}  // namespace

awaitable<handler_response> handle_delete_topics(broker_context& ctx, connection_state& conn,
                                                 const request& req) {
  kafka::delete_topics_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "DeleteTopics body");

  // v6 names topics by name or id; earlier versions by name only.
  std::vector<kafka::delete_topics_request::delete_topic_state> wanted = in.topics;
  for (const auto& n : in.topic_names) {
    kafka::delete_topics_request::delete_topic_state s;
    s.name = n;
    wanted.push_back(std::move(s));
  }
  kafka::delete_topics_response resp;
  for (const auto& w : wanted) {
    kafka::delete_topics_response::deletable_topic_result tr;
    tr.name = w.name;
    tr.topic_id = w.topic_id;
    const bool by_id = !w.name && w.topic_id != kafka::uuid{};
    auto result = co_await run_blocking(ctx.blocking, [&]() -> outcome {
      std::string name = w.name.value_or("");
      if (by_id) {
        auto topics = ctx.meta->list_topics();
        if (!topics) return store_failure("list topics", topics.error());
        auto it = std::find_if(topics->begin(), topics->end(), [&](const auto& t) {
          return std::equal(t.id.begin(), t.id.end(), w.topic_id.begin());
        });
        if (it == topics->end()) {
          return outcome::fail(error_code::unknown_topic_id,
                               "This server does not host this topic ID.");
        }
        name = it->name;
        tr.name = name;
      } else if (!w.name) {
        return outcome::fail(error_code::invalid_request, "Neither topic name nor id given.");
      } else {
        auto found = ctx.meta->get_topic(name);
        if (found && found->has_value()) {
          std::copy((*found)->id.begin(), (*found)->id.end(), tr.topic_id.begin());
        }
      }
      return delete_one_topic(ctx, name);
    });
    tr.error_code = code(result.error);
    tr.error_message = result.message;
    if (result.error == error_code::none) {
      spdlog::info("deleted topic {} (client {} at {})", tr.name.value_or("?"),
                   req.client_id.value_or("-"), conn.peer);
    }
    resp.responses.push_back(std::move(tr));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- DeleteRecords ----

awaitable<handler_response> handle_delete_records(broker_context& ctx, connection_state&,
                                                  const request& req) {
  kafka::delete_records_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "DeleteRecords body");

  kafka::delete_records_response resp;
  for (const auto& t : in.topics) {
    kafka::delete_records_response::delete_records_topic_result tr;
    tr.name = t.name;
    for (const auto& p : t.partitions) {
      kafka::delete_records_response::delete_records_partition_result pr;
      pr.partition_index = p.partition_index;
      pr.low_watermark = -1;
      auto moved = co_await run_blocking(ctx.blocking, [&] {
        return ctx.meta->delete_records(t.name, p.partition_index, p.offset);
      });
      if (moved) {
        pr.low_watermark = *moved;
        // Fetches below the new log start must fail now, not when the cached state expires.
        ctx.index->invalidate(t.name, p.partition_index);
      } else if (moved.code() == metadata::errc::not_found) {
        pr.error_code = code(error_code::unknown_topic_or_partition);
      } else if (moved.code() == metadata::errc::invalid_argument) {
        pr.error_code = code(error_code::offset_out_of_range);
      } else {
        spdlog::error("delete records {}-{}: {}", t.name, p.partition_index, moved.message());
        pr.error_code = code(error_code::kafka_storage_error);
      }
      tr.partitions.push_back(std::move(pr));
    }
    resp.topics.push_back(std::move(tr));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- CreatePartitions ----

awaitable<handler_response> handle_create_partitions(broker_context& ctx, connection_state& conn,
                                                     const request& req) {
  kafka::create_partitions_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "CreatePartitions body");

  std::map<std::string, int> seen;
  for (const auto& t : in.topics) ++seen[t.name];
  kafka::create_partitions_response resp;
  for (const auto& t : in.topics) {
    kafka::create_partitions_response::create_partitions_topic_result tr;
    tr.name = t.name;
    auto result = co_await run_blocking(ctx.blocking, [&]() -> outcome {
      if (seen[t.name] > 1) {
        return outcome::fail(error_code::invalid_request, "Duplicate topic in request: " + t.name);
      }
      auto found = ctx.meta->get_topic(t.name);
      if (!found) return store_failure("get topic " + t.name, found.error());
      if (!found->has_value()) {
        return outcome::fail(error_code::unknown_topic_or_partition,
                             "The topic '" + t.name + "' does not exist.");
      }
      const int32_t current = (*found)->partition_count;
      if (t.count <= current || t.count > metadata::max_partition_count) {
        return outcome::fail(error_code::invalid_partitions,
                             "Topic currently has " + std::to_string(current) + " partitions, " +
                                 std::to_string(t.count) +
                                 " would not be an increase (or exceeds " +
                                 std::to_string(metadata::max_partition_count) + ").");
      }
      if (t.assignments && !t.assignments->empty() &&
          static_cast<int32_t>(t.assignments->size()) != t.count - current) {
        return outcome::fail(error_code::invalid_replica_assignment,
                             "Increasing the number of partitions by " +
                                 std::to_string(t.count - current) + " but " +
                                 std::to_string(t.assignments->size()) + " assignments provided.");
      }
      if (in.validate_only) return outcome::ok();
      auto grown = ctx.meta->create_partitions(t.name, t.count);
      ctx.topics.invalidate(t.name);
      if (grown) return outcome::ok();
      if (grown.code() == metadata::errc::not_found) {
        return outcome::fail(error_code::unknown_topic_or_partition,
                             "The topic '" + t.name + "' does not exist.");
      }
      if (grown.code() == metadata::errc::invalid_argument) {  // raced with another grower
        return outcome::fail(error_code::invalid_partitions, grown.message());
      }
      return store_failure("create partitions " + t.name, grown.error());
    });
    tr.error_code = code(result.error);
    tr.error_message = result.message;
    if (result.error == error_code::none && !in.validate_only) {
      spdlog::info("topic {} grown to {} partitions (client {} at {})", t.name, t.count,
                   req.client_id.value_or("-"), conn.peer);
    }
    resp.results.push_back(std::move(tr));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- DescribeConfigs ----

namespace {

using config_entry = kafka::describe_configs_response::describe_configs_resource_result;

bool wanted_key(const std::optional<std::vector<std::string>>& keys, const std::string& name) {
  if (!keys || keys->empty()) return true;
  return std::find(keys->begin(), keys->end(), name) != keys->end();
}

}  // namespace

kafka::describe_configs_response::describe_configs_result describe_topic_configs(
    const broker_config& cfg, const metadata::topic_info& topic,
    const std::optional<std::vector<std::string>>& keys, bool synonyms, bool documentation) {
  kafka::describe_configs_response::describe_configs_result out;
  out.error_message = std::nullopt;
  out.resource_type = resource_topic;
  out.resource_name = topic.name;
  // broker_key/broker_value: the static broker setting the default comes from (log.retention.ms
  // for retention.ms, ...), reported with source STATIC_BROKER_CONFIG like Kafka does.
  auto add = [&](const std::string& name, const std::optional<std::string>& set_value,
                 const std::string& default_value, config_type type, const char* doc,
                 const char* broker_key, const std::optional<std::string>& broker_value) {
    if (!wanted_key(keys, name)) return;
    config_entry e;
    e.name = name;
    e.value = set_value ? *set_value : broker_value ? *broker_value : default_value;
    e.read_only = false;
    e.is_default = !set_value && !broker_value;
    e.config_source = set_value      ? config_source_dynamic_topic
                      : broker_value ? config_source_static_broker
                                     : config_source_default;
    e.is_sensitive = false;
    e.config_type = static_cast<int8_t>(type);
    e.documentation = documentation && doc ? std::optional<std::string>(doc) : std::nullopt;
    if (synonyms) {
      if (set_value) {
        e.synonyms.push_back({name, *set_value, config_source_dynamic_topic, {}});
      }
      if (broker_value && broker_key) {
        e.synonyms.push_back({broker_key, *broker_value, config_source_static_broker, {}});
      }
      if (!default_value.empty() || !set_value) {
        e.synonyms.push_back({broker_key && broker_value ? broker_key : name, default_value,
                              config_source_default, {}});
      }
    }
    out.configs.push_back(std::move(e));
  };
  for (const auto& def : topic_config_defs()) {
    auto it = topic.configs.find(def.name);
    const char* broker_key = topic_config_broker_key(def.name);
    // max.message.bytes always follows message.max.bytes (reported as its default, as before).
    std::optional<std::string> broker_value;
    if (broker_key && std::string_view(def.name) != "max.message.bytes") {
      broker_value = topic_config_broker_value(def, cfg);
    }
    add(def.name, it == topic.configs.end() ? std::nullopt : std::optional<std::string>(it->second),
        broker_value ? std::string(def.default_value) : topic_config_default(def, cfg), def.type,
        def.doc, broker_key, broker_value);
  }
  // Configs stored before validation existed (or by a newer broker) are still shown.
  for (const auto& [k, v] : topic.configs) {
    if (!find_topic_config(k)) add(k, v, "", config_type::string, nullptr, nullptr, std::nullopt);
  }
  return out;
}

kafka::describe_configs_response::describe_configs_result describe_broker_configs(
    const broker_config& cfg, const std::string& resource_name,
    const std::optional<std::vector<std::string>>& keys, bool synonyms, bool documentation) {
  kafka::describe_configs_response::describe_configs_result out;
  out.error_message = std::nullopt;
  out.resource_type = resource_broker;
  out.resource_name = resource_name;
  if (!resource_name.empty() && resource_name != std::to_string(cfg.node_id)) {
    out.error_code = code(error_code::invalid_request);
    out.error_message = "Broker " + resource_name.substr(0, 100) + " is not this broker (node " +
                        std::to_string(cfg.node_id) + "); send the request to that broker.";
    return out;
  }
  std::map<std::string, const char*> docs;
  for (const auto& k : known_config_keys()) docs[k.name] = k.doc;
  for (const auto& [k, v] : cfg.raw) {
    if (!wanted_key(keys, k)) continue;
    config_entry e;
    e.name = k;
    e.is_sensitive = is_sensitive_broker_config(k, v);
    e.value = e.is_sensitive ? std::nullopt : std::optional<std::string>(v);
    e.read_only = true;  // static: set in the properties file, environment or --set
    e.is_default = false;
    e.config_source = config_source_static_broker;
    e.config_type =
        static_cast<int8_t>(e.is_sensitive ? config_type::password : config_type::string);
    auto d = docs.find(k);
    e.documentation = documentation && d != docs.end() && d->second
                          ? std::optional<std::string>(d->second)
                          : std::nullopt;
    if (synonyms) e.synonyms.push_back({k, e.value, config_source_static_broker, {}});
    out.configs.push_back(std::move(e));
  }
  return out;
}

awaitable<handler_response> handle_describe_configs(broker_context& ctx, connection_state&,
                                                    const request& req) {
  kafka::describe_configs_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "DescribeConfigs body");

  kafka::describe_configs_response resp;
  for (const auto& res : in.resources) {
    kafka::describe_configs_response::describe_configs_result out;
    out.resource_type = res.resource_type;
    out.resource_name = res.resource_name;
    if (res.resource_type == resource_topic) {
      auto found = co_await run_blocking(ctx.blocking,
                                         [&] { return ctx.meta->get_topic(res.resource_name); });
      if (found && found->has_value()) {
        out = describe_topic_configs(ctx.cfg, **found, res.configuration_keys, in.include_synonyms,
                                     in.include_documentation);
      } else if (found) {
        out.error_code = code(error_code::unknown_topic_or_partition);
        out.error_message = "The topic '" + res.resource_name + "' does not exist.";
      } else {
        spdlog::error("describe configs {}: {}", res.resource_name, found.message());
        out.error_code = code(error_code::unknown_server_error);
        out.error_message = found.message();
      }
    } else if (res.resource_type == resource_broker) {
      out = describe_broker_configs(ctx.cfg, res.resource_name, res.configuration_keys,
                                    in.include_synonyms, in.include_documentation);
    } else {
      out.error_code = code(error_code::invalid_request);
      out.error_message = "Unsupported resource type " + std::to_string(res.resource_type) +
                          " (topics and brokers only).";
    }
    resp.results.push_back(std::move(out));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- AlterConfigs / IncrementalAlterConfigs ----

namespace {

// The new config set of a topic, or why it cannot be applied.
struct config_change {
  outcome result;
  std::map<std::string, std::string> configs;
};

outcome apply_topic_configs(broker_context& ctx, const std::string& topic,
                            const std::map<std::string, std::string>& configs, bool validate_only) {
  if (auto e = validate_topic_configs(configs)) {
    return outcome::fail(error_code::invalid_config, *e);
  }
  if (validate_only) return outcome::ok();
  auto set = ctx.meta->set_topic_configs(topic, configs);
  ctx.topics.invalidate(topic);
  if (set) return outcome::ok();
  if (set.code() == metadata::errc::not_found) {
    return outcome::fail(error_code::unknown_topic_or_partition,
                         "The topic '" + topic + "' does not exist.");
  }
  if (set.code() == metadata::errc::invalid_argument) {
    return outcome::fail(error_code::invalid_config, set.message());
  }
  return store_failure("alter configs of " + topic, set.error());
}

outcome not_a_topic(int8_t type) {
  if (type == resource_broker) {
    return outcome::fail(error_code::invalid_request,
                         "Broker configs are static: set them in the broker's properties file.");
  }
  return outcome::fail(error_code::invalid_request,
                       "Unsupported resource type " + std::to_string(type) + " (topics only).");
}

template <class Configs>
std::optional<std::string> duplicate_name(const Configs& configs) {
  std::set<std::string> names;
  for (const auto& c : configs) {
    if (!names.insert(c.name).second) return "Duplicate config name in request: " + c.name;
  }
  return std::nullopt;
}

}  // namespace

awaitable<handler_response> handle_alter_configs(broker_context& ctx, connection_state& conn,
                                                 const request& req) {
  kafka::alter_configs_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "AlterConfigs body");

  kafka::alter_configs_response resp;
  for (const auto& res : in.resources) {
    outcome result;
    if (res.resource_type != resource_topic) {
      result = not_a_topic(res.resource_type);
    } else if (auto dup = duplicate_name(res.configs)) {
      result = outcome::fail(error_code::invalid_request, *dup);
    } else {
      // The request replaces the whole set; a null value leaves that config at its default.
      std::map<std::string, std::string> configs;
      for (const auto& c : res.configs) {
        if (c.value) configs[c.name] = *c.value;
      }
      result = co_await run_blocking(ctx.blocking, [&] {
        return apply_topic_configs(ctx, res.resource_name, configs, in.validate_only);
      });
      if (result.error == error_code::none && !in.validate_only) {
        spdlog::info("configs of topic {} replaced (client {} at {})", res.resource_name,
                     req.client_id.value_or("-"), conn.peer);
      }
    }
    kafka::alter_configs_response::alter_configs_resource_response out;
    out.error_code = code(result.error);
    out.error_message = result.message;
    out.resource_type = res.resource_type;
    out.resource_name = res.resource_name;
    resp.responses.push_back(std::move(out));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// Applies IncrementalAlterConfigs operations to `current`. Exposed for tests.
admin_outcome apply_incremental(
    std::map<std::string, std::string>& current,
    const std::vector<kafka::incremental_alter_configs_request::alterable_config>& ops,
    const broker_config& cfg) {
  enum : int8_t { op_set = 0, op_delete = 1, op_append = 2, op_subtract = 3 };
  for (const auto& op : ops) {
    const auto* def = find_topic_config(op.name);
    if (!def) {
      return outcome::fail(error_code::invalid_config,
                           "Unknown topic config name: " + op.name.substr(0, 200));
    }
    switch (op.config_operation) {
      case op_set:
        if (!op.value) {
          return outcome::fail(error_code::invalid_config,
                               "Null value not supported for SET of " + op.name);
        }
        current[op.name] = *op.value;
        break;
      case op_delete:
        current.erase(op.name);
        break;
      case op_append:
      case op_subtract: {
        if (def->type != config_type::list) {
          return outcome::fail(error_code::invalid_config,
                               "Config " + op.name +
                                   " is not a list: APPEND and SUBTRACT are "
                                   "only for list configs.");
        }
        auto it = current.find(op.name);
        auto items =
            split_config_list(it != current.end() ? it->second : topic_config_default(*def, cfg));
        for (const auto& v : split_config_list(op.value.value_or(""))) {
          auto pos = std::find(items.begin(), items.end(), v);
          if (op.config_operation == op_append && pos == items.end()) items.push_back(v);
          if (op.config_operation == op_subtract && pos != items.end()) items.erase(pos);
        }
        current[op.name] = join_config_list(items);
        break;
      }
      default:
        return outcome::fail(error_code::invalid_request,
                             "Unknown config operation " + std::to_string(op.config_operation));
    }
  }
  return outcome::ok();
}

awaitable<handler_response> handle_incremental_alter_configs(broker_context& ctx,
                                                             connection_state& conn,
                                                             const request& req) {
  kafka::incremental_alter_configs_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) {
    co_return malformed_request(req, "IncrementalAlterConfigs body");
  }

  kafka::incremental_alter_configs_response resp;
  for (const auto& res : in.resources) {
    outcome result;
    if (res.resource_type != resource_topic) {
      result = not_a_topic(res.resource_type);
    } else if (auto dup = duplicate_name(res.configs)) {
      result = outcome::fail(error_code::invalid_request, *dup);
    } else {
      // Read-modify-write: two brokers altering one topic at once may lose one change, like
      // two AlterConfigs would.
      result = co_await run_blocking(ctx.blocking, [&]() -> outcome {
        auto found = ctx.meta->get_topic(res.resource_name);
        if (!found) return store_failure("get topic " + res.resource_name, found.error());
        if (!found->has_value()) {
          return outcome::fail(error_code::unknown_topic_or_partition,
                               "The topic '" + res.resource_name + "' does not exist.");
        }
        auto configs = (*found)->configs;
        if (auto applied = apply_incremental(configs, res.configs, ctx.cfg);
            applied.error != error_code::none) {
          return applied;
        }
        return apply_topic_configs(ctx, res.resource_name, configs, in.validate_only);
      });
      if (result.error == error_code::none && !in.validate_only) {
        spdlog::info("configs of topic {} altered (client {} at {})", res.resource_name,
                     req.client_id.value_or("-"), conn.peer);
      }
    }
    kafka::incremental_alter_configs_response::alter_configs_resource_response out;
    out.error_code = code(result.error);
    out.error_message = result.message;
    out.resource_type = res.resource_type;
    out.resource_name = res.resource_name;
    resp.responses.push_back(std::move(out));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- DescribeCluster ----

awaitable<handler_response> handle_describe_cluster(broker_context& ctx, connection_state&,
                                                    const request& req) {
  kafka::describe_cluster_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "DescribeCluster body");

  kafka::describe_cluster_response resp;
  resp.cluster_id = ctx.cfg.cluster_id;
  resp.endpoint_type = in.endpoint_type;
  if (in.endpoint_type != 1) {  // 2 = controllers: there are no separate controllers
    resp.error_code = code(error_code::unsupported_endpoint_type);
    resp.error_message = "Only broker endpoints (type 1) are available.";
    co_return handler_response{encode_body(resp, req.api_version)};
  }
  auto brokers = ctx.live_brokers();
  std::sort(brokers.begin(), brokers.end(),
            [](const auto& a, const auto& b) { return a.node_id < b.node_id; });
  // Every broker can do every metadata change (the store serialises them); clients only need
  // some live broker to call "controller", and the lowest id is stable.
  resp.controller_id = brokers.empty() ? -1 : brokers.front().node_id;
  for (const auto& b : brokers) {
    resp.brokers.push_back({b.node_id, b.host, b.port, std::nullopt, {}});
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

std::vector<api_handler> admin_handlers() {
  return {
      {20, 0, 6, &handle_delete_topics},              // v6: by topic id too
      {21, 0, 2, &handle_delete_records},             //
      {32, 0, 4, &handle_describe_configs},           //
      {33, 0, 2, &handle_alter_configs},              //
      {37, 0, 3, &handle_create_partitions},          //
      {44, 0, 1, &handle_incremental_alter_configs},  //
      {60, 0, 1, &handle_describe_cluster},           //
  };
}

}  // namespace sh::broker
