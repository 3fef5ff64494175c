// export_bench: `streamhouse export` throughput per format, in process (the same run_export the
// CLI calls). The archive is an embedded one (SQLite metadata + local directory object store, in
// the page cache after the first pass), so the numbers are the reader's and writers' CPU cost:
// index reads, ranged GETs of local files, CRC checks, decompression, encoding, writing the file.
//
//   export_bench [--records N] [--value-bytes N] [--codec none|gzip|snappy|lz4|zstd]
//                [--segments] [--dir DIR]
//
// Prints one line per format: records/s and MB/s of payload (keys + values + headers) and the
// output size. --segments also measures segment-only mode (the data rewritten into segments).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>

#include "bench_data.h"
#include "sh/analytics/export.h"
#include "sh/metadata/metadata_store.h"
#include "sh/storage/segment.h"

namespace {

namespace fs = std::filesystem;
using namespace sh;

int die(const std::string& m) {
  std::fprintf(stderr, "export_bench: %s\n", m.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  size_t records = 500000;
  size_t value_bytes = 200;
  std::string codec_name = "lz4";
  bool segments = false;
  std::string dir = "/tmp/sh-export-bench-" + std::to_string(::getpid());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--records" && i + 1 < argc) {
      records = std::stoul(argv[++i]);
    } else if (a == "--value-bytes" && i + 1 < argc) {
      value_bytes = std::stoul(argv[++i]);
    } else if (a == "--codec" && i + 1 < argc) {
      codec_name = argv[++i];
    } else if (a == "--segments") {
      segments = true;
    } else if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      return die("unknown argument " + a);
    }
  }
  kafka::compression_type codec = kafka::compression_type::none;
  if (codec_name == "gzip") codec = kafka::compression_type::gzip;
  if (codec_name == "snappy") codec = kafka::compression_type::snappy;
  if (codec_name == "lz4") codec = kafka::compression_type::lz4;
  if (codec_name == "zstd") codec = kafka::compression_type::zstd;

  fs::remove_all(dir);
  fs::create_directories(dir);
  auto store_r = storage::open_object_store(dir + "/objects");
  if (!store_r) return die(store_r.message());
  std::shared_ptr<storage::object_store> store(std::move(*store_r));
  auto meta_r = metadata::open_metadata_store(dir + "/meta.db");
  if (!meta_r) return die(meta_r.message());
  std::shared_ptr<metadata::metadata_store> meta(std::move(*meta_r));
  if (!meta->create_topic("bench", 1, {})) return die("create_topic");

  // Ingest objects of ~8 MiB, batches of 500 records (each batch a distinct slice of events).
  const size_t per_batch = 500;
  const size_t batches_per_object = std::max<size_t>(1, (8u << 20) / (per_batch * value_bytes));
  uint64_t payload = 0;
  size_t made = 0, obj = 0;
  storage::segment_builder seg("bench", "bench", 0);
  int64_t next_offset = 0;
  while (made < records) {
    std::vector<uint8_t> body;
    metadata::range_commit rc;
    rc.topic = "bench";
    for (size_t b = 0; b < batches_per_object && made < records; ++b) {
      const size_t n = std::min(per_batch, records - made);
      kafka::batch_build_options opt;
      opt.attributes = static_cast<int16_t>(codec);
      opt.base_timestamp = 1700000000000 + static_cast<int64_t>(made);
      auto recs = bench::make_records(n, value_bytes, bench::payload::events, made + 1);
      for (auto& r : recs) {
        r.headers.push_back({"source", std::string("bench")});
        payload += r.key->size() + r.value->size() + 6 + 5;
      }
      auto batch = kafka::build_batch(opt, recs);
      if (segments && !seg.add(batch, next_offset)) return die("segment add");
      next_offset += static_cast<int64_t>(n);
      body.insert(body.end(), batch.begin(), batch.end());
      rc.batches.push_back({static_cast<int32_t>(n), opt.base_timestamp + int64_t(n) - 1});
      made += n;
    }
    rc.byte_length = body.size();
    rc.min_timestamp = 0;
    rc.max_timestamp = rc.batches.back().max_timestamp;
    const std::string key = "ingest/" + std::to_string(obj++);
    if (!store->put(key, body)) return die("put");
    if (!meta->commit_object({key, body.size(), {rc}})) return die("commit");
  }
  if (segments) {
    auto f = seg.finish();
    if (!store->put(storage::segment_object_key("", "bench", 0, 0), f.data)) return die("put seg");
  }
  std::printf("data: %zu records, %zu-byte event values, %s batches of %zu, %.1f MB payload\n",
              records, value_bytes, codec_name.c_str(), per_batch, double(payload) / 1e6);
  // Wall-clock rates, and rates per CPU second of this process (the machine may be shared: CPU
  // time shows what the export costs when it gets a core).
  std::printf("%-22s %12s %10s %14s %14s %14s\n", "format", "records/s", "MB/s", "rec/CPU-s",
              "MB/CPU-s", "output bytes");

  struct run_spec {
    const char* name;
    analytics::export_format f;
    analytics::binary_encoding enc;
    analytics::parquet_codec pc;
    bool seg_only;
  };
  std::vector<run_spec> runs = {
      {"jsonl (utf8)", analytics::export_format::jsonl, analytics::binary_encoding::utf8,
       analytics::parquet_codec::zstd, false},
      {"jsonl (base64)", analytics::export_format::jsonl, analytics::binary_encoding::base64,
       analytics::parquet_codec::zstd, false},
      {"csv (utf8)", analytics::export_format::csv, analytics::binary_encoding::utf8,
       analytics::parquet_codec::zstd, false},
      {"parquet (zstd)", analytics::export_format::parquet, analytics::binary_encoding::utf8,
       analytics::parquet_codec::zstd, false},
      {"parquet (snappy)", analytics::export_format::parquet, analytics::binary_encoding::utf8,
       analytics::parquet_codec::snappy, false},
      {"parquet (none)", analytics::export_format::parquet, analytics::binary_encoding::utf8,
       analytics::parquet_codec::none, false},
  };
  if (segments) {
    runs.push_back({"segment-only jsonl", analytics::export_format::jsonl,
                    analytics::binary_encoding::utf8, analytics::parquet_codec::zstd, true});
    runs.push_back({"segment-only parquet", analytics::export_format::parquet,
                    analytics::binary_encoding::utf8, analytics::parquet_codec::zstd, true});
  }
  for (int pass = 0; pass < 2; ++pass) {  // pass 0 warms the page cache and is not printed
    for (const auto& r : runs) {
      auto reader = analytics::archive_reader::open(store, r.seg_only ? nullptr : meta);
      analytics::export_options o;
      o.topic = "bench";
      o.format = r.f;
      o.binary = r.enc;
      o.compression = r.pc;
      o.output = dir + "/out";
      const std::clock_t c0 = std::clock();
      auto s = analytics::run_export(*reader, o);
      const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
      if (!s) return die(std::string(r.name) + ": " + s.message());
      if (s->records != records) return die(std::string(r.name) + ": wrong record count");
      if (pass == 1) {
        std::printf("%-22s %12.0f %10.1f %14.0f %14.1f %14llu\n", r.name,
                    double(s->records) / s->seconds, double(s->payload_bytes) / 1e6 / s->seconds,
                    double(s->records) / cpu, double(s->payload_bytes) / 1e6 / cpu,
                    static_cast<unsigned long long>(s->bytes_written));
      }
      fs::remove(o.output);
    }
  }
  fs::remove_all(dir);
  return 0;
}
