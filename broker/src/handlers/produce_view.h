#pragma once
// (Defined in produce.cc.) A Produce request decoded without copying its records: each partition's records are a view
// into the request frame (the generated kafka::produce_request copies them into a vector, a
// full extra pass over every produced byte). Same wire rules and bounds checks as the generated
// decoder (kafka::byte_reader validates every length before use); tagged fields are skipped.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sh/kafka/wire.h"

namespace sh::broker {

struct produce_request_view {
  struct partition {
    int32_t index = 0;
    std::optional<std::span<const uint8_t>> records;  // into the decoded bytes; nullopt = null
  };
  struct topic {
    std::string name;
    std::vector<partition> partitions;
  };
  std::optional<std::string> transactional_id;  // v3+
  int16_t acks = 0;
  int32_t timeout_ms = 0;
  std::vector<topic> topics;
};

// Decodes a Produce request body of `version` (v0-v11; flexible from v9). False when the bytes
// are malformed or the version is out of range; r.error() says why. The views stay valid while
// the bytes `r` reads do.
[[nodiscard]] bool decode_produce_request_view(kafka::byte_reader& r, int16_t version,
                                               produce_request_view& out);

}  // namespace sh::broker
