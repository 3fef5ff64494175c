// Re-compression of batches while they are copied into a segment (compression.type /
// archive.compression.type): the records are decoded and re-encoded in the target codec with
// every field that a consumer sees unchanged.
#include <string>

#include "compactor.h"
#include "sh/kafka/compression.h"
#include "sh/kafka/record_batch.h"

namespace sh::broker::compaction {
namespace {

int codec_of(const std::string& name) {
  if (name == "uncompressed") return 0;
  if (name == "gzip") return 1;
  if (name == "snappy") return 2;
  if (name == "lz4") return 3;
  if (name == "zstd") return 4;
  return -1;  // "producer", "none", unknown: keep
}

std::optional<std::string> copy_of(const std::optional<std::span<const uint8_t>>& bytes) {
  if (!bytes) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
}

}  // namespace

int segment_codec(const std::string& compression_type,
                  const std::string& archive_compression_type) {
  if (!archive_compression_type.empty() && archive_compression_type != "none") {
    return codec_of(archive_compression_type);
  }
  return codec_of(compression_type);
}

std::optional<std::vector<uint8_t>> recompress_batch(std::span<const uint8_t> batch, int codec) {
  if (codec < 0 || codec > 4) return std::nullopt;
  auto views = kafka::split_batches(batch);  // also checks the CRC
  if (!views || views->size() != 1) return std::nullopt;
  const kafka::batch_view& v = (*views)[0];
  const kafka::batch_header& h = v.header;
  // Control batches (transaction markers) stay uncompressed, as Kafka writes them.
  if (h.is_control() || h.compression_bits() == codec) return std::nullopt;
  std::vector<kafka::record_spec> records;
  records.reserve(h.records_count > 0 ? static_cast<size_t>(h.records_count) : 0);
  auto read = kafka::for_each_record(v, [&](const kafka::record_view& r) {
    kafka::record_spec s;
    s.key = copy_of(r.key);
    s.value = copy_of(r.value);
    s.headers.reserve(r.headers.size());
    for (const auto& hv : r.headers) s.headers.push_back({std::string(hv.key), copy_of(hv.value)});
    s.timestamp_delta = r.timestamp_delta;
    s.offset_delta = r.offset_delta;
    s.attributes = r.attributes;
    records.push_back(std::move(s));
  });
  if (!read || records.size() != static_cast<size_t>(h.records_count)) return std::nullopt;
  kafka::batch_build_options o;
  o.base_offset = h.base_offset;
  o.partition_leader_epoch = h.partition_leader_epoch;
  o.attributes = static_cast<int16_t>((h.attributes & ~0x7) | codec);
  o.base_timestamp = h.base_timestamp;
  o.max_timestamp = h.max_timestamp;
  o.last_offset_delta = h.last_offset_delta;
  o.records_count = h.records_count;
  o.producer_id = h.producer_id;
  o.producer_epoch = h.producer_epoch;
  o.base_sequence = h.base_sequence;
  auto out = kafka::build_batch(o, records);
  // build_batch falls back to an uncompressed batch should the codec fail.
  auto nh = kafka::parse_batch_header(out);
  if (!nh || nh->compression_bits() != codec) return std::nullopt;
  return out;
}

}  // namespace sh::broker::compaction
