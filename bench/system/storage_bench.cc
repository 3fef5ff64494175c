// Object store throughput: PUT and GET of 8 MiB objects (the ingest flush size) on the local
// directory store and, when the test services' environment is set, on S3.
//
//   storage_bench [--size BYTES] [--count N] [--threads T] [--dir PATH] [--no-s3]
//
// Local: a fresh directory under --dir (default $TMPDIR or /tmp), removed afterwards. PUTs are
// durable (fsync of file and directory), GETs read what the page cache holds, so local GET is
// a memory-speed figure, not a disk one.
// S3: S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY (as exported by
// tests/services/test-services.sh); a bucket "sh-bench-<pid>" is created and emptied afterwards
// (SH_BENCH_BUCKET names another one). Without S3_ENDPOINT the S3 part is skipped, with a line
// saying so.
//
// T threads each PUT (then GET) count/T objects; MB/s is total bytes over wall time, latency
// percentiles are per request.
//
// Then, per store, one large object (--big BYTES, default 96 MiB, above the 64 MiB multipart
// threshold) PUT --big-count times as one plain PUT and as a multipart upload (16 MiB parts,
// 4 in flight, the S3 defaults; --part-bytes, --part-concurrency), and GET back once.
//
// Last, the read cache's disk tier (local, under --dir): --cache-ranges ranges of 1 MiB read
// through a read_cache with no memory tier and a disk tier big enough for all: the cold pass
// (backend reads, each also written to disk) and warm passes that are all disk hits (files
// checked with CRC32C on every read; the page cache holds them, so this is the CPU cost of
// open + read + checksum, not the device's speed).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "bench_data.h"
#include "latency_stats.h"
#include "sh/storage/object_store.h"
#include "sh/storage/read_cache.h"

namespace {

namespace storage = sh::storage;
using sh::bench::bench_clock;
using sh::bench::latency_stats;

struct options {
  size_t size = 8u << 20;
  int count = 16;
  int threads = 1;
  std::string dir;
  bool s3 = true;
  size_t big = 96u << 20;
  int big_count = 3;
  int cache_ranges = 256;
  uint64_t part_bytes = 16u << 20;
  int part_concurrency = 4;
};

struct phase_result {
  double seconds = 0;
  uint64_t bytes = 0;
  latency_stats lat;
  int errors = 0;
  std::string first_error;
};

void print(const std::string& store, const char* op, int threads, const phase_result& r) {
  std::printf(
      "%-6s %-4s threads=%d  %8.1f MB/s  %6.1f ops/s  p50 %8.2f ms  p99 %8.2f ms  max %8.2f "
      "ms%s%s\n",
      store.c_str(), op, threads, static_cast<double>(r.bytes) / 1e6 / r.seconds,
      static_cast<double>(r.lat.count()) / r.seconds, r.lat.percentile_us(50) / 1e3,
      r.lat.percentile_us(99) / 1e3, r.lat.max_us() / 1e3, r.errors ? "  ERRORS: " : "",
      r.errors ? r.first_error.c_str() : "");
  std::fflush(stdout);
}

// Runs op(i) for i in [0, count) on `threads` threads.
template <class Op>
phase_result run_phase(int count, int threads, Op op) {
  std::vector<phase_result> per(static_cast<size_t>(threads));
  auto t0 = bench_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      auto& me = per[static_cast<size_t>(t)];
      for (int i = t; i < count; i += threads) {
        auto s = bench_clock::now();
        std::string err;
        uint64_t n = op(i, err);
        me.lat.add(bench_clock::now() - s);
        if (!err.empty()) {
          if (me.errors++ == 0) me.first_error = err;
        }
        me.bytes += n;
      }
    });
  }
  for (auto& th : pool) th.join();
  phase_result r;
  r.seconds = sh::bench::seconds_since(t0);
  for (auto& p : per) {
    r.bytes += p.bytes;
    r.lat.merge(p.lat);
    if (p.errors && r.errors == 0) r.first_error = p.first_error;
    r.errors += p.errors;
  }
  return r;
}

void bench_store(const std::string& name, storage::object_store& store, const options& o) {
  const auto data = sh::bench::random_bytes(o.size);
  auto key = [](int i) { return "bench/obj-" + std::to_string(i); };
  // One untimed PUT first: connection set-up and directory creation are not what we measure.
  (void)store.put("bench/warmup", data);
  for (int threads : {1, o.threads}) {
    auto put = run_phase(o.count, threads, [&](int i, std::string& err) -> uint64_t {
      auto r = store.put(key(i), data);
      if (!r) {
        err = r.message();
        return 0;
      }
      return data.size();
    });
    print(name, "PUT", threads, put);
    auto get = run_phase(o.count, threads, [&](int i, std::string& err) -> uint64_t {
      auto r = store.get(key(i));
      if (!r) {
        err = r.message();
        return 0;
      }
      if (r->size() != data.size()) err = "short read";
      return r->size();
    });
    print(name, "GET", threads, get);
    if (o.threads == 1) break;
  }
  std::vector<std::string> keys{"bench/warmup"};
  for (int i = 0; i < o.count; ++i) keys.push_back(key(i));
  (void)store.remove_many(keys);
}

// One large object, PUT whole (through `plain`, a store with multipart off) and through put()
// of `store`, which goes multipart above its threshold, then read back.
void bench_big(const std::string& name, storage::object_store& store, storage::object_store& plain,
               const options& o) {
  if (o.big == 0 || o.big_count <= 0) return;
  const auto data = sh::bench::random_bytes(o.big);
  const std::string big_name = name + "-" + std::to_string(o.big >> 20) + "MiB";
  auto put_phase = [&](bool multipart) {
    return run_phase(o.big_count, 1, [&](int i, std::string& err) -> uint64_t {
      const std::string key = "bench/big-" + std::to_string(i);
      auto r = multipart ? store.put(key, data) : plain.put(key, data);
      if (!r) {
        err = r.message();
        return 0;
      }
      return data.size();
    });
  };
  print(big_name, "PUT1", 1, put_phase(false));
  print(big_name, "MPUT", 1, put_phase(true));
  auto get = run_phase(1, 1, [&](int i, std::string& err) -> uint64_t {
    auto r = store.get("bench/big-" + std::to_string(i));
    if (!r) {
      err = r.message();
      return 0;
    }
    if (*r != data) err = "read back differs";
    return r->size();
  });
  print(big_name, "GET", 1, get);
  std::vector<std::string> keys;
  for (int i = 0; i < o.big_count; ++i) keys.push_back("bench/big-" + std::to_string(i));
  (void)store.remove_many(keys);
}

// Disk-tier hits of the read cache over a local store.
void bench_disk_tier(const options& o) {
  const auto root = std::filesystem::path(o.dir) / ("sh-cache-bench-" + std::to_string(getpid()));
  auto store = storage::open_local_store(root / "objects");
  if (!store) {
    std::fprintf(stderr, "disk tier: %s\n", store.message().c_str());
    return;
  }
  constexpr uint64_t range = 1u << 20;
  const auto data = sh::bench::random_bytes(16u << 20);
  const int objects = (o.cache_ranges + 15) / 16;
  for (int i = 0; i < objects; ++i) (void)(*store)->put("obj-" + std::to_string(i), data);
  storage::read_cache_options co;
  co.memory_bytes = 0;  // every read goes to the disk tier
  co.disk_dir = root / "cache";
  co.disk_bytes = uint64_t(o.cache_ranges + 1) * (range + 4096);
  auto cache = storage::read_cache::open(**store, co);
  if (!cache) {
    std::fprintf(stderr, "disk tier: %s\n", cache.message().c_str());
    return;
  }
  auto pass = [&](int threads) {
    return run_phase(o.cache_ranges, threads, [&](int i, std::string& err) -> uint64_t {
      auto r =
          (*cache)->get_range("obj-" + std::to_string(i / 16), uint64_t(i % 16) * range, range);
      if (!r) {
        err = r.message();
        return 0;
      }
      return (*r)->size();
    });
  };
  print("cache-cold", "GET", 1, pass(1));
  print("disk-hit", "GET", 1, pass(1));
  if (o.threads > 1) print("disk-hit", "GET", o.threads, pass(o.threads));
  const auto st = (*cache)->stats();
  std::printf("disk tier: %llu hits, %llu backend reads, %llu files, %.1f MiB on disk\n",
              static_cast<unsigned long long>(st.disk_hits),
              static_cast<unsigned long long>(st.backend_reads),
              static_cast<unsigned long long>(st.disk_entries),
              static_cast<double>(st.disk_bytes) / (1 << 20));
  cache->reset();
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
}

int usage() {
  std::fprintf(stderr,
               "usage: storage_bench [--size BYTES] [--count N] [--threads T] [--dir PATH] "
               "[--no-s3] [--big BYTES] [--big-count N] [--part-bytes B] [--part-concurrency N] "
               "[--cache-ranges N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  const char* tmp = std::getenv("TMPDIR");
  o.dir = tmp && *tmp ? tmp : "/tmp";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--size" && (v = next())) {
      o.size = std::strtoull(v, nullptr, 10);
    } else if (a == "--count" && (v = next())) {
      o.count = std::atoi(v);
    } else if (a == "--threads" && (v = next())) {
      o.threads = std::atoi(v);
    } else if (a == "--dir" && (v = next())) {
      o.dir = v;
    } else if (a == "--no-s3") {
      o.s3 = false;
    } else if (a == "--big" && (v = next())) {
      o.big = std::strtoull(v, nullptr, 10);
    } else if (a == "--big-count" && (v = next())) {
      o.big_count = std::atoi(v);
    } else if (a == "--part-bytes" && (v = next())) {
      o.part_bytes = std::strtoull(v, nullptr, 10);
    } else if (a == "--part-concurrency" && (v = next())) {
      o.part_concurrency = std::atoi(v);
    } else if (a == "--cache-ranges" && (v = next())) {
      o.cache_ranges = std::atoi(v);
    } else {
      return usage();
    }
  }
  if (o.size == 0 || o.count <= 0 || o.threads <= 0) return usage();
  std::printf("objects: %d x %zu bytes (random, incompressible); threads 1%s\n", o.count, o.size,
              o.threads > 1 ? (" and " + std::to_string(o.threads)).c_str() : "");

  // Local directory store.
  {
    auto root = std::filesystem::path(o.dir) / ("sh-storage-bench-" + std::to_string(getpid()));
    auto store = storage::open_local_store(root);
    if (!store) {
      std::fprintf(stderr, "local store at %s: %s\n", root.c_str(), store.message().c_str());
      return 1;
    }
    std::printf("local: %s\n", (*store)->describe().c_str());
    bench_store("local", **store, o);
    bench_big("local", **store, **store, o);
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }

  // S3.
  if (o.cache_ranges > 0) bench_disk_tier(o);

  const char* endpoint = std::getenv("S3_ENDPOINT");
  if (!o.s3) {
    std::printf("s3: skipped (--no-s3)\n");
    return 0;
  }
  if (!endpoint || !*endpoint) {
    std::printf("s3: skipped (S3_ENDPOINT not set; source tests/services/test-services.sh)\n");
    return 0;
  }
  storage::s3_options s3;
  s3.endpoint = endpoint;
  if (const char* r = std::getenv("S3_REGION"); r && *r) s3.region = r;
  if (const char* k = std::getenv("S3_ACCESS_KEY")) s3.access_key = k;
  if (const char* k = std::getenv("S3_SECRET_KEY")) s3.secret_key = k;
  s3.multipart_part_size = o.part_bytes;
  s3.multipart_concurrency = o.part_concurrency;
  const char* b = std::getenv("SH_BENCH_BUCKET");
  const std::string bucket = b && *b ? b : "sh-bench-" + std::to_string(getpid());
  if (auto r = storage::s3_create_bucket(bucket, s3); !r) {
    std::fprintf(stderr, "s3: create bucket %s at %s: %s\n", bucket.c_str(), endpoint,
                 r.message().c_str());
    return 1;
  }
  auto store = storage::open_object_store("s3://" + bucket + "/bench", s3);
  if (!store) {
    std::fprintf(stderr, "s3 store: %s\n", store.message().c_str());
    return 1;
  }
  std::printf("s3: %s\n", (*store)->describe().c_str());
  bench_store("s3", **store, o);
  storage::s3_options single = s3;
  single.multipart_threshold = 0;
  auto plain = storage::open_object_store("s3://" + bucket + "/bench", single);
  if (plain) bench_big("s3", **store, **plain, o);
  return 0;
}
