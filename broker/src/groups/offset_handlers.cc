// Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete. Offsets live in the metadata store
// and are written under the group's coordinator lease as a fence.
#include <spdlog/spdlog.h>

#include <map>

#include "group_request_util.h"
#include "sh/kafka/messages/offset_commit_request.h"
#include "sh/kafka/messages/offset_commit_response.h"
#include "sh/kafka/messages/offset_delete_request.h"
#include "sh/kafka/messages/offset_delete_response.h"
#include "sh/kafka/messages/offset_fetch_request.h"
#include "sh/kafka/messages/offset_fetch_response.h"

namespace sh::broker {
namespace {

using kafka::error_code;

int16_t code(error_code e) { return static_cast<int16_t>(e); }

// The outcome of a store call on a group: a Kafka error, and whether the lease was lost.
error_code store_error(broker_context& ctx, const std::string& group_id,
                       const metadata::lease_fence& fence, metadata::errc e,
                       const std::string& message, const char* what) {
  switch (e) {
    case metadata::errc::fenced:
      ctx.groups->lost(group_id, fence.epoch);
      return error_code::not_coordinator;
    case metadata::errc::invalid_argument:
      return error_code::invalid_group_id;
    default:
      spdlog::warn("{} for group {}: {}", what, group_id, message);
      return error_code::coordinator_not_available;
  }
}

using stored_offsets = std::map<std::pair<std::string, int32_t>, metadata::group_offset>;

// A committed offset below 0 is how OffsetDelete removes one (see handle_offset_delete): such
// entries read as "no offset".
stored_offsets index_offsets(std::vector<metadata::group_offset> offsets) {
  stored_offsets out;
  for (auto& o : offsets) {
    if (o.offset < 0) continue;
    auto key = std::make_pair(o.topic, o.partition);
    out.emplace(std::move(key), std::move(o));
  }
  return out;
}

// One group's answer to OffsetFetch, independent of the response version.
struct fetched_partition {
  int32_t partition = 0;
  int64_t offset = -1;
  int32_t leader_epoch = -1;
  std::string metadata;
};
struct fetched_topic {
  std::string name;
  std::vector<fetched_partition> partitions;
};
struct fetched_group {
  error_code error = error_code::none;
  std::vector<fetched_topic> topics;
};

// `topics` nullopt: every partition with a committed offset.
awaitable<fetched_group> fetch_one_group(
    broker_context& ctx, const std::string& group_id,
    const std::optional<std::vector<std::pair<std::string, std::vector<int32_t>>>>& topics) {
  fetched_group out;
  if (group_id.empty()) {
    out.error = error_code::invalid_group_id;
    co_return out;
  }
  auto lookup = co_await ensure_coordinator(ctx, group_id);
  out.error = coordinator_error(lookup);
  if (out.error != error_code::none) co_return out;
  auto loaded = co_await run_blocking(
      ctx.blocking, [&ctx, &group_id] { return ctx.meta->fetch_group_offsets(group_id); });
  if (!loaded) {
    out.error =
        store_error(ctx, group_id, *lookup.fence, loaded.code(), loaded.message(), "OffsetFetch");
    co_return out;
  }
  auto stored = index_offsets(std::move(*loaded));
  auto answer = [](const metadata::group_offset* o, int32_t partition) {
    fetched_partition p;
    p.partition = partition;
    if (o) {
      p.offset = o->offset;
      p.leader_epoch = o->leader_epoch;
      p.metadata = o->metadata;
    }
    return p;
  };
  if (!topics) {
    for (const auto& [key, o] : stored) {
      if (out.topics.empty() || out.topics.back().name != key.first) {
        out.topics.push_back(fetched_topic{key.first, {}});
      }
      out.topics.back().partitions.push_back(answer(&o, key.second));
    }
    co_return out;
  }
  for (const auto& [name, partitions] : *topics) {
    fetched_topic t{name, {}};
    for (int32_t p : partitions) {
      auto it = stored.find(std::make_pair(name, p));
      t.partitions.push_back(answer(it == stored.end() ? nullptr : &it->second, p));
    }
    out.topics.push_back(std::move(t));
  }
  co_return out;
}

}  // namespace

// ---- OffsetCommit ----

awaitable<handler_response> handle_offset_commit(broker_context& ctx, connection_state&,
                                                 const request& req) {
  kafka::offset_commit_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "OffsetCommit body");

  kafka::offset_commit_response resp;
  for (const auto& t : in.topics) {
    kafka::offset_commit_response::offset_commit_response_topic rt;
    rt.name = t.name;
    for (const auto& p : t.partitions) {
      kafka::offset_commit_response::offset_commit_response_partition rp;
      rp.partition_index = p.partition_index;
      rt.partitions.push_back(rp);
    }
    resp.topics.push_back(std::move(rt));
  }
  auto fail_all = [&resp](error_code e) {
    for (auto& t : resp.topics) {
      for (auto& p : t.partitions) p.error_code = code(e);
    }
  };

  error_code err = error_code::none;
  coordinator_lookup lookup;
  if (in.group_id.empty()) {
    err = error_code::invalid_group_id;
  } else {
    lookup = co_await ensure_coordinator(ctx, in.group_id);
    err = coordinator_error(lookup);
  }
  if (err == error_code::none) {
    // v0 has neither generation nor member id: the defaults (-1, "") make it a simple commit.
    err = ctx.groups->validate_commit(in.group_id, in.member_id, in.group_instance_id,
                                      in.generation_id_or_member_epoch);
  }
  if (err != error_code::none) {
    fail_all(err);
    co_return handler_response{encode_body(resp, req.api_version)};
  }

  std::vector<metadata::group_offset> offsets;
  std::vector<std::pair<size_t, size_t>> slots;  // (topic, partition) index per stored entry
  for (size_t ti = 0; ti < in.topics.size(); ++ti) {
    const auto& t = in.topics[ti];
    for (size_t pi = 0; pi < t.partitions.size(); ++pi) {
      const auto& p = t.partitions[pi];
      const std::string md = p.committed_metadata.value_or("");
      if (md.size() > max_offset_metadata_bytes) {
        resp.topics[ti].partitions[pi].error_code = code(error_code::offset_metadata_too_large);
        continue;
      }
      metadata::group_offset o;
      o.topic = t.name;
      o.partition = p.partition_index;
      o.offset = p.committed_offset;
      o.leader_epoch = req.api_version >= 6 ? p.committed_leader_epoch : -1;
      o.metadata = md;
      // v1 carries a commit time; -1 (and every later version) means "now".
      o.commit_timestamp_ms =
          req.api_version == 1 && p.commit_timestamp > 0 ? p.commit_timestamp : 0;
      offsets.push_back(std::move(o));
      slots.emplace_back(ti, pi);
    }
  }
  if (!offsets.empty()) {
    const auto fence = *lookup.fence;
    auto committed = co_await run_blocking(ctx.blocking, [&ctx, &in, &offsets, &fence] {
      return ctx.meta->commit_group_offsets(in.group_id, offsets, fence);
    });
    if (!committed) {
      const error_code e = store_error(ctx, in.group_id, fence, committed.code(),
                                       committed.message(), "OffsetCommit");
      for (const auto& [ti, pi] : slots) resp.topics[ti].partitions[pi].error_code = code(e);
    } else {
      for (size_t i = 0; i < slots.size() && i < committed->size(); ++i) {
        const auto [ti, pi] = slots[i];
        const metadata::errc c = (*committed)[i];
        const error_code e = c == metadata::errc::ok ? error_code::none
                             : c == metadata::errc::not_found
                                 ? error_code::unknown_topic_or_partition
                                 : error_code::unknown_server_error;
        resp.topics[ti].partitions[pi].error_code = code(e);
      }
    }
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- OffsetFetch ----

awaitable<handler_response> handle_offset_fetch(broker_context& ctx, connection_state&,
                                                const request& req) {
  kafka::offset_fetch_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "OffsetFetch body");
  using topic_list = std::vector<std::pair<std::string, std::vector<int32_t>>>;
  kafka::offset_fetch_response resp;

  if (req.api_version >= 8) {
    for (const auto& g : in.groups) {
      std::optional<topic_list> topics;
      if (g.topics) {
        topics.emplace();
        for (const auto& t : *g.topics) topics->emplace_back(t.name, t.partition_indexes);
      }
      auto fetched = co_await fetch_one_group(ctx, g.group_id, topics);
      kafka::offset_fetch_response::offset_fetch_response_group rg;
      rg.group_id = g.group_id;
      rg.error_code = code(fetched.error);
      for (auto& t : fetched.topics) {
        kafka::offset_fetch_response::offset_fetch_response_topics rt;
        rt.name = std::move(t.name);
        for (auto& p : t.partitions) {
          kafka::offset_fetch_response::offset_fetch_response_partitions rp;
          rp.partition_index = p.partition;
          rp.committed_offset = p.offset;
          rp.committed_leader_epoch = p.leader_epoch;
          rp.metadata = std::move(p.metadata);
          rt.partitions.push_back(std::move(rp));
        }
        rg.topics.push_back(std::move(rt));
      }
      resp.groups.push_back(std::move(rg));
    }
    co_return handler_response{encode_body(resp, req.api_version)};
  }

  std::optional<topic_list> topics;
  if (in.topics) {
    topics.emplace();
    for (const auto& t : *in.topics) topics->emplace_back(t.name, t.partition_indexes);
  }
  auto fetched = co_await fetch_one_group(ctx, in.group_id, topics);
  if (fetched.error != error_code::none) {
    if (req.api_version >= 2) {
      resp.error_code = code(fetched.error);
      co_return handler_response{encode_body(resp, req.api_version)};
    }
    // v0/v1 have no group-level error: every requested partition carries it.
    fetched.topics.clear();
    for (const auto& [name, partitions] : topics.value_or(topic_list{})) {
      fetched_topic t{name, {}};
      for (int32_t p : partitions) t.partitions.push_back(fetched_partition{p, -1, -1, ""});
      fetched.topics.push_back(std::move(t));
    }
  }
  for (auto& t : fetched.topics) {
    kafka::offset_fetch_response::offset_fetch_response_topic rt;
    rt.name = std::move(t.name);
    for (auto& p : t.partitions) {
      kafka::offset_fetch_response::offset_fetch_response_partition rp;
      rp.partition_index = p.partition;
      rp.committed_offset = p.offset;
      rp.committed_leader_epoch = p.leader_epoch;
      rp.metadata = std::move(p.metadata);
      if (req.api_version < 2) rp.error_code = code(fetched.error);
      rt.partitions.push_back(std::move(rp));
    }
    resp.topics.push_back(std::move(rt));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

// ---- OffsetDelete ----

awaitable<handler_response> handle_offset_delete(broker_context& ctx, connection_state&,
                                                 const request& req) {
  kafka::offset_delete_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "OffsetDelete body");
  kafka::offset_delete_response resp;
  auto top_level = [&](error_code e) {
    resp.error_code = code(e);
    return handler_response{encode_body(resp, req.api_version)};
  };

  if (in.group_id.empty()) co_return top_level(error_code::invalid_group_id);
  auto lookup = co_await ensure_coordinator(ctx, in.group_id);
  if (auto e = coordinator_error(lookup); e != error_code::none) co_return top_level(e);
  const auto fence = *lookup.fence;

  std::vector<std::string> names;
  for (const auto& t : in.topics) names.push_back(t.name);
  std::vector<bool> subscribed;
  bool known = false;
  if (auto e = ctx.groups->subscriptions(in.group_id, names, subscribed, known);
      e != error_code::none) {
    co_return top_level(e);
  }
  auto loaded = co_await run_blocking(
      ctx.blocking, [&ctx, &in] { return ctx.meta->fetch_group_offsets(in.group_id); });
  if (!loaded) {
    co_return top_level(
        store_error(ctx, in.group_id, fence, loaded.code(), loaded.message(), "OffsetDelete"));
  }
  const auto stored = index_offsets(std::move(*loaded));
  if (!known && stored.empty()) co_return top_level(error_code::group_id_not_found);

  // The store has no per-partition delete: a committed offset of -1 reads as "no offset" (what
  // OffsetFetch answers for a partition without a commit), written under the fence like a commit.
  std::vector<metadata::group_offset> tombstones;
  std::vector<std::pair<size_t, size_t>> slots;
  for (size_t ti = 0; ti < in.topics.size(); ++ti) {
    const auto& t = in.topics[ti];
    kafka::offset_delete_response::offset_delete_response_topic rt;
    rt.name = t.name;
    std::optional<metadata::topic_info> info;
    bool looked_up = false;
    for (const auto& p : t.partitions) {
      kafka::offset_delete_response::offset_delete_response_partition rp;
      rp.partition_index = p.partition_index;
      if (subscribed[ti]) {
        rp.error_code = code(error_code::group_subscribed_to_topic);
      } else if (stored.contains(std::make_pair(t.name, p.partition_index))) {
        metadata::group_offset o;
        o.topic = t.name;
        o.partition = p.partition_index;
        o.offset = -1;
        tombstones.push_back(std::move(o));
        slots.emplace_back(ti, rt.partitions.size());
      } else {
        // Nothing to delete; unknown topics and partitions are still reported as such.
        if (!looked_up) {
          auto [terr, found] = co_await resolve_topic(ctx, t.name, false);
          (void)terr;
          info = std::move(found);
          looked_up = true;
        }
        if (!info || p.partition_index < 0 || p.partition_index >= info->partition_count) {
          rp.error_code = code(error_code::unknown_topic_or_partition);
        }
      }
      rt.partitions.push_back(rp);
    }
    resp.topics.push_back(std::move(rt));
  }
  if (!tombstones.empty()) {
    auto committed = co_await run_blocking(ctx.blocking, [&ctx, &in, &tombstones, &fence] {
      return ctx.meta->commit_group_offsets(in.group_id, tombstones, fence);
    });
    if (!committed) {
      co_return top_level(store_error(ctx, in.group_id, fence, committed.code(),
                                      committed.message(), "OffsetDelete"));
    }
    for (size_t i = 0; i < slots.size() && i < committed->size(); ++i) {
      if ((*committed)[i] == metadata::errc::not_found) {
        const auto [ti, pi] = slots[i];
        resp.topics[ti].partitions[pi].error_code = code(error_code::unknown_topic_or_partition);
      }
    }
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

}  // namespace sh::broker
