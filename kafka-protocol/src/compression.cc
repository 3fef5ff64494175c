#include "sh/kafka/compression.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace sh::kafka {

const char* compression_name(compression_type codec) noexcept {
  switch (codec) {
    case compression_type::none:
      return "none";
    case compression_type::gzip:
      return "gzip";
    case compression_type::snappy:
      return "snappy";
    case compression_type::lz4:
      return "lz4";
    case compression_type::zstd:
      return "zstd";
  }
  return "unknown";
}

namespace {

using bytes = std::vector<uint8_t>;
using out_result = result<bytes, batch_errc>;

auto corrupt(const char* codec, const std::string& why = {}) {
  return make_error(batch_errc::corrupt_compressed,
                    std::string(codec) + (why.empty() ? "" : ": " + why));
}
auto too_large(size_t max_output) {
  return make_error(batch_errc::decompressed_too_large,
                    "decompressed size exceeds " + std::to_string(max_output));
}

// Output buffer that grows geometrically up to max_output + 1 bytes; holding one byte more than
// allowed is how an over-long stream is detected without trusting any declared size.
class bounded_output {
 public:
  bounded_output(size_t input_size, size_t max_output, size_t min_initial = 4096)
      : _limit(max_output + 1) {
    _buf.resize(std::min(_limit, std::max(input_size * 4, min_initial)));
  }
  uint8_t* at() { return _buf.data() + _used; }
  size_t room() const { return _buf.size() - _used; }
  void commit(size_t n) { _used += n; }
  // False when the buffer already has max_output + 1 bytes of room in total.
  bool grow() {
    if (_buf.size() >= _limit) return false;
    _buf.resize(std::min(_limit, _buf.size() * 2));
    return true;
  }
  bool over() const { return _used >= _limit; }
  size_t used() const { return _used; }
  bytes take() {
    _buf.resize(_used);
    return std::move(_buf);
  }

 private:
  size_t _limit;
  size_t _used = 0;
  bytes _buf;
};

// --- gzip ---

out_result gzip_decompress(std::span<const uint8_t> in, size_t max_output) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return corrupt("gzip", "inflateInit2");  // auto header
  std::unique_ptr<z_stream, void (*)(z_stream*)> guard(&zs, [](z_stream* z) { inflateEnd(z); });
  bounded_output out(in.size(), max_output);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  bool ended = false;
  while (true) {
    if (out.room() == 0 && !out.grow()) return too_large(max_output);
    zs.next_out = out.at();
    zs.avail_out = static_cast<uInt>(std::min<size_t>(out.room(), 1u << 30));
    const uInt before = zs.avail_out;
    int rc = inflate(&zs, Z_NO_FLUSH);
    out.commit(before - zs.avail_out);
    if (out.over()) return too_large(max_output);
    if (rc == Z_STREAM_END) {
      ended = true;
      // Concatenated gzip members are one stream to Java's GZIPInputStream, which also
      // ignores trailing bytes that don't start another member.
      if (zs.avail_in < 2 || zs.next_in[0] != 0x1f || zs.next_in[1] != 0x8b) break;
      if (inflateReset(&zs) != Z_OK) return corrupt("gzip", "inflateReset");
      ended = false;
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && zs.avail_out == 0) continue;  // needs room
    if (rc == Z_BUF_ERROR) return corrupt("gzip", "truncated stream");
    return corrupt("gzip", zs.msg ? zs.msg : "inflate error");
  }
  if (!ended) return corrupt("gzip", "truncated stream");
  return out.take();
}

out_result gzip_compress(std::span<const uint8_t> in, int level) {
  z_stream zs{};
  if (deflateInit2(&zs, level == 0 ? Z_DEFAULT_COMPRESSION : level, Z_DEFLATED, 15 + 16, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return corrupt("gzip", "deflateInit2");
  }
  std::unique_ptr<z_stream, void (*)(z_stream*)> guard(&zs, [](z_stream* z) { deflateEnd(z); });
  bytes out(deflateBound(&zs, static_cast<uLong>(in.size())) + 32);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) return corrupt("gzip", "deflate");
  out.resize(zs.total_out);
  return out;
}

// --- snappy ---

constexpr uint8_t kXerialMagic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
constexpr size_t kXerialHeader = 16;  // magic + int32 version + int32 min compatible version
constexpr size_t kXerialBlock = 32 * 1024;

uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Appends one raw snappy block's output, checking its declared length against the bound first.
bool snappy_block(std::span<const uint8_t> block, bytes& out, size_t max_output, batch_errc& err) {
  size_t n = 0;
  auto src = reinterpret_cast<const char*>(block.data());
  if (snappy_uncompressed_length(src, block.size(), &n) != SNAPPY_OK) {
    err = batch_errc::corrupt_compressed;
    return false;
  }
  if (n > max_output - out.size()) {
    err = batch_errc::decompressed_too_large;
    return false;
  }
  size_t at = out.size();
  out.resize(at + n);
  size_t got = n;
  if (snappy_uncompress(src, block.size(), reinterpret_cast<char*>(out.data() + at), &got) !=
          SNAPPY_OK ||
      got != n) {
    err = batch_errc::corrupt_compressed;
    return false;
  }
  return true;
}

out_result snappy_decompress(std::span<const uint8_t> in, size_t max_output) {
  bytes out;
  batch_errc err = batch_errc::ok;
  const bool xerial =
      in.size() >= kXerialHeader && std::memcmp(in.data(), kXerialMagic, sizeof kXerialMagic) == 0;
  if (!xerial) {
    // librdkafka and others send a single raw snappy block.
    if (!snappy_block(in, out, max_output, err)) {
      return err == batch_errc::decompressed_too_large ? too_large(max_output) : corrupt("snappy");
    }
    return out;
  }
  size_t pos = kXerialHeader;
  while (pos < in.size()) {
    if (in.size() - pos < 4) return corrupt("snappy", "truncated xerial block length");
    const uint32_t len = load_be32(in.data() + pos);
    pos += 4;
    if (len > in.size() - pos) return corrupt("snappy", "xerial block past the end");
    if (!snappy_block(in.subspan(pos, len), out, max_output, err)) {
      return err == batch_errc::decompressed_too_large ? too_large(max_output) : corrupt("snappy");
    }
    pos += len;
  }
  return out;
}

out_result snappy_compress_xerial(std::span<const uint8_t> in) {
  bytes out(kXerialHeader);
  std::memcpy(out.data(), kXerialMagic, sizeof kXerialMagic);
  const uint8_t versions[8] = {0, 0, 0, 1, 0, 0, 0, 1};
  std::memcpy(out.data() + 8, versions, 8);
  for (size_t pos = 0; pos < in.size(); pos += kXerialBlock) {
    const size_t n = std::min(kXerialBlock, in.size() - pos);
    size_t clen = snappy_max_compressed_length(n);
    const size_t at = out.size();
    out.resize(at + 4 + clen);
    if (snappy_compress(reinterpret_cast<const char*>(in.data() + pos), n,
                        reinterpret_cast<char*>(out.data() + at + 4), &clen) != SNAPPY_OK) {
      return corrupt("snappy", "compress");
    }
    out[at] = static_cast<uint8_t>(clen >> 24);
    out[at + 1] = static_cast<uint8_t>(clen >> 16);
    out[at + 2] = static_cast<uint8_t>(clen >> 8);
    out[at + 3] = static_cast<uint8_t>(clen);
    out.resize(at + 4 + clen);
  }
  return out;
}

// --- lz4 ---

out_result lz4_decompress(std::span<const uint8_t> in, size_t max_output) {
  LZ4F_dctx* ctx = nullptr;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION))) {
    return corrupt("lz4", "context");
  }
  std::unique_ptr<LZ4F_dctx, size_t (*)(LZ4F_dctx*)> guard(ctx, &LZ4F_freeDecompressionContext);
  bounded_output out(in.size(), max_output);
  size_t pos = 0;
  size_t hint = 1;  // non-zero while a frame is incomplete
  while (pos < in.size() || hint != 0) {
    if (out.room() == 0 && !out.grow()) return too_large(max_output);
    size_t dst = out.room();
    size_t src = in.size() - pos;
    hint = LZ4F_decompress(ctx, out.at(), &dst, in.data() + pos, &src, nullptr);
    if (LZ4F_isError(hint)) return corrupt("lz4", LZ4F_getErrorName(hint));
    pos += src;
    out.commit(dst);
    if (out.over()) return too_large(max_output);
    // No progress although there is room: the input ended inside a frame.
    if (src == 0 && dst == 0) return corrupt("lz4", "truncated frame");
  }
  return out.take();
}

out_result lz4_compress(std::span<const uint8_t> in, int level) {
  LZ4F_preferences_t prefs;
  std::memset(&prefs, 0, sizeof prefs);
  prefs.frameInfo.blockSizeID = LZ4F_max64KB;
  prefs.frameInfo.blockMode = LZ4F_blockIndependent;
  prefs.compressionLevel = level;
  bytes out(LZ4F_compressFrameBound(in.size(), &prefs));
  size_t n = LZ4F_compressFrame(out.data(), out.size(), in.data(), in.size(), &prefs);
  if (LZ4F_isError(n)) return corrupt("lz4", LZ4F_getErrorName(n));
  out.resize(n);
  return out;
}

// --- zstd ---

out_result zstd_decompress(std::span<const uint8_t> in, size_t max_output) {
  // One context per thread: a fresh context allocates and page-faults its window on every
  // call, which made streaming decompression of a 1 MB batch ~20x slower.
  thread_local std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> cached(ZSTD_createDCtx(),
                                                                         &ZSTD_freeDCtx);
  ZSTD_DCtx* ctx = cached.get();
  if (!ctx) return corrupt("zstd", "context");
  ZSTD_DCtx_reset(ctx, ZSTD_reset_session_and_parameters);
  // A window much larger than the output bound is useless and would let a tiny frame header
  // make the decoder allocate up to 2^27 bytes; 1 MiB is always allowed.
  int window_log = 20;
  while (window_log < 27 && (size_t{1} << (window_log - 1)) < max_output) ++window_log;
  ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, window_log);
  // Fast path: one frame that declares its size (ours and librdkafka's do) decodes straight
  // into an exactly sized buffer; the declared size is checked against the bound first.
  const unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR) {
    if (declared > max_output) return too_large(max_output);
    const size_t frame = ZSTD_findFrameCompressedSize(in.data(), in.size());
    if (!ZSTD_isError(frame) && frame == in.size()) {
      bytes out(static_cast<size_t>(declared));
      const size_t n = ZSTD_decompressDCtx(ctx, out.data(), out.size(), in.data(), in.size());
      if (ZSTD_isError(n)) return corrupt("zstd", ZSTD_getErrorName(n));
      if (n != out.size()) return corrupt("zstd", "content size mismatch");
      return out;
    }
  }
  // zstd's streaming decoder is several times slower while the output buffer is smaller than
  // a block (128 KiB), so start at 256 KiB (or the bound).
  bounded_output out(in.size(), max_output, size_t{256} << 10);
  ZSTD_inBuffer src{in.data(), in.size(), 0};
  size_t last = 1;
  while (true) {
    if (out.room() == 0 && !out.grow()) return too_large(max_output);
    ZSTD_outBuffer dst{out.at(), out.room(), 0};
    const size_t in_before = src.pos;
    const size_t rc = ZSTD_decompressStream(ctx, &dst, &src);
    if (ZSTD_isError(rc)) {
      if (ZSTD_getErrorCode(rc) == ZSTD_error_frameParameter_windowTooLarge) {
        return too_large(max_output);
      }
      return corrupt("zstd", ZSTD_getErrorName(rc));
    }
    // A call without progress after a finished frame asks for the next frame's header; it
    // doesn't mean the last frame is incomplete.
    if (src.pos != in_before || dst.pos != 0) last = rc;
    out.commit(dst.pos);
    if (out.over()) return too_large(max_output);
    if (src.pos == src.size && dst.pos < dst.size) break;  // all input used, output drained
  }
  if (last != 0) return corrupt("zstd", "truncated frame");
  return out.take();
}

out_result zstd_compress(std::span<const uint8_t> in, int level) {
  bytes out(ZSTD_compressBound(in.size()));
  size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), level == 0 ? 3 : level);
  if (ZSTD_isError(n)) return corrupt("zstd", ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

}  // namespace

result<std::vector<uint8_t>, batch_errc> decompress(compression_type codec,
                                                    std::span<const uint8_t> input,
                                                    size_t max_output) {
  switch (codec) {
    case compression_type::none:
      if (input.size() > max_output) return too_large(max_output);
      return bytes(input.begin(), input.end());
    case compression_type::gzip:
      return gzip_decompress(input, max_output);
    case compression_type::snappy:
      return snappy_decompress(input, max_output);
    case compression_type::lz4:
      return lz4_decompress(input, max_output);
    case compression_type::zstd:
      return zstd_decompress(input, max_output);
  }
  return make_error(batch_errc::unsupported_compression,
                    "codec " + std::to_string(static_cast<int>(codec)));
}

result<std::vector<uint8_t>, batch_errc> compress(compression_type codec,
                                                  std::span<const uint8_t> input, int level) {
  switch (codec) {
    case compression_type::none:
      return bytes(input.begin(), input.end());
    case compression_type::gzip:
      return gzip_compress(input, level);
    case compression_type::snappy:
      return snappy_compress_xerial(input);
    case compression_type::lz4:
      return lz4_compress(input, level);
    case compression_type::zstd:
      return zstd_compress(input, level);
  }
  return make_error(batch_errc::unsupported_compression,
                    "codec " + std::to_string(static_cast<int>(codec)));
}

}  // namespace sh::kafka
