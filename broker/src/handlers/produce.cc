#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>

#include "handlers.h"
#include "produce_view.h"
#include "sh/kafka/legacy_records.h"
#include "sh/kafka/messages/produce_response.h"
#include "sh/kafka/record_batch.h"

namespace sh::broker {
namespace {

using kafka::byte_reader;
using kafka::decode_errc;

// Flexible versions end every struct with tagged fields; none matter to the broker.
bool skip_tagged_fields(byte_reader& r) {
  const uint32_t n = r.read_unsigned_varint();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    (void)r.read_unsigned_varint();  // tag
    const uint32_t size = r.read_unsigned_varint();
    (void)r.read_raw(size);
  }
  return r.ok();
}

// An array count; a null array is invalid here, as in the generated decoder.
bool read_count(byte_reader& r, bool flexible, int32_t& n) {
  n = flexible ? r.read_compact_array_length() : r.read_array_length();
  if (!r.ok()) return false;
  if (n < 0) {
    r.fail(decode_errc::invalid_value);
    return false;
  }
  return true;
}

}  // namespace

bool decode_produce_request_view(byte_reader& r, int16_t version, produce_request_view& out) {
  out = produce_request_view{};
  if (version < 0 || version > 11) {
    r.fail(decode_errc::unsupported_version);
    return false;
  }
  const bool flexible = version >= 9;
  if (version >= 3) {
    out.transactional_id = flexible ? r.read_compact_nullable_string() : r.read_nullable_string();
  }
  out.acks = r.read_int16();
  out.timeout_ms = r.read_int32();
  int32_t topics = 0;
  if (!read_count(r, flexible, topics)) return false;
  // A count is bounded only by the bytes left (one byte each), so reserve a little and grow.
  out.topics.reserve(static_cast<size_t>(std::min(topics, 64)));
  for (int32_t t = 0; t < topics; ++t) {
    auto& topic = out.topics.emplace_back();
    topic.name = flexible ? r.read_compact_string() : r.read_string();
    int32_t partitions = 0;
    if (!read_count(r, flexible, partitions)) return false;
    topic.partitions.reserve(static_cast<size_t>(std::min(partitions, 64)));
    for (int32_t p = 0; p < partitions; ++p) {
      auto& part = topic.partitions.emplace_back();
      part.index = r.read_int32();
      part.records = flexible ? r.read_compact_nullable_bytes_view() : r.read_nullable_bytes_view();
      if (flexible && !skip_tagged_fields(r)) return false;
      if (!r.ok()) return false;
    }
    if (flexible && !skip_tagged_fields(r)) return false;
    if (!r.ok()) return false;
  }
  if (flexible && !skip_tagged_fields(r)) return false;
  return r.ok();
}

namespace {

using kafka::error_code;

// Waits until every earlier produce request of this connection has appended, then releases the
// next one when destroyed, so appends keep request order even if a topic lookup suspends.
class produce_turn {
 public:
  produce_turn(connection_state& conn, uint64_t ticket) : _conn(conn), _ticket(ticket) {}
  ~produce_turn() { release(); }
  // Lets the connection's next produce request append. Idempotent.
  void release() {
    if (!_released && _conn.produce_turn == _ticket) {
      _released = true;
      ++_conn.produce_turn;
      _conn.produce_turn_changed->cancel();
    }
  }
  // The timer never expires (deadline at max); cancel() wakes every waiter to re-check.
  awaitable<void> wait() {
    while (_conn.produce_turn != _ticket) {
      boost::system::error_code ec;
      co_await _conn.produce_turn_changed->async_wait(
          asio::redirect_error(asio::use_awaitable, ec));
    }
  }

 private:
  connection_state& _conn;
  uint64_t _ticket;
  bool _released = false;
};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string topic_config(const metadata::topic_info& info, const std::string& key) {
  auto it = info.configs.find(key);
  return it == info.configs.end() ? std::string() : it->second;
}

// message.timestamp.type=LogAppendTime: the broker stamps the batch (timestamp type bit and max
// timestamp, as Kafka does) and re-computes its CRC; the stored bytes are the stamped copy.
std::vector<uint8_t> stamp_log_append_time(std::span<const uint8_t> batch, int64_t now) {
  std::vector<uint8_t> out(batch.begin(), batch.end());
  auto header = kafka::parse_batch_header(out);
  header->attributes = static_cast<int16_t>(header->attributes | 0x08);
  header->max_timestamp = now;
  kafka::write_batch_header(*header, out);
  kafka::update_batch_crc(out);
  return out;
}

struct partition_slot {
  size_t topic_index;
  size_t partition_index;
  size_t first_batch = 0;  // index into the request's append list
  size_t batch_count = 0;
};

}  // namespace

awaitable<handler_response> handle_produce(broker_context& ctx, connection_state& conn,
                                           const request& req) {
  // Every produce request of a connection waits for its turn first (even a malformed one, so
  // the tickets after it are released in order). Topic lookups are usually cache hits.
  produce_turn turn(conn, req.produce_ticket);
  co_await turn.wait();
  // Records stay views into req.frame, which lives until this handler returns.
  produce_request_view in;
  kafka::byte_reader r(req.body());
  if (!decode_produce_request_view(r, req.api_version, in)) {
    co_return malformed_request(req, "Produce body");
  }

  kafka::produce_response resp;
  const int64_t append_time = now_ms();
  std::deque<std::vector<uint8_t>> rewritten;  // stamped copies; appends point into them
  std::vector<append_batch> appends;
  std::vector<partition_slot> slots;
  for (size_t ti = 0; ti < in.topics.size(); ++ti) {
    const auto& topic = in.topics[ti];
    kafka::produce_response::topic_produce_response tr;
    tr.name = topic.name;
    auto [terr, info] = co_await resolve_topic(ctx, topic.name, true);
    for (size_t pi = 0; pi < topic.partitions.size(); ++pi) {
      const auto& part = topic.partitions[pi];
      kafka::produce_response::partition_produce_response pr;
      pr.index = part.index;
      pr.base_offset = -1;
      pr.log_append_time_ms = -1;
      pr.log_start_offset = -1;
      error_code err = terr;
      if (err == error_code::none && (part.index < 0 || part.index >= info->partition_count)) {
        err = error_code::unknown_topic_or_partition;
      }
      std::vector<kafka::batch_view> batches;
      if (err == error_code::none) {
        if (!part.records || part.records->empty()) {
          err = error_code::corrupt_message;
        } else {
          std::span<const uint8_t> records = *part.records;
          // Legacy magic 0/1 message sets (Produce v0-v2 clients) become one magic-2 batch.
          if (auto magic = kafka::records_magic(records); magic && *magic < 2) {
            auto converted = kafka::convert_legacy_to_v2(records);
            if (!converted) {
              spdlog::warn("produce to {}-{} from {}: rejecting legacy message set: {}", topic.name,
                           part.index, conn.peer, converted.message());
              err = error_code::corrupt_message;
            } else {
              records = rewritten.emplace_back(std::move(*converted));
            }
          }
          if (err == error_code::none) {
            auto split = kafka::split_batches(records);
            if (!split) {
              spdlog::warn("produce to {}-{} from {}: rejecting records: {}", topic.name,
                           part.index, conn.peer, split.message());
              err = error_code::corrupt_message;
            } else {
              batches = std::move(*split);
            }
          }
        }
      }
      int64_t max_bytes = ctx.cfg.message_max_bytes;
      bool log_append_time = false;
      if (info) {
        if (auto v = topic_config(*info, "max.message.bytes"); !v.empty()) {
          max_bytes = std::strtoll(v.c_str(), nullptr, 10);
        }
        log_append_time = topic_config(*info, "message.timestamp.type") == "LogAppendTime";
      }
      for (const auto& b : batches) {
        if (static_cast<int64_t>(b.bytes.size()) > max_bytes) {
          err = error_code::message_too_large;
          break;
        }
      }
      if (err != error_code::none) {
        pr.error_code = static_cast<int16_t>(err);
        tr.partition_responses.push_back(std::move(pr));
        continue;
      }
      partition_slot slot{ti, tr.partition_responses.size(), appends.size(), batches.size()};
      if (log_append_time) pr.log_append_time_ms = append_time;
      for (const auto& b : batches) {
        append_batch a;
        a.topic = topic.name;
        a.partition = part.index;
        a.bytes = b.bytes;
        if (log_append_time) {
          a.bytes = rewritten.emplace_back(stamp_log_append_time(b.bytes, append_time));
        }
        a.offset_count = b.header.last_offset_delta + 1;
        a.first_timestamp = b.header.base_timestamp;
        a.max_timestamp = log_append_time ? append_time : b.header.max_timestamp;
        a.producer_id = b.header.producer_id;
        a.producer_epoch = b.header.producer_epoch;
        a.base_sequence = b.header.base_sequence;
        appends.push_back(std::move(a));
      }
      slots.push_back(slot);
      tr.partition_responses.push_back(std::move(pr));
    }
    resp.responses.push_back(std::move(tr));
  }

  if (in.acks == 0) {
    if (!appends.empty()) ctx.writer->append(appends, {});
    turn.release();
    handler_response none;
    none.send = false;
    co_return none;
  }
  if (!appends.empty()) {
    // The batch bytes point into req.frame (or `rewritten`), which outlive this await: the
    // writer reads them when it builds the object, before it completes us, so it need not copy.
    auto outcomes = co_await await_callback<std::vector<append_outcome>>([&](auto done) {
      ctx.writer->append_borrowed(appends, std::move(done));
      turn.release();
    });
    for (const auto& slot : slots) {
      auto& pr = resp.responses[slot.topic_index].partition_responses[slot.partition_index];
      error_code err = error_code::none;
      for (size_t i = 0; i < slot.batch_count; ++i) {
        const auto& o = outcomes[slot.first_batch + i];
        if (o.error != error_code::none && err == error_code::none) err = o.error;
      }
      pr.error_code = static_cast<int16_t>(err);
      pr.base_offset = err == error_code::none ? outcomes[slot.first_batch].base_offset : -1;
    }
  }
  handler_response out;
  out.body = encode_body(resp, req.api_version);
  co_return out;
}

}  // namespace sh::broker
