#include "handlers.h"
#include "sh/kafka/messages/metadata_request.h"
#include "sh/kafka/messages/metadata_response.h"

namespace sh::broker {
namespace {

constexpr int32_t authorized_operations_unknown = INT32_MIN;

kafka::metadata_response::metadata_response_topic describe_topic(
    const std::vector<broker_endpoint>& live, const std::string& name, kafka::error_code err,
    const std::optional<metadata::topic_info>& info) {
  kafka::metadata_response::metadata_response_topic t;
  t.name = name;
  t.error_code = static_cast<int16_t>(err);
  t.topic_authorized_operations = authorized_operations_unknown;
  if (!info) return t;
  std::copy(info->id.begin(), info->id.end(), t.topic_id.begin());
  for (int32_t p = 0; p < info->partition_count; ++p) {
    kafka::metadata_response::metadata_response_partition part;
    part.partition_index = p;
    // Leaderless: any broker serves any partition. The "leader" is the partition's preferred
    // broker, so its reads concentrate in one broker's cache.
    part.leader_id = preferred_broker(live, name, p);
    part.leader_epoch = 0;
    part.replica_nodes = {part.leader_id};
    part.isr_nodes = {part.leader_id};
    t.partitions.push_back(std::move(part));
  }
  return t;
}

}  // namespace

awaitable<handler_response> handle_metadata(broker_context& ctx, connection_state&,
                                            const request& req) {
  kafka::metadata_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "Metadata body");

  kafka::metadata_response resp;
  const auto live = ctx.live_brokers();
  for (const auto& lb : live) {
    kafka::metadata_response::metadata_response_broker b;
    b.node_id = lb.node_id;
    b.host = lb.host;
    b.port = lb.port;
    resp.brokers.push_back(std::move(b));
  }
  resp.cluster_id = ctx.cfg.cluster_id;
  resp.controller_id = live.front().node_id;  // lowest live node id: valid and stable
  resp.cluster_authorized_operations = authorized_operations_unknown;

  // v0: an empty list means all topics; v1+: null means all topics.
  const bool all_topics = !in.topics.has_value() || (req.api_version == 0 && in.topics->empty());
  if (all_topics) {
    auto listed = co_await run_blocking(ctx.blocking, [&] { return ctx.meta->list_topics(); });
    if (listed) {
      for (const auto& info : *listed) {
        resp.topics.push_back(describe_topic(live, info.name, kafka::error_code::none, info));
      }
    }
  } else {
    const bool allow_create = req.api_version < 4 || in.allow_auto_topic_creation;
    for (const auto& t : *in.topics) {
      if (!t.name) {
        resp.topics.push_back(
            describe_topic(live, "", kafka::error_code::unknown_topic_id, std::nullopt));
        continue;
      }
      auto [err, info] = co_await resolve_topic(ctx, *t.name, allow_create);
      resp.topics.push_back(describe_topic(live, *t.name, err, info));
    }
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

}  // namespace sh::broker
