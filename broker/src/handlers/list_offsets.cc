#include <spdlog/spdlog.h>

#include "../log_reader.h"
#include "handlers.h"
#include "sh/kafka/messages/list_offsets_request.h"
#include "sh/kafka/messages/list_offsets_response.h"
#include "sh/kafka/record_batch.h"

namespace sh::broker {
namespace {

constexpr int64_t latest_timestamp = -1;
constexpr int64_t earliest_timestamp = -2;
constexpr int64_t max_timestamp = -3;  // v7+: the record with the largest timestamp

struct offset_answer {
  kafka::error_code error = kafka::error_code::none;
  int64_t offset = -1;
  int64_t timestamp = -1;
};

// The first record at or after `from` whose timestamp is >= target in one batch, or nullopt.
// LogAppendTime batches stamp every record with the batch's max timestamp. Compressed batches
// (until the record iterator decompresses) answer at batch precision: base offset, max timestamp.
std::optional<offset_answer> first_record_at_or_after(std::span<const uint8_t> batch_bytes,
                                                      int64_t base, int64_t from, int64_t target) {
  auto header = kafka::parse_batch_header(batch_bytes);
  if (!header || header->max_timestamp < target) return std::nullopt;
  if (header->attributes & 0x08) {  // LogAppendTime
    return offset_answer{kafka::error_code::none, std::max(base, from), header->max_timestamp};
  }
  kafka::batch_view view{*header, batch_bytes};
  std::optional<offset_answer> found;
  auto walked = kafka::for_each_record(view, [&](const kafka::record_view& rec) {
    const int64_t offset = base + rec.offset_delta;
    const int64_t ts = header->base_timestamp + rec.timestamp_delta;
    if (offset >= from && ts >= target) {
      found = offset_answer{kafka::error_code::none, offset, ts};
      return false;
    }
    return true;
  });
  if (!walked) return offset_answer{kafka::error_code::none, base, header->max_timestamp};
  return found;
}

// Kafka semantics: the first offset (in offset order) whose timestamp is >= target. Index
// entries and batches are skipped by their max timestamp; records are checked one by one.
offset_answer find_by_timestamp(broker_context& ctx, const std::string& topic, int32_t partition,
                                const metadata::partition_state& state, int64_t target) {
  offset_answer out;
  // The index seeks to the first entry whose max timestamp reaches the target; the answer is
  // normally inside it (the loop goes on only past records below the log start).
  auto first = ctx.meta->find_by_timestamp(topic, partition, target);
  if (!first) {
    out.error = kafka::error_code::kafka_storage_error;
    return out;
  }
  if (!first->has_value()) return out;
  int64_t offset = std::max(state.log_start_offset, (*first)->base_offset);
  while (offset < state.high_watermark) {
    auto entries = ctx.index->read_index(topic, partition, offset, 256);
    if (!entries) {
      out.error = kafka::error_code::kafka_storage_error;
      return out;
    }
    if (entries->empty()) break;
    for (const auto& e : *entries) {
      if (e.max_timestamp >= target) {
        auto bytes = ctx.cache->get_range(e.object_key, e.byte_offset, e.byte_length);
        if (!bytes || (*bytes)->size() != e.byte_length) {
          out.error = kafka::error_code::kafka_storage_error;
          return out;
        }
        std::optional<offset_answer> found;
        for_each_batch_in_range(**bytes, e.base_offset,
                                [&](std::span<const uint8_t> batch, int64_t base, int64_t last) {
                                  if (last < offset) return true;
                                  found = first_record_at_or_after(batch, base, offset, target);
                                  return !found.has_value();
                                });
        if (found) return *found;
      }
      offset = e.last_offset + 1;
    }
  }
  return out;  // none: offset -1, timestamp -1
}

offset_answer list_offset(broker_context& ctx, const std::string& topic, int32_t partition,
                          int64_t timestamp) {
  offset_answer out;
  // Read from the store (refreshing the index cache): clients ask right after operations that
  // are not notified (DeleteRecords, a topic re-created), and ListOffsets is rare.
  auto state = ctx.index->refresh_partition(topic, partition);
  if (!state) {
    out.error = partition_lookup_error(state.code());
    return out;
  }
  if (timestamp == latest_timestamp) {
    out.offset = state->high_watermark;
  } else if (timestamp == earliest_timestamp) {
    out.offset = state->log_start_offset;
  } else if (timestamp >= 0) {
    out = find_by_timestamp(ctx, topic, partition, *state, timestamp);
  } else if (timestamp == max_timestamp) {
    if (state->max_timestamp >= 0) {
      out = find_by_timestamp(ctx, topic, partition, *state, state->max_timestamp);
    }
  } else {
    out.error = kafka::error_code::invalid_request;
  }
  return out;
}

}  // namespace

awaitable<handler_response> handle_list_offsets(broker_context& ctx, connection_state&,
                                                const request& req) {
  kafka::list_offsets_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "ListOffsets body");

  kafka::list_offsets_response resp;
  for (const auto& t : in.topics) {
    kafka::list_offsets_response::list_offsets_topic_response tr;
    tr.name = t.name;
    for (const auto& p : t.partitions) {
      auto answer = co_await run_blocking(
          ctx.blocking, [&] { return list_offset(ctx, t.name, p.partition_index, p.timestamp); });
      kafka::list_offsets_response::list_offsets_partition_response pr;
      pr.partition_index = p.partition_index;
      pr.error_code = static_cast<int16_t>(answer.error);
      pr.timestamp = answer.timestamp;
      pr.offset = answer.offset;
      pr.leader_epoch = 0;
      if (req.api_version == 0 && answer.error == kafka::error_code::none) {
        pr.old_style_offsets = {answer.offset};
      }
      tr.partitions.push_back(std::move(pr));
    }
    resp.topics.push_back(std::move(tr));
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

}  // namespace sh::broker
