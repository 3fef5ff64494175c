#pragma once
// Parquet's RLE / bit-packed hybrid encoding (used for repetition and definition levels), written
// from the Parquet encodings specification:
//   run := rle-run | bit-packed-run
//   rle-run        varint(count << 1), then the value in ceil(bit_width / 8) little-endian bytes
//   bit-packed-run varint(groups << 1 | 1), then groups * 8 values packed LSB first, bit_width
//                  bits each (groups * bit_width bytes); only the last group may be padded
// Runs of 8 or more equal values become RLE runs, the rest bit-packed groups of 8.
#include <cstdint>
#include <span>
#include <string>

namespace sh::parquet {

// Bits needed for levels 0..max_level (0 when max_level is 0).
int level_bit_width(int max_level);

// Bits needed for dictionary indices 0..entries-1 (at least 1).
int index_bit_width(uint32_t entries);

// Appends the encoding of `values` (each < 2^bit_width) to `out`, without a length prefix.
// Levels: 1 <= bit_width <= 8; dictionary indices: 1 <= bit_width <= 32.
void rle_hybrid_encode(std::span<const uint8_t> values, int bit_width, std::string& out);
void rle_hybrid_encode(std::span<const uint32_t> values, int bit_width, std::string& out);

}  // namespace sh::parquet
