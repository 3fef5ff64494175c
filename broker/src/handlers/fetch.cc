#include <spdlog/spdlog.h>

#include <chrono>

#include "../log_reader.h"
#include "handlers.h"
#include "sh/kafka/legacy_records.h"
#include "sh/kafka/messages/fetch_request.h"
#include "sh/kafka/messages/fetch_response.h"

namespace sh::broker {

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
    kafka::fetch_response resp;
    resp.session_id = 0;  // sessionless: every request is a full fetch
    int64_t total = 0;
    bool any_error = false;
    for (const auto& t : in.topics) {
      kafka::fetch_response::fetchable_topic_response tr;
      tr.topic = t.topic;
      for (const auto& p : t.partitions) {
        const int64_t part_max =
            std::min<int64_t>(p.partition_max_bytes, std::max<int64_t>(0, max_bytes - total));
        const bool at_least_one = total == 0;
        auto read = co_await run_blocking(ctx.blocking, [&] {
          return read_partition(ctx, t.topic, p.partition, p.fetch_offset, part_max, at_least_one);
        });
        if (req.api_version < 4 && !read.records.empty()) {
          // Pre-0.11 consumers read legacy message sets: magic 0 (v0-v1) or 1 (v2-v3).
          auto legacy = kafka::convert_v2_to_legacy(read.records, req.api_version >= 2 ? 1 : 0,
                                                    p.fetch_offset);
          if (!legacy) {
            spdlog::error("fetch {}-{}: down-conversion failed: {}", t.topic, p.partition,
                          legacy.message());
            read.error = kafka::error_code::corrupt_message;
            read.records.clear();
          } else {
            read.records = std::move(*legacy);
          }
        }
        kafka::fetch_response::partition_data pd;
        pd.partition_index = p.partition;
        pd.error_code = static_cast<int16_t>(read.error);
        pd.high_watermark = read.high_watermark;
        pd.last_stable_offset = read.high_watermark;
        pd.log_start_offset = read.log_start_offset;
        pd.aborted_transactions.emplace();
        pd.preferred_read_replica = -1;
        total += static_cast<int64_t>(read.records.size());
        any_error |= read.error != kafka::error_code::none;
        pd.records = std::move(read.records);
        tr.partitions.push_back(std::move(pd));
      }
      resp.responses.push_back(std::move(tr));
    }
    // Answer at once on errors, when min.bytes is met, or when the client asked not to wait.
    const bool enough = any_error || (in.min_bytes <= 0 ? true : total >= in.min_bytes);
    if (enough || std::chrono::steady_clock::now() >= deadline) {
      co_return handler_response{encode_body(resp, req.api_version)};
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
