#pragma once
// Legacy message sets (magic 0 and 1, Kafka before 0.11) and their conversion to magic 2.
//
// Message set entry: offset int64 | message_size int32 | crc uint32 (CRC-32 of the rest) |
//   magic int8 | attributes int8 | [timestamp int64, magic 1 only] | key bytes | value bytes.
// A compressed entry (attributes & 7 != 0) carries a whole inner message set in its value.
// Produce v0-v2 clients send these; the broker stores magic 2 only, so it converts them.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "sh/common/result.h"
#include "sh/kafka/record_batch.h"

namespace sh::kafka {

// Magic byte of the first entry of a records blob (0, 1 or 2; other values are returned as
// they are), or nullopt when the blob is too short to hold one.
std::optional<int8_t> records_magic(std::span<const uint8_t> records) noexcept;

struct legacy_conversion_options {
  // Codec of the produced batch; nullopt keeps the codec of the first compressed entry (none
  // when nothing was compressed), like a topic with compression.type=producer.
  std::optional<compression_type> output_compression;
  // Bound on the decompressed bytes of all compressed entries together.
  size_t max_decompressed = default_max_decompressed_bytes;
};

// Converts a complete legacy message set into one magic-2 batch holding every message in
// order, offset deltas 0..n-1 (the broker assigns real offsets), producer id -1. Magic 0
// messages get timestamp -1; a log-append-time wrapper's timestamp replaces its inner
// messages' timestamps and sets the batch's timestamp type. Checks every CRC-32 and length.
// Errors: truncated (partial entry), bad_length, bad_crc, bad_magic (a magic-2 entry or an
// unknown magic), bad_record (nested compression, bad inner set), codec errors; an empty set
// gives bad_record.
result<std::vector<uint8_t>, batch_errc> convert_legacy_to_v2(
    std::span<const uint8_t> message_set, const legacy_conversion_options& options = {});

// Down-conversion for pre-0.11 consumers (Fetch v0-v3): the records of magic-2 batches (as the
// broker stores them, base offsets already real) written as an uncompressed legacy message set
// of `magic` 0 or 1 (magic 1 keeps timestamps and the LogAppendTime bit; headers are dropped,
// the old formats have none). Control batches (transaction markers) are skipped. Records below
// `from_offset` are left out. Errors: those of record iteration (bad batches, codec errors,
// decompressed_too_large).
result<std::vector<uint8_t>, batch_errc> convert_v2_to_legacy(
    std::span<const uint8_t> batches, int8_t magic, int64_t from_offset = 0,
    size_t max_decompressed = default_max_decompressed_bytes);

}  // namespace sh::kafka
