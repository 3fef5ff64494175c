#include "store_util.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <random>
#include <set>
#include <tuple>

namespace sh::metadata::detail {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

topic_id random_topic_id() {
  // random_device is the kernel's CSPRNG on Linux; ids must not collide across brokers that
  // create topics at the same moment, so no time- or pid-seeded generator.
  static thread_local std::random_device rd;
  topic_id id{};
  for (;;) {
    for (size_t i = 0; i < id.size(); i += 4) {
      uint32_t v = rd();
      for (size_t j = 0; j < 4; ++j) id[i + j] = static_cast<uint8_t>(v >> (8 * j));
    }
    id[6] = static_cast<uint8_t>((id[6] & 0x0f) | 0x40);  // version 4
    id[8] = static_cast<uint8_t>((id[8] & 0x3f) | 0x80);  // RFC 4122 variant
    // Base64 of the id starts with '-' (url-safe alphabet index 62) when the top six bits are
    // 111110. The reserved ids (0 and 1) can't occur with the version bits set, but stay explicit.
    bool dash = (id[0] >> 2) == 62;
    bool reserved =
        std::all_of(id.begin(), id.end() - 1, [](uint8_t b) { return b == 0; }) && id.back() <= 1;
    if (!dash && !reserved) return id;
  }
}

mresult<void> validate_create_topic(const std::string& name, int32_t partitions,
                                    const std::map<std::string, std::string>& configs) {
  if (!is_valid_topic_name(name)) {
    return make_error(errc::invalid_argument,
                      "invalid topic name '" + name.substr(0, 300) +
                          "': 1-249 characters of [a-zA-Z0-9._-], not '.' or '..'");
  }
  if (partitions < 1 || partitions > max_partition_count) {
    return make_error(errc::invalid_argument, "partition count " + std::to_string(partitions) +
                                                  " outside 1.." +
                                                  std::to_string(max_partition_count));
  }
  return validate_configs(configs);
}

mresult<void> validate_configs(const std::map<std::string, std::string>& configs) {
  for (const auto& [key, value] : configs) {
    if (key.empty()) return make_error(errc::invalid_argument, "empty topic config name");
    // Database text columns can't hold NUL (PostgreSQL refuses it); so no store accepts it.
    if (key.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
      return make_error(errc::invalid_argument, "NUL character in topic config " + key);
    }
  }
  return {};
}

namespace {

mresult<void> validate_object(const std::string& key, uint64_t size) {
  if (key.empty() || key.size() > max_object_key_length) {
    return make_error(
        errc::invalid_argument,
        "object key must have 1.." + std::to_string(max_object_key_length) + " characters");
  }
  if (key.find('\0') != std::string::npos) {
    return make_error(errc::invalid_argument, "NUL character in object key");
  }
  if (size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return make_error(errc::invalid_argument, "object size too large");
  }
  return {};
}

mresult<void> validate_range(const range_commit& r, size_t i, uint64_t object_size,
                             bool check_producers) {
  std::string where = "range " + std::to_string(i) + " (" + r.topic.substr(0, 300) + "-" +
                      std::to_string(r.partition) + ")";
  // Written to avoid overflow: byte_offset + byte_length <= object_size.
  if (r.byte_length == 0 || r.byte_offset > object_size ||
      r.byte_length > object_size - r.byte_offset) {
    return make_error(errc::invalid_argument, where + " is empty or outside the object");
  }
  if (r.batches.empty()) return make_error(errc::invalid_argument, where + " has no batches");
  // Each count is below 2^31, so their sum can't overflow int64 for any vector that fits.
  for (const batch_commit& b : r.batches) {
    if (b.offset_count < 1) {
      return make_error(errc::invalid_argument, where + " has a batch with offset_count < 1");
    }
    if (check_producers && b.producer_id >= 0 && (b.producer_epoch < 0 || b.base_sequence < 0)) {
      return make_error(errc::invalid_argument,
                        where + " has an idempotent batch without epoch or sequence");
    }
  }
  return {};
}

bool valid_name(const std::string& s) {
  return !s.empty() && s.size() <= max_name_length && s.find('\0') == std::string::npos;
}

}  // namespace

mresult<void> validate_commit(const object_commit& commit) {
  SH_META_CHECK(validate_object(commit.object_key, commit.object_size));
  for (size_t i = 0; i < commit.ranges.size(); ++i) {
    SH_META_CHECK(validate_range(commit.ranges[i], i, commit.object_size, true));
  }
  return {};
}

mresult<void> validate_mirror_commit(const mirror_commit& commit) {
  if (commit.object_key.empty()) {  // a checkpoint-only commit
    if (!commit.ranges.empty() || commit.object_size != 0 || commit.checkpoints.empty()) {
      return make_error(errc::invalid_argument,
                        "a mirror commit without an object carries only checkpoints");
    }
  } else {
    SH_META_CHECK(validate_object(commit.object_key, commit.object_size));
  }
  for (size_t i = 0; i < commit.ranges.size(); ++i) {
    const mirror_range& m = commit.ranges[i];
    SH_META_CHECK(validate_range(m.range, i, commit.object_size, false));
    int64_t count = range_offset_count(m.range);
    if (m.base_offset < 0 || m.last_offset < m.base_offset ||
        m.last_offset - m.base_offset < count - 1) {
      return make_error(errc::invalid_argument,
                        "mirror range " + std::to_string(i) +
                            ": offsets [base, last] must be >= 0 and span its batches");
    }
  }
  std::set<std::tuple<std::string, std::string, int32_t>> seen;
  for (const mirror_checkpoint& c : commit.checkpoints) {
    if (!valid_name(c.mirror_name) || !valid_name(c.source_topic) || c.source_partition < 0 ||
        c.next_source_offset < 0) {
      return make_error(errc::invalid_argument, "malformed mirror checkpoint");
    }
    if (!seen.emplace(c.mirror_name, c.source_topic, c.source_partition).second) {
      return make_error(errc::invalid_argument, "two checkpoints for one source partition");
    }
  }
  if (commit.fence && !valid_name(commit.fence->name)) {
    return make_error(errc::invalid_argument, "malformed lease fence");
  }
  return {};
}

error_info<errc> checkpoint_behind(const mirror_checkpoint& cp, int64_t high_watermark) {
  return make_error(errc::conflict, "checkpoint " + std::to_string(cp.next_source_offset) + " of " +
                                        cp.topic + "-" + std::to_string(cp.partition) +
                                        " is below its high watermark " +
                                        std::to_string(high_watermark));
}

mresult<void> validate_transactional_id(const std::string& transactional_id) {
  if (!transactional_id.empty() && !valid_name(transactional_id)) {
    return make_error(errc::invalid_argument, "transactional ids need at most " +
                                                  std::to_string(max_name_length) +
                                                  " characters without NUL");
  }
  return {};
}

mresult<void> validate_group_id(const std::string& group_id) {
  if (!valid_name(group_id)) {
    return make_error(
        errc::invalid_argument,
        "group ids need 1.." + std::to_string(max_name_length) + " characters without NUL");
  }
  return {};
}

std::vector<size_t> last_offset_per_partition(const std::vector<group_offset>& offsets) {
  std::map<std::pair<std::string_view, int32_t>, size_t> last;
  for (size_t i = 0; i < offsets.size(); ++i) {
    last[std::pair<std::string_view, int32_t>(offsets[i].topic, offsets[i].partition)] = i;
  }
  std::vector<size_t> out;
  for (const auto& [key, i] : last) out.push_back(i);
  std::sort(out.begin(), out.end());
  return out;
}

mresult<void> validate_incarnation(int32_t node_id, const std::string& incarnation) {
  if (node_id < 0 || !valid_name(incarnation)) {
    return make_error(errc::invalid_argument,
                      "a broker needs a node id >= 0 and a 1..1024 character incarnation");
  }
  return {};
}

mresult<void> validate_broker(const broker_registration& broker, int64_t session_timeout_ms) {
  SH_META_CHECK(validate_incarnation(broker.node_id, broker.incarnation));
  constexpr size_t max_endpoints = 64 * 1024;
  if (broker.endpoints.size() > max_endpoints || broker.rack.size() > max_name_length ||
      broker.endpoints.find('\0') != std::string::npos ||
      broker.rack.find('\0') != std::string::npos) {
    return make_error(errc::invalid_argument, "malformed broker endpoints or rack");
  }
  if (session_timeout_ms < 1 || session_timeout_ms > max_lease_ttl_ms) {
    return make_error(errc::invalid_argument, "session timeout out of range");
  }
  return {};
}

mresult<void> validate_lease_args(const std::string& name, const std::string& owner,
                                  int64_t ttl_ms) {
  for (const std::string* s : {&name, &owner}) {
    if (s->empty() || s->size() > max_name_length || s->find('\0') != std::string::npos) {
      return make_error(errc::invalid_argument, "lease names and owners need 1.." +
                                                    std::to_string(max_name_length) +
                                                    " characters without NUL");
    }
  }
  if (ttl_ms < 1 || ttl_ms > max_lease_ttl_ms) {
    return make_error(errc::invalid_argument, "lease ttl out of range");
  }
  return {};
}

int64_t range_offset_count(const range_commit& range) {
  int64_t sum = 0;
  for (const batch_commit& b : range.batches) sum += b.offset_count;
  return sum;
}

int64_t range_max_timestamp(const range_commit& range) {
  int64_t ts = range.max_timestamp;
  for (const batch_commit& b : range.batches) ts = std::max(ts, b.max_timestamp);
  return ts < -1 ? -1 : ts;
}

std::vector<size_t> commit_lock_order(const object_commit& commit) {
  std::vector<size_t> order(commit.ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const range_commit& ra = commit.ranges[a];
    const range_commit& rb = commit.ranges[b];
    return std::tie(ra.topic, ra.partition, a) < std::tie(rb.topic, rb.partition, b);
  });
  return order;
}

int32_t increment_sequence(int32_t sequence, int32_t increment) {
  constexpr int32_t max = std::numeric_limits<int32_t>::max();
  if (sequence > max - increment) return increment - (max - sequence) - 1;
  return sequence + increment;
}

std::set<producer_key> producer_keys(int64_t topic_key, const range_commit& range) {
  std::set<producer_key> keys;
  for (const batch_commit& b : range.batches) {
    if (b.producer_id >= 0) keys.insert(producer_key{b.producer_id, topic_key, range.partition});
  }
  return keys;
}

namespace {

enum class batch_verdict { accept, duplicate, out_of_order, fenced };

batch_verdict check_batch(const std::vector<producer_batch_record>& retained, const batch_commit& b,
                          const producer_batch_record** duplicate_of) {
  if (retained.empty()) return batch_verdict::accept;
  int32_t last_sequence = increment_sequence(b.base_sequence, b.offset_count - 1);
  int16_t current_epoch = retained.back().epoch;
  if (b.producer_epoch == current_epoch) {
    for (const producer_batch_record& r : retained) {
      if (r.epoch == b.producer_epoch && r.first_sequence == b.base_sequence &&
          r.last_sequence == last_sequence) {
        *duplicate_of = &r;
        return batch_verdict::duplicate;
      }
    }
    return b.base_sequence == increment_sequence(retained.back().last_sequence, 1)
               ? batch_verdict::accept
               : batch_verdict::out_of_order;
  }
  if (b.producer_epoch < current_epoch) return batch_verdict::fenced;
  return b.base_sequence == 0 ? batch_verdict::accept : batch_verdict::out_of_order;
}

void append_batch(std::vector<producer_batch_record>& retained, const batch_commit& b,
                  int64_t base_offset) {
  if (!retained.empty() && retained.back().epoch != b.producer_epoch) retained.clear();
  retained.push_back(producer_batch_record{b.producer_epoch, b.base_sequence,
                                           increment_sequence(b.base_sequence, b.offset_count - 1),
                                           base_offset, base_offset + b.offset_count - 1});
  if (retained.size() > retained_producer_batches) {
    retained.erase(retained.begin(),
                   retained.end() - static_cast<std::ptrdiff_t>(retained_producer_batches));
  }
}

}  // namespace

sequence_verdict check_sequences(const producer_states& states, int64_t topic_key,
                                 const range_commit& range) {
  // Batches of one range are checked in order against a scratch copy, so that a range holding
  // several consecutive batches of one producer is judged like Kafka judges them one by one.
  producer_states scratch;
  size_t duplicates = 0;
  sequence_verdict verdict;
  int64_t relative = 0;  // offset of the batch within the range (for scratch records)
  for (const batch_commit& b : range.batches) {
    int64_t batch_relative = relative;
    relative += b.offset_count;
    if (b.producer_id < 0) continue;
    producer_key key{b.producer_id, topic_key, range.partition};
    auto it = scratch.find(key);
    if (it == scratch.end()) {
      auto found = states.find(key);
      it = scratch
               .emplace(key, found == states.end() ? std::vector<producer_batch_record>{}
                                                   : found->second)
               .first;
    }
    const producer_batch_record* original = nullptr;
    switch (check_batch(it->second, b, &original)) {
      case batch_verdict::accept:
        // Scratch offsets are relative and negative, so they never match a real duplicate.
        append_batch(it->second, b, batch_relative - (int64_t{1} << 62));
        break;
      case batch_verdict::duplicate:
        if (original->base_offset < 0) return {range_status::out_of_order_sequence};
        if (duplicates == 0) verdict.base_offset = original->base_offset;
        verdict.last_offset = original->last_offset;
        ++duplicates;
        break;
      case batch_verdict::out_of_order:
        return {range_status::out_of_order_sequence};
      case batch_verdict::fenced:
        return {range_status::invalid_producer_epoch};
    }
  }
  if (duplicates == 0) return {};
  if (duplicates == range.batches.size()) {
    verdict.status = range_status::duplicate_sequence;
    return verdict;
  }
  return {range_status::out_of_order_sequence};
}

void record_sequences(producer_states& states, std::set<producer_key>& touched, int64_t topic_key,
                      const range_commit& range, int64_t base_offset) {
  int64_t offset = base_offset;
  for (const batch_commit& b : range.batches) {
    if (b.producer_id >= 0) {
      producer_key key{b.producer_id, topic_key, range.partition};
      append_batch(states[key], b, offset);
      touched.insert(key);
    }
    offset += b.offset_count;
  }
}

namespace {

mresult<void> check_tiling(const std::vector<index_entry>& rows, int64_t first, int64_t last,
                           const char* what) {
  if (rows.empty()) return make_error(errc::invalid_argument, std::string(what) + ": no rows");
  for (size_t i = 0; i < rows.size(); ++i) {
    const index_entry& e = rows[i];
    // The previous row ended below `last`, so adding 1 cannot overflow.
    bool starts_right =
        i == 0 ? e.base_offset == first
               : rows[i - 1].last_offset < last && e.base_offset == rows[i - 1].last_offset + 1;
    if (!starts_right || e.last_offset < e.base_offset || e.last_offset > last ||
        e.byte_length == 0 || e.object_key.empty() || e.object_key.size() > max_object_key_length ||
        e.object_key.find('\0') != std::string::npos) {
      return make_error(errc::invalid_argument,
                        std::string(what) + ": rows do not tile the offset range");
    }
  }
  if (rows.back().last_offset != last) {
    return make_error(errc::invalid_argument, std::string(what) + ": rows end before the range");
  }
  return {};
}

}  // namespace

mresult<void> validate_segment_replacement(const segment_replacement& r) {
  if (r.topic.empty() || r.partition < 0 || r.first_offset < 0 || r.last_offset < r.first_offset) {
    return make_error(errc::invalid_argument, "segment replacement: bad partition or range");
  }
  if (r.segment_key.empty() || r.segment_key.size() > max_object_key_length ||
      r.segment_key.find('\0') != std::string::npos) {
    return make_error(errc::invalid_argument, "segment replacement: bad segment key");
  }
  if (r.fence.name.empty() || r.fence.epoch < 1) {
    return make_error(errc::invalid_argument, "segment replacement: a lease fence is required");
  }
  SH_META_CHECK(check_tiling(r.replaced, r.first_offset, r.last_offset, "replaced rows"));
  SH_META_CHECK(check_tiling(r.entries, r.first_offset, r.last_offset, "segment rows"));
  for (const index_entry& e : r.entries) {
    if (e.object_key != r.segment_key || e.byte_offset > r.segment_size ||
        e.byte_length > r.segment_size - e.byte_offset || e.record_count < 1) {
      return make_error(errc::invalid_argument,
                        "segment replacement: a new row is outside the segment");
    }
  }
  for (const index_entry& e : r.replaced) {
    if (e.object_key == r.segment_key) {
      return make_error(errc::invalid_argument, "segment replacement: segment replaces itself");
    }
  }
  return {};
}

bool same_index_entry(const index_entry& a, const index_entry& b) {
  return a.base_offset == b.base_offset && a.last_offset == b.last_offset &&
         a.max_timestamp == b.max_timestamp && a.record_count == b.record_count &&
         a.object_key == b.object_key && a.byte_offset == b.byte_offset &&
         a.byte_length == b.byte_length;
}

}  // namespace sh::metadata::detail
