#include <spdlog/spdlog.h>

#include <chrono>

#include "../log_reader.h"
#include "handlers.h"
#include "sh/kafka/legacy_records.h"
#include "sh/kafka/messages/fetch_request.h"
#include "sh/kafka/messages/fetch_response.h"

namespace sh::broker {
namespace {

struct partition_result {
  int32_t partition = 0;
  partition_chunks read;
  std::optional<std::vector<uint8_t>> legacy;  // v0-3: the down-converted message set
};

struct topic_result {
  std::string topic;
  std::vector<partition_result> partitions;
};

// Fetch v4+ body with the records as views into the read cache (see response_gather.h). The
// layout is the generated fetch_response's for v4-v12 with session_id 0, no aborted
// transactions, no tagged fields; fetch_gather_test compares the bytes with it.
std::shared_ptr<response_gather> encode_gathered(const std::vector<topic_result>& topics,
                                                 int16_t version) {
  auto out = std::make_shared<response_gather>();
  const bool flexible = version >= 12;
  kafka::byte_writer w;
  auto array_length = [&](size_t n) {
    if (flexible) {
      w.write_compact_array_length(static_cast<int32_t>(n));
    } else {
      w.write_array_length(static_cast<int32_t>(n));
    }
  };
  w.write_int32(0);  // throttle_time_ms
  if (version >= 7) {
    w.write_int16(0);  // error_code
    w.write_int32(0);  // session_id: sessionless
  }
  array_length(topics.size());
  for (const auto& t : topics) {
    if (flexible) {
      w.write_compact_string(t.topic);
    } else {
      w.write_string(t.topic);
    }
    array_length(t.partitions.size());
    for (const auto& p : t.partitions) {
      w.write_int32(p.partition);
      w.write_int16(static_cast<int16_t>(p.read.error));
      w.write_int64(p.read.high_watermark);
      w.write_int64(p.read.high_watermark);  // last_stable_offset: no transactions
      if (version >= 5) w.write_int64(p.read.log_start_offset);
      array_length(0);                       // aborted_transactions
      if (version >= 11) w.write_int32(-1);  // preferred_read_replica
      if (flexible) {
        w.write_unsigned_varint(static_cast<uint32_t>(p.read.bytes + 1));
      } else {
        w.write_int32(static_cast<int32_t>(p.read.bytes));
      }
      if (p.read.bytes > 0) {
        out->append_owned(w.take());
        w = kafka::byte_writer();
        for (const auto& c : p.read.chunks) {
          if (c.patch) {
            uint8_t head[8];
            patch_base_offset(head, c.base_offset);
            out->append_owned(head, sizeof head);
            out->append_view(c.owner, c.data + 8, c.size - 8);
          } else {
            out->append_view(c.owner, c.data, c.size);
          }
        }
      }
      if (flexible) w.write_unsigned_varint(0);  // partition tagged fields
    }
    if (flexible) w.write_unsigned_varint(0);  // topic tagged fields
  }
  if (flexible) w.write_unsigned_varint(0);
  out->append_owned(w.take());
  return out;
}

std::vector<uint8_t> encode_copied(const std::vector<topic_result>& topics, int16_t version) {
  kafka::fetch_response resp;
  resp.session_id = 0;
  for (const auto& t : topics) {
    kafka::fetch_response::fetchable_topic_response tr;
    tr.topic = t.topic;
    for (const auto& p : t.partitions) {
      kafka::fetch_response::partition_data pd;
      pd.partition_index = p.partition;
      pd.error_code = static_cast<int16_t>(p.read.error);
      pd.high_watermark = p.read.high_watermark;
      pd.last_stable_offset = p.read.high_watermark;
      pd.log_start_offset = p.read.log_start_offset;
      pd.aborted_transactions.emplace();
      pd.preferred_read_replica = -1;
      if (p.legacy) {
        pd.records = *p.legacy;
      } else {
        std::vector<uint8_t> records;
        records.reserve(p.read.bytes);
        append_chunks(p.read.chunks, records);
        pd.records = std::move(records);
      }
      tr.partitions.push_back(std::move(pd));
    }
    resp.responses.push_back(std::move(tr));
  }
  return encode_body(resp, version);
}

}  // namespace

// Exposed for the byte-identity test (fetch_gather_test): the gathered body and the generated
// encoder's body of the same partitions.
std::vector<uint8_t> fetch_body_gathered_for_test(const std::string& topic, int32_t partition,
                                                  partition_chunks read, int16_t version) {
  std::vector<topic_result> topics(1);
  topics[0].topic = topic;
  topics[0].partitions.push_back(partition_result{partition, std::move(read), std::nullopt});
  return encode_gathered(topics, version)->flatten();
}
std::vector<uint8_t> fetch_body_generated_for_test(const std::string& topic, int32_t partition,
                                                   partition_chunks read, int16_t version) {
  std::vector<topic_result> topics(1);
  topics[0].topic = topic;
  topics[0].partitions.push_back(partition_result{partition, std::move(read), std::nullopt});
  return encode_copied(topics, version);
}

awaitable<handler_response> handle_fetch(broker_context& ctx, connection_state&,
                                         const request& req) {
  kafka::fetch_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "Fetch body");

  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(0, in.max_wait_ms));
  const int64_t max_bytes = req.api_version >= 3 && in.max_bytes > 0 ? in.max_bytes : INT32_MAX;
  auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);

  for (;;) {
    const uint64_t generation = ctx.commits.generation();
    int64_t total = 0;
    bool any_error = false;
    // All partitions in one trip to the blocking pool (each read is memory-only when cached).
    auto topics = co_await run_blocking(ctx.blocking, [&] {
      std::vector<topic_result> out;
      out.reserve(in.topics.size());
      for (const auto& t : in.topics) {
        topic_result tr;
        tr.topic = t.topic;
        tr.partitions.reserve(t.partitions.size());
        for (const auto& p : t.partitions) {
          const int64_t part_max =
              std::min<int64_t>(p.partition_max_bytes, std::max<int64_t>(0, max_bytes - total));
          partition_result pr;
          pr.partition = p.partition;
          pr.read = read_partition_chunks(ctx, t.topic, p.partition, p.fetch_offset, part_max,
                                          total == 0);
          if (req.api_version < 4 && pr.read.bytes > 0) {
            // Pre-0.11 consumers read legacy message sets: magic 0 (v0-v1) or 1 (v2-v3).
            std::vector<uint8_t> flat;
            flat.reserve(pr.read.bytes);
            append_chunks(pr.read.chunks, flat);
            auto legacy =
                kafka::convert_v2_to_legacy(flat, req.api_version >= 2 ? 1 : 0, p.fetch_offset);
            if (!legacy) {
              spdlog::error("fetch {}-{}: down-conversion failed: {}", t.topic, p.partition,
                            legacy.message());
              pr.read.error = kafka::error_code::corrupt_message;
              pr.legacy.emplace();
            } else {
              pr.legacy = std::move(*legacy);
            }
          }
          total += static_cast<int64_t>(pr.legacy ? pr.legacy->size() : pr.read.bytes);
          any_error |= pr.read.error != kafka::error_code::none;
          tr.partitions.push_back(std::move(pr));
        }
        out.push_back(std::move(tr));
      }
      return out;
    });
    // Answer at once on errors, when min.bytes is met, or when the client asked not to wait.
    const bool enough = any_error || (in.min_bytes <= 0 ? true : total >= in.min_bytes);
    if (enough || std::chrono::steady_clock::now() >= deadline) {
      if (req.api_version >= 4) {
        handler_response resp;
        resp.gather = encode_gathered(topics, req.api_version);
        co_return resp;
      }
      co_return handler_response{encode_copied(topics, req.api_version)};
    }
    if (ctx.commits.generation() != generation) continue;
    // Long-poll: wake on any commit (notify cancels the timer) or at the deadline.
    timer->expires_at(deadline);
    ctx.commits.add(timer);
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace sh::broker
