// Metadata store commit and index-lookup speed, on SQLite and (when PG_URL is set) PostgreSQL.
//
//   metadata_bench [--seconds S] [--max-commits N] [--threads T] [--dir PATH] [--no-pg]
//                  [--sqlite-only | --pg-only]
//
// For 1, 10 and 100 partitions per commit: commit_object() calls (one ingest object, one range
// per partition, 4 batches per range, as a broker flush of that many partitions would commit)
// for S seconds (default 3) or N commits, whichever first; prints commits/s, partitions/s and
// commit latency p50/p99/p99.9/max. Then read_index() latency for random (partition, offset)
// lookups over the index those commits built (max 16 entries, what a fetch asks for).
//
// SQLite: a fresh file under --dir (default $TMPDIR or /tmp); the store runs WAL with
// synchronous=FULL, so every commit fsyncs. PostgreSQL: PG_URL (tests/services/test-services.sh
// exports one); a database "sh_bench_<pid>" is created next to the one PG_URL names and dropped
// afterwards. Note that the test services run PostgreSQL with fsync=off.
//
// T threads commit concurrently (each its own objects, all to the same topic, partitions chosen
// so that commits overlap), as several brokers sharing one database would.
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "latency_stats.h"
#include "sh/metadata/metadata_store.h"

namespace {

namespace md = sh::metadata;
using sh::bench::bench_clock;
using sh::bench::latency_stats;

struct options {
  double seconds = 3;
  int max_commits = 20000;
  int threads = 1;
  std::string dir;
  bool sqlite = true;
  bool pg = true;
};

constexpr int topic_partitions = 100;
constexpr int batches_per_range = 4;

md::object_commit make_commit(const std::string& key, int partitions, int first_partition) {
  md::object_commit c;
  c.object_key = key;
  uint64_t off = 0;
  for (int i = 0; i < partitions; ++i) {
    md::range_commit r;
    r.topic = "bench";
    r.partition = (first_partition + i) % topic_partitions;
    r.byte_offset = off;
    r.byte_length = 16384;
    r.min_timestamp = 1700000000000;
    r.max_timestamp = 1700000000000 + 10;
    for (int b = 0; b < batches_per_range; ++b) {
      r.batches.push_back({16, 1700000000000 + b, -1, -1, -1});
    }
    off += r.byte_length;
    c.ranges.push_back(std::move(r));
  }
  c.object_size = off + 100;
  return c;
}

bool run_commits(md::metadata_store& store, const std::string& label, int partitions,
                 const options& o) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::vector<latency_stats> lat(static_cast<size_t>(o.threads));
  std::string first_error;
  std::mutex err_mu;
  const auto deadline = bench_clock::now() + std::chrono::duration_cast<bench_clock::duration>(
                                                 std::chrono::duration<double>(o.seconds));
  auto t0 = bench_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < o.threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t * 7919 + partitions));
      while (!failed && bench_clock::now() < deadline) {
        int i = next.fetch_add(1);
        if (i >= o.max_commits) break;
        auto c = make_commit(
            "ingest/bench-" + std::to_string(partitions) + "/" + std::to_string(i) + ".ing",
            partitions, static_cast<int>(rng() % topic_partitions));
        auto s = bench_clock::now();
        auto r = store.commit_object(c);
        lat[static_cast<size_t>(t)].add(bench_clock::now() - s);
        bool bad = !r;
        if (r) {
          for (const auto& oc : *r) bad |= oc.status != md::range_status::ok;
        }
        if (bad) {
          std::lock_guard lock(err_mu);
          if (!failed.exchange(true)) {
            first_error = !r ? r.message() : "a range was not committed";
          }
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  const double secs = sh::bench::seconds_since(t0);
  latency_stats all;
  for (auto& l : lat) all.merge(l);
  if (failed) {
    std::printf("%-8s commit p=%-3d FAILED: %s\n", label.c_str(), partitions, first_error.c_str());
    return false;
  }
  const double n = static_cast<double>(all.count());
  std::printf(
      "%-8s commit partitions=%-3d threads=%d  %6.0f commits/s  %7.0f partitions/s  "
      "p50 %7.2f ms  p99 %7.2f ms  p99.9 %7.2f ms  max %7.2f ms  (%zu commits)\n",
      label.c_str(), partitions, o.threads, n / secs, n * partitions / secs,
      all.percentile_us(50) / 1e3, all.percentile_us(99) / 1e3, all.percentile_us(99.9) / 1e3,
      all.max_us() / 1e3, all.count());
  std::fflush(stdout);
  return true;
}

void run_read_index(md::metadata_store& store, const std::string& label, const options& o) {
  std::vector<int64_t> hw(topic_partitions);
  size_t entries = 0;
  for (int p = 0; p < topic_partitions; ++p) {
    auto st = store.get_partition("bench", p);
    hw[static_cast<size_t>(p)] = st ? st->high_watermark : 0;
  }
  latency_stats lat;
  std::mt19937_64 rng(3);
  const auto deadline =
      bench_clock::now() + std::chrono::duration_cast<bench_clock::duration>(
                               std::chrono::duration<double>(std::min(o.seconds, 2.0)));
  auto t0 = bench_clock::now();
  while (bench_clock::now() < deadline && lat.count() < 200000) {
    int p = static_cast<int>(rng() % topic_partitions);
    int64_t h = hw[static_cast<size_t>(p)];
    int64_t from = h > 0 ? static_cast<int64_t>(rng() % static_cast<uint64_t>(h)) : 0;
    auto s = bench_clock::now();
    auto r = store.read_index("bench", p, from, 16);
    lat.add(bench_clock::now() - s);
    if (!r) {
      std::printf("%-8s read_index FAILED: %s\n", label.c_str(), r.message().c_str());
      return;
    }
    entries += r->size();
  }
  const double secs = sh::bench::seconds_since(t0);
  int64_t total = 0;
  for (auto h : hw) total += h;
  std::printf(
      "%-8s read_index (16 entries max, %lld offsets in 100 partitions)  %7.0f lookups/s  "
      "p50 %7.3f ms  p99 %7.3f ms  max %7.2f ms  (avg %.1f entries)\n",
      label.c_str(), static_cast<long long>(total), static_cast<double>(lat.count()) / secs,
      lat.percentile_us(50) / 1e3, lat.percentile_us(99) / 1e3, lat.max_us() / 1e3,
      static_cast<double>(entries) / static_cast<double>(std::max<size_t>(1, lat.count())));
}

bool run_store(const std::string& label, const std::string& url, const options& o) {
  auto store = md::open_metadata_store(url);
  if (!store) {
    std::fprintf(stderr, "%s: open %s: %s\n", label.c_str(), url.c_str(), store.message().c_str());
    return false;
  }
  std::printf("%s: %s\n", label.c_str(), (*store)->describe().c_str());
  if (auto t = (*store)->create_topic("bench", topic_partitions, {}); !t) {
    std::fprintf(stderr, "%s: create_topic: %s\n", label.c_str(), t.message().c_str());
    return false;
  }
  bool ok = true;
  for (int p : {1, 10, 100}) ok &= run_commits(**store, label, p, o);
  run_read_index(**store, label, o);
  return ok;
}

// Runs one SQL command on a libpq connection string; false (with a message) on failure.
bool pg_exec(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  bool ok = PQstatus(c) == CONNECTION_OK;
  if (ok) {
    PGresult* r = PQexec(c, sql.c_str());
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) std::fprintf(stderr, "postgresql: %s: %s", sql.c_str(), PQerrorMessage(c));
    PQclear(r);
  } else {
    std::fprintf(stderr, "postgresql: connect: %s", PQerrorMessage(c));
  }
  PQfinish(c);
  return ok;
}

int usage() {
  std::fprintf(stderr,
               "usage: metadata_bench [--seconds S] [--max-commits N] [--threads T] [--dir PATH] "
               "[--sqlite-only | --pg-only]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  const char* tmp = std::getenv("TMPDIR");
  o.dir = tmp && *tmp ? tmp : "/tmp";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--seconds" && v) {
      o.seconds = std::atof(v), ++i;
    } else if (a == "--max-commits" && v) {
      o.max_commits = std::atoi(v), ++i;
    } else if (a == "--threads" && v) {
      o.threads = std::atoi(v), ++i;
    } else if (a == "--dir" && v) {
      o.dir = v, ++i;
    } else if (a == "--sqlite-only" || a == "--no-pg") {
      o.pg = false;
    } else if (a == "--pg-only") {
      o.sqlite = false;
    } else {
      return usage();
    }
  }
  if (o.seconds <= 0 || o.max_commits <= 0 || o.threads <= 0) return usage();
  bool ok = true;
  if (o.sqlite) {
    auto dir = std::filesystem::path(o.dir) / ("sh-metadata-bench-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    ok &= run_store("sqlite", "sqlite://" + (dir / "meta.db").string(), o);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  if (o.pg) {
    const char* url = std::getenv("PG_URL");
    if (!url || !*url) {
      std::printf("postgres: skipped (PG_URL not set; source tests/services/test-services.sh)\n");
    } else {
      // A database of our own beside PG_URL's: postgresql://user@host:port/db -> .../sh_bench_N
      std::string base = url;
      auto slash = base.rfind('/');
      if (slash == std::string::npos || slash < base.find("://") + 3) {
        std::fprintf(stderr, "postgres: PG_URL has no database part: %s\n", url);
        return 1;
      }
      const std::string db = "sh_bench_" + std::to_string(getpid());
      const std::string db_url = base.substr(0, slash + 1) + db;
      if (!pg_exec(url, "CREATE DATABASE " + db)) return 1;
      ok &= run_store("postgres", db_url, o);
      pg_exec(url, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    }
  }
  return ok ? 0 : 1;
}
