#pragma once
// Kafka's record compression codecs: gzip (zlib), snappy (raw, and xerial/Java framing), lz4
// (frame format) and zstd. Decompression is always bounded by a caller-given output size, so a
// small hostile input can't inflate into unbounded memory.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sh/common/result.h"
#include "sh/kafka/record_batch.h"

namespace sh::kafka {

// Errors: unsupported_compression (codec bits 5..7), corrupt_compressed (the codec rejects the
// input), decompressed_too_large (output would exceed max_output).
result<std::vector<uint8_t>, batch_errc> decompress(compression_type codec,
                                                    std::span<const uint8_t> input,
                                                    size_t max_output);

// Compresses as Kafka's Java producer does: gzip with a gzip header, snappy in xerial framing,
// lz4 frames with 64 KiB independent blocks, zstd frames. level 0 = the codec's default.
result<std::vector<uint8_t>, batch_errc> compress(compression_type codec,
                                                  std::span<const uint8_t> input, int level = 0);

const char* compression_name(compression_type codec) noexcept;

}  // namespace sh::kafka
