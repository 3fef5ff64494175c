// Compaction throughput and object-store request counts per GB stored.
//
//   compaction_bench [--mb N] [--partitions P] [--segment-mb S] [--batch-kb K] [--codec C]
//                    [--s3] [--pg]
//
// Writes N MB (default 256) of record batches (K KiB each, default 16, 100-byte values of mixed
// text) for P partitions (default 8) through the broker's ingest writer (8 MiB flushes, the
// broker default), then compacts every partition into segments of S MiB (default 32) with
// compact_partition_once, optionally re-compressing to codec C (none, gzip, snappy, lz4, zstd),
// then collects the ingest objects (grace 0). Every object-store call goes through a counting
// wrapper, so the output says how many PUT / GET / LIST / DELETE requests each phase made, per
// GB of record data, and how many objects the bucket holds per GB before and after.
//
// Backends: a local directory store and SQLite by default; --s3 uses S3_ENDPOINT / S3_REGION /
// S3_ACCESS_KEY / S3_SECRET_KEY (bucket sh-bench-compaction-<pid>), --pg PG_URL (a schema of its
// own, dropped afterwards).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <string>

#include "compaction/compactor.h"
#include "ingest_writer.h"
#include "sh/kafka/record_batch.h"
#include "sh/metadata/metadata_store.h"
#include "sh/storage/object_store.h"

namespace {

namespace storage = sh::storage;
namespace metadata = sh::metadata;
namespace broker = sh::broker;
using clock_type = std::chrono::steady_clock;

struct counts {
  std::atomic<uint64_t> put{0}, get{0}, head{0}, list{0}, del{0}, put_bytes{0}, get_bytes{0};
  struct snapshot {
    uint64_t put, get, head, list, del, put_bytes, get_bytes;
  };
  snapshot take() const {
    return {put.load(), get.load(),       head.load(),     list.load(),
            del.load(), put_bytes.load(), get_bytes.load()};
  }
};

// Forwards every call and counts it as the S3 request it would be.
class counting_store final : public storage::object_store {
 public:
  counting_store(std::unique_ptr<storage::object_store> inner, counts& c)
      : _inner(std::move(inner)), _c(c) {}
  storage::sresult<void> put(const std::string& key, std::span<const uint8_t> data) override {
    ++_c.put;
    _c.put_bytes += data.size();
    return _inner->put(key, data);
  }
  storage::sresult<storage::bytes> get(const std::string& key) override {
    ++_c.get;
    auto r = _inner->get(key);
    if (r) _c.get_bytes += r->size();
    return r;
  }
  storage::sresult<storage::bytes> get_range(const std::string& key, uint64_t offset,
                                             uint64_t length) override {
    ++_c.get;
    auto r = _inner->get_range(key, offset, length);
    if (r) _c.get_bytes += r->size();
    return r;
  }
  storage::sresult<storage::object_info> head(const std::string& key) override {
    ++_c.head;
    return _inner->head(key);
  }
  storage::sresult<std::vector<storage::object_info>> list(const std::string& prefix) override {
    ++_c.list;  // (S3: one request per 1000 keys; counted once here)
    return _inner->list(prefix);
  }
  storage::sresult<void> remove(const std::string& key) override {
    ++_c.del;
    return _inner->remove(key);
  }
  std::string describe() const override { return _inner->describe(); }

 private:
  std::unique_ptr<storage::object_store> _inner;
  counts& _c;
};

std::vector<uint8_t> make_batch(size_t target_bytes, int64_t ts, uint64_t seed, int codec) {
  sh::kafka::batch_build_options o;
  o.base_timestamp = ts;
  o.attributes = static_cast<int16_t>(codec);
  std::vector<sh::kafka::record_spec> recs;
  static const char* words[] = {"order", "user", "click", "view", "cart", "id", "price", "EUR"};
  size_t bytes = 0;
  for (int i = 0; bytes < target_bytes; ++i) {
    sh::kafka::record_spec r;
    r.timestamp_delta = i;
    r.key = "key-" + std::to_string((seed * 131 + static_cast<uint64_t>(i)) % 10000);
    std::string v;
    uint64_t x = seed * 2654435761u + static_cast<uint64_t>(i);
    while (v.size() < 100) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      v += words[(x >> 33) % 8];
      v += std::to_string((x >> 40) % 1000);
      v += ' ';
    }
    bytes += v.size() + r.key->size() + 10;
    r.value = std::move(v);
    recs.push_back(std::move(r));
  }
  return sh::kafka::build_batch(o, recs);
}

double per_gb(uint64_t n, uint64_t data_bytes) {
  return data_bytes ? static_cast<double>(n) * (1024.0 * 1024 * 1024) / data_bytes : 0;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t mb = 256;
  int partitions = 8;
  uint64_t segment_mb = 32;
  size_t batch_kb = 16;
  std::string codec_name = "keep";
  bool use_s3 = false, use_pg = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--mb")
      mb = std::stoull(next());
    else if (a == "--partitions")
      partitions = std::stoi(next());
    else if (a == "--segment-mb")
      segment_mb = std::stoull(next());
    else if (a == "--batch-kb")
      batch_kb = std::stoull(next());
    else if (a == "--codec")
      codec_name = next();
    else if (a == "--s3")
      use_s3 = true;
    else if (a == "--pg")
      use_pg = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  int codec = sh::broker::compaction::segment_codec(
      "producer", codec_name == "none" ? "uncompressed" : codec_name);
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("sh-compaction-bench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  counts c;
  std::unique_ptr<storage::object_store> inner;
  storage::s3_options s3;
  std::string bucket = "sh-bench-compaction-" + std::to_string(::getpid());
  if (use_s3) {
    const char* ep = std::getenv("S3_ENDPOINT");
    if (!ep) {
      std::fprintf(stderr, "--s3 needs S3_ENDPOINT etc. (tests/services/test-services.sh)\n");
      return 2;
    }
    s3.endpoint = ep;
    s3.region = std::getenv("S3_REGION") ? std::getenv("S3_REGION") : "us-east-1";
    s3.access_key = std::getenv("S3_ACCESS_KEY") ? std::getenv("S3_ACCESS_KEY") : "";
    s3.secret_key = std::getenv("S3_SECRET_KEY") ? std::getenv("S3_SECRET_KEY") : "";
    if (auto b = storage::s3_create_bucket(bucket, s3); !b) {
      std::fprintf(stderr, "bucket: %s\n", b.message().c_str());
      return 1;
    }
    auto s = storage::open_s3_store(bucket, "bench", s3);
    if (!s) return 1;
    inner = std::move(*s);
  } else {
    auto s = storage::open_local_store(dir / "objects");
    if (!s) return 1;
    inner = std::move(*s);
  }
  std::string schema;
  std::string meta_url = (dir / "meta.db").string();
  if (use_pg) {
    const char* pg = std::getenv("PG_URL");
    if (!pg) {
      std::fprintf(stderr, "--pg needs PG_URL\n");
      return 2;
    }
    schema = "sh_bench_" + std::to_string(::getpid());
    std::string cmd = std::string("psql '") + pg + "' -qAt -c 'CREATE SCHEMA " + schema + "'";
    if (std::system(cmd.c_str()) != 0) return 1;
    meta_url = std::string(pg) + "?options=-csearch_path%3D" + schema;
  }
  auto m = metadata::open_metadata_store(meta_url);
  if (!m) {
    std::fprintf(stderr, "metadata: %s\n", m.message().c_str());
    return 1;
  }
  std::shared_ptr<metadata::metadata_store> meta = std::move(*m);
  auto store = std::make_shared<counting_store>(std::move(inner), c);
  if (!meta->create_topic("bench", partitions, {})) return 1;

  // ---- ingest ----
  const uint64_t total = mb << 20;
  std::vector<std::vector<uint8_t>> batches;
  for (int i = 0; i < 64; ++i) {
    batches.push_back(make_batch(batch_kb << 10, 1700000000000 + i, static_cast<uint64_t>(i), 0));
  }
  auto t0 = clock_type::now();
  uint64_t data_bytes = 0;
  {
    broker::ingest_writer w(store, meta, "bench-writer", 8 << 20, std::chrono::milliseconds(250),
                            {});
    w.start();
    std::vector<std::future<std::vector<broker::append_outcome>>> waits;
    size_t n = 0;
    while (data_bytes < total) {
      std::vector<broker::append_batch> req;
      for (int p = 0; p < partitions && data_bytes < total; ++p, ++n) {
        const auto& b = batches[n % batches.size()];
        auto h = sh::kafka::parse_batch_header(b);
        broker::append_batch a;
        a.topic = "bench";
        a.partition = p;
        a.bytes = b;
        a.offset_count = h->last_offset_delta + 1;
        a.first_timestamp = h->base_timestamp;
        a.max_timestamp = h->max_timestamp;
        req.push_back(a);
        data_bytes += b.size();
      }
      auto pr = std::make_shared<std::promise<std::vector<broker::append_outcome>>>();
      waits.push_back(pr->get_future());
      w.append(req, [pr](std::vector<broker::append_outcome> o) { pr->set_value(std::move(o)); });
      if (waits.size() > 256) {
        for (auto& f : waits) {
          for (const auto& o : f.get()) {
            if (o.error != sh::kafka::error_code::none) {
              std::fprintf(stderr, "produce failed\n");
              return 1;
            }
          }
        }
        waits.clear();
      }
    }
    for (auto& f : waits) f.get();
    w.stop();
  }
  double ingest_s = std::chrono::duration<double>(clock_type::now() - t0).count();
  auto after_ingest = c.take();
  auto listed = store->list("ingest/");
  size_t ingest_objects = listed ? listed->size() : 0;

  // ---- compaction ----
  broker::compaction::compaction_options opts;
  opts.writer_id = "bench";
  opts.segment_bytes = segment_mb << 20;
  opts.segment_ms = 1;
  opts.recompress_codec = codec;
  uint64_t in_bytes = 0, out_bytes = 0, segments = 0;
  auto t1 = clock_type::now();
  for (int p = 0; p < partitions; ++p) {
    auto lease = meta->acquire_lease("compact/bench/" + std::to_string(p), "bench", 600000);
    if (!lease) return 1;
    for (;;) {
      opts.now_ms = 1800000000000;
      auto r = broker::compaction::compact_partition_once(*meta, *store, "bench", p,
                                                          {lease->name, lease->epoch}, opts);
      if (!r) {
        std::fprintf(stderr, "compaction: %s\n", r.message().c_str());
        return 1;
      }
      if (!r->compacted) break;
      in_bytes += r->input_bytes;
      out_bytes += r->segment_size;
      ++segments;
    }
  }
  double compact_s = std::chrono::duration<double>(clock_type::now() - t1).count();
  auto after_compact = c.take();
  auto t2 = clock_type::now();
  auto gc = broker::compaction::collect_garbage(*meta, *store, 4000000000000, 0, 1000000);
  double gc_s = std::chrono::duration<double>(clock_type::now() - t2).count();
  auto after_gc = c.take();
  auto left = store->list("");
  size_t final_objects = left ? left->size() : 0;

  std::printf(
      "compaction_bench: %s + %s, %llu MiB of batches (%zu KiB each), %d partitions, "
      "segment.bytes %llu MiB, codec %s\n",
      store->describe().c_str(), use_pg ? "postgresql" : "sqlite",
      static_cast<unsigned long long>(data_bytes >> 20), batch_kb, partitions,
      static_cast<unsigned long long>(segment_mb), codec_name.c_str());
  std::printf(
      "ingest:     %.1f s (%.1f MB/s), %zu ingest objects = %.0f per GB; %llu PUT = %.0f "
      "per GB\n",
      ingest_s, data_bytes / 1e6 / ingest_s, ingest_objects, per_gb(ingest_objects, data_bytes),
      static_cast<unsigned long long>(after_ingest.put), per_gb(after_ingest.put, data_bytes));
  std::printf(
      "compaction: %.2f s, %.1f MB/s in (%llu MiB read, %llu MiB written), %llu segments; "
      "%llu GET = %.0f per GB, %llu PUT = %.0f per GB\n",
      compact_s, in_bytes / 1e6 / compact_s, static_cast<unsigned long long>(in_bytes >> 20),
      static_cast<unsigned long long>(out_bytes >> 20), static_cast<unsigned long long>(segments),
      static_cast<unsigned long long>(after_compact.get - after_ingest.get),
      per_gb(after_compact.get - after_ingest.get, data_bytes),
      static_cast<unsigned long long>(after_compact.put - after_ingest.put),
      per_gb(after_compact.put - after_ingest.put, data_bytes));
  std::printf("gc:         %.2f s, %zu objects deleted, %llu DELETE = %.0f per GB\n", gc_s,
              gc ? *gc : 0, static_cast<unsigned long long>(after_gc.del - after_compact.del),
              per_gb(after_gc.del - after_compact.del, data_bytes));
  std::printf(
      "stored:     %zu objects after compaction = %.1f per GB (was %.0f per GB); "
      "%.1f%% of the input size\n",
      final_objects, per_gb(final_objects, data_bytes), per_gb(ingest_objects, data_bytes),
      100.0 * out_bytes / std::max<uint64_t>(1, in_bytes));
  std::printf("total requests per GB stored: PUT %.0f, GET %.0f, DELETE %.0f, LIST %llu\n",
              per_gb(after_gc.put, data_bytes), per_gb(after_gc.get, data_bytes),
              per_gb(after_gc.del, data_bytes), static_cast<unsigned long long>(after_gc.list));

  meta.reset();
  if (!schema.empty()) {
    std::string cmd = std::string("psql '") + std::getenv("PG_URL") + "' -qAt -c 'DROP SCHEMA " +
                      schema + " CASCADE' > /dev/null 2>&1";
    (void)std::system(cmd.c_str());
  }
  if (use_s3 && left) {
    for (const auto& o : *left) (void)store->remove(o.key);
  }
  fs::remove_all(dir);
  return 0;
}
