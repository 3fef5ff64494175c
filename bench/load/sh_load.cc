// sh_load: end-to-end load generator on librdkafka, in the spirit of rdkafka_performance.
//
// Produces N messages of S bytes with acks=all to a topic, reporting MB/s, msgs/s and produce
// latency p50/p99/p99.9 (librdkafka's per-message latency from produce() to the delivery
// report), then consumes the topic from the beginning until every partition reports EOF,
// reporting MB/s and msgs/s. `--mock` starts librdkafka's mock cluster in this process
// (rdkafka_mock.h) and runs the same load against it, as a reference point for the same client
// on the same machine.
//
//   sh_load (--bootstrap HOST:PORT | --mock) [--topic T] [--messages N] [--size S]
//           [--partitions P] [--rate MSGS_PER_S] [--compression none|gzip|snappy|lz4|zstd]
//           [--linger-ms MS] [--no-consume] [--timeout-s S] [--label NAME]
//           [-X key=value]...   (any librdkafka property, applied to producer and consumer)
//
// The topic is created with P partitions (CreateTopics; on the mock, rd_kafka_mock_topic_create)
// unless it exists. The last line of output is one machine-readable summary:
//   RESULT label=... produce_MBps=... produce_msgps=... p50_ms=... p99_ms=... p999_ms=...
//          consume_MBps=... consume_msgps=... consumed=... produced=... errors=...
// The exit status is non-zero if a message failed delivery, consuming timed out, or (against a
// real broker) fewer messages were consumed than produced. The mock keeps only about 5 MiB per
// partition, so on --mock the consume phase reads what it still holds and says so.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "latency_stats.h"

namespace {

using sh::bench::bench_clock;
using sh::bench::latency_stats;

struct options {
  std::string bootstrap;
  bool mock = false;
  std::string topic = "sh-load";
  long long messages = 100000;
  size_t size = 1024;
  int partitions = 4;
  double rate = 0;  // msgs/s, 0 = as fast as possible
  std::string compression = "none";
  int linger_ms = 5;
  bool consume = true;
  bool produce = true;  // --consume-only: read what an earlier run produced
  int timeout_s = 120;
  std::string label;
  std::vector<std::pair<std::string, std::string>> extra;
};

int usage() {
  std::fprintf(stderr,
               "usage: sh_load (--bootstrap HOST:PORT | --mock) [--topic T] [--messages N] "
               "[--size BYTES]\n"
               "               [--partitions P] [--rate MSGS_PER_S] [--compression CODEC] "
               "[--linger-ms MS]\n"
               "               [--no-consume | --consume-only] [--timeout-s S] [--label NAME]\n"
               "               [-X key=value]...\n");
  return 2;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "sh_load: %s\n", what.c_str());
  std::exit(1);
}

void set(rd_kafka_conf_t* conf, const std::string& k, const std::string& v) {
  char err[512];
  if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    die("config " + k + "=" + v + ": " + err);
  }
}

void log_cb(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 4) std::fprintf(stderr, "librdkafka %s: %s\n", fac, buf);
}

// ---- produce ----

struct produce_state {
  latency_stats latency;
  std::atomic<long long> delivered{0};
  std::atomic<long long> failed{0};
  std::atomic<long long> bytes{0};
  std::string first_error;
};

void dr_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* st = static_cast<produce_state*>(opaque);
  if (m->err) {
    if (st->failed.fetch_add(1) == 0) st->first_error = rd_kafka_err2str(m->err);
    return;
  }
  // Delivery callbacks run on the thread calling poll()/flush() (this program's main thread),
  // so the stats need no lock.
  st->latency.add_us(static_cast<double>(rd_kafka_message_latency(m)));
  st->delivered.fetch_add(1, std::memory_order_relaxed);
  st->bytes.fetch_add(static_cast<long long>(m->len), std::memory_order_relaxed);
}

rd_kafka_conf_t* base_conf(const options& o) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  set(conf, "bootstrap.servers", o.bootstrap);
  set(conf, "client.id", "sh_load");
  rd_kafka_conf_set_log_cb(conf, log_cb);
  for (const auto& [k, v] : o.extra) set(conf, k, v);
  return conf;
}

void create_topic(const options& o, rd_kafka_t* rk) {
  char err[512];
  rd_kafka_NewTopic_t* nt =
      rd_kafka_NewTopic_new(o.topic.c_str(), o.partitions, 1, err, sizeof err);
  if (!nt) die(std::string("NewTopic: ") + err);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(ao, 20000, err, sizeof err);
  rd_kafka_AdminOptions_set_request_timeout(ao, 30000, err, sizeof err);
  rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 40000);
  if (!ev) die("CreateTopics: no answer within 40 s");
  if (rd_kafka_event_error(ev)) {
    die(std::string("CreateTopics: ") + rd_kafka_event_error_string(ev));
  }
  const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev);
  size_t n = 0;
  const rd_kafka_topic_result_t** tr = rd_kafka_CreateTopics_result_topics(res, &n);
  for (size_t i = 0; i < n; ++i) {
    auto e = rd_kafka_topic_result_error(tr[i]);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      die("CreateTopics " + o.topic + ": " + rd_kafka_err2str(e) + " " +
          (rd_kafka_topic_result_error_string(tr[i]) ? rd_kafka_topic_result_error_string(tr[i])
                                                     : ""));
    }
    if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      std::printf("topic %s already exists (partition count as it is)\n", o.topic.c_str());
    }
  }
  rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(ao);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
}

struct produce_result {
  double seconds = 0;
  long long delivered = 0;
  long long failed = 0;
  long long bytes = 0;
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
};

produce_result run_produce(const options& o) {
  produce_state st;
  st.latency.reserve(static_cast<size_t>(o.messages));
  rd_kafka_conf_t* conf = base_conf(o);
  set(conf, "acks", "all");
  set(conf, "linger.ms", std::to_string(o.linger_ms));
  set(conf, "compression.type", o.compression);
  set(conf, "queue.buffering.max.messages", "1000000");
  set(conf, "queue.buffering.max.kbytes", "1048576");
  set(conf, "message.timeout.ms", std::to_string(o.timeout_s * 1000));
  rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
  rd_kafka_conf_set_opaque(conf, &st);
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) die(std::string("producer: ") + err);
  if (!o.mock) create_topic(o, rk);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);

  // Payload: printable, varied bytes (so a codec has realistic, not trivial, work), shared by
  // every message; librdkafka references it without copying (msgflags 0).
  std::vector<char> payload(o.size);
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (auto& c : payload) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>('a' + x % 26);
  }

  auto t0 = bench_clock::now();
  const auto deadline = t0 + std::chrono::seconds(o.timeout_s);
  for (long long i = 0; i < o.messages; ++i) {
    if (o.rate > 0) {
      auto due = t0 + std::chrono::duration_cast<bench_clock::duration>(
                          std::chrono::duration<double>(static_cast<double>(i) / o.rate));
      while (bench_clock::now() < due) rd_kafka_poll(rk, 0), std::this_thread::yield();
    }
    while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, payload.data(), payload.size(), nullptr,
                            0, nullptr) != 0) {
      auto e = rd_kafka_last_error();
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) die(std::string("produce: ") + rd_kafka_err2str(e));
      rd_kafka_poll(rk, 1);
      if (bench_clock::now() > deadline) die("produce: timed out with a full queue");
    }
    if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
  }
  while (rd_kafka_outq_len(rk) > 0 && bench_clock::now() < deadline + std::chrono::seconds(5)) {
    rd_kafka_poll(rk, 50);
  }
  produce_result r;
  r.seconds = sh::bench::seconds_since(t0);
  rd_kafka_topic_destroy(rkt);
  if (rd_kafka_outq_len(rk) > 0) {
    std::fprintf(stderr, "sh_load: %d messages still undelivered at the timeout\n",
                 rd_kafka_outq_len(rk));
  }
  rd_kafka_flush(rk, 1000);
  rd_kafka_destroy(rk);
  r.delivered = st.delivered;
  r.failed = st.failed + (o.messages - st.delivered - st.failed);
  r.bytes = st.bytes;
  r.p50_ms = st.latency.percentile_us(50) / 1e3;
  r.p99_ms = st.latency.percentile_us(99) / 1e3;
  r.p999_ms = st.latency.percentile_us(99.9) / 1e3;
  r.max_ms = st.latency.max_us() / 1e3;
  if (st.failed)
    std::fprintf(stderr, "sh_load: first delivery error: %s\n", st.first_error.c_str());
  return r;
}

// ---- consume ----

struct consume_result {
  double seconds = 0;
  double data_seconds = 0;  // first message to last (without consumer set-up)
  double cpu_seconds = 0;   // this process's user+system CPU during the consume
  long long messages = 0;
  long long bytes = 0;
  bool timed_out = false;
  long long errors = 0;
};

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

consume_result run_consume(const options& o) {
  rd_kafka_conf_t* conf = base_conf(o);
  set(conf, "group.id", "sh_load");  // required by the consumer API; nothing is committed
  set(conf, "enable.auto.commit", "false");
  set(conf, "enable.partition.eof", "true");
  set(conf, "auto.offset.reset", "earliest");
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) die(std::string("consumer: ") + err);
  rd_kafka_poll_set_consumer(rk);

  auto t0 = bench_clock::now();
  const double cpu0 = process_cpu_seconds();
  bench_clock::time_point first{};
  // Partition count from the broker (the topic may have existed with another count).
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  auto e = rd_kafka_metadata(rk, 0, rkt, &md, 20000);
  if (e) die(std::string("consumer metadata: ") + rd_kafka_err2str(e));
  int parts = 0;
  if (md->topic_cnt == 1 && !md->topics[0].err) parts = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  if (parts <= 0) die("consumer: topic " + o.topic + " has no partitions");

  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(parts);
  for (int p = 0; p < parts; ++p) {
    rd_kafka_topic_partition_list_add(list, o.topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  e = rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e) die(std::string("assign: ") + rd_kafka_err2str(e));

  consume_result r;
  std::vector<bool> at_eof(static_cast<size_t>(parts), false);
  int eofs = 0;
  const auto deadline = t0 + std::chrono::seconds(o.timeout_s);
  auto last = t0;
  while (eofs < parts) {
    if (bench_clock::now() > deadline) {
      r.timed_out = true;
      break;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      auto p = static_cast<size_t>(m->partition);
      if (p < at_eof.size() && !at_eof[p]) at_eof[p] = true, ++eofs;
    } else if (m->err) {
      if (r.errors++ < 5) {
        std::fprintf(stderr, "sh_load: consume error: %s\n", rd_kafka_message_errstr(m));
      }
    } else {
      auto p = static_cast<size_t>(m->partition);
      if (p < at_eof.size() && at_eof[p]) at_eof[p] = false, --eofs;
      if (r.messages++ == 0) first = bench_clock::now();
      r.bytes += static_cast<long long>(m->len);
      last = bench_clock::now();
    }
    rd_kafka_message_destroy(m);
  }
  r.seconds = std::chrono::duration<double>(last - t0).count();
  if (r.messages > 0) r.data_seconds = std::chrono::duration<double>(last - first).count();
  r.cpu_seconds = process_cpu_seconds() - cpu0;
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    auto take = [&]() -> std::string {
      ++i;
      return v;
    };
    if (a == "--mock") {
      o.mock = true;
    } else if (a == "--no-consume") {
      o.consume = false;
    } else if (a == "--consume-only") {
      o.produce = false;
    } else if (!v) {
      return usage();
    } else if (a == "--bootstrap") {
      o.bootstrap = take();
    } else if (a == "--topic") {
      o.topic = take();
    } else if (a == "--messages") {
      o.messages = std::atoll(take().c_str());
    } else if (a == "--size") {
      o.size = static_cast<size_t>(std::atoll(take().c_str()));
    } else if (a == "--partitions") {
      o.partitions = std::atoi(take().c_str());
    } else if (a == "--rate") {
      o.rate = std::atof(take().c_str());
    } else if (a == "--compression") {
      o.compression = take();
    } else if (a == "--linger-ms") {
      o.linger_ms = std::atoi(take().c_str());
    } else if (a == "--timeout-s") {
      o.timeout_s = std::atoi(take().c_str());
    } else if (a == "--label") {
      o.label = take();
    } else if (a == "-X") {
      std::string kv = take();
      auto eq = kv.find('=');
      if (eq == std::string::npos) return usage();
      o.extra.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else {
      return usage();
    }
  }
  if (o.mock == !o.bootstrap.empty() || o.messages <= 0 || o.partitions <= 0 || o.timeout_s <= 0) {
    return usage();
  }
  if (o.label.empty()) o.label = o.mock ? "mock" : "broker";

  // The mock cluster lives on its own client handle, so its threads are separate from the
  // producer's and consumer's, as a broker's would be.
  rd_kafka_t* mock_rk = nullptr;
  rd_kafka_mock_cluster_t* mcluster = nullptr;
  if (o.mock) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    set(conf, "log_level", "3");
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!mock_rk) die(std::string("mock handle: ") + err);
    mcluster = rd_kafka_mock_cluster_new(mock_rk, 1);
    if (!mcluster) die("rd_kafka_mock_cluster_new failed");
    o.bootstrap = rd_kafka_mock_cluster_bootstraps(mcluster);
    if (auto e = rd_kafka_mock_topic_create(mcluster, o.topic.c_str(), o.partitions, 1)) {
      die(std::string("mock topic: ") + rd_kafka_err2str(e));
    }
  }

  std::printf("%s: %s, topic %s (%d partitions), %lld x %zu B, acks=all, linger.ms=%d, %s%s\n",
              o.label.c_str(), o.bootstrap.c_str(), o.topic.c_str(), o.partitions, o.messages,
              o.size, o.linger_ms, o.compression.c_str(),
              o.rate > 0
                  ? (", rate " + std::to_string(static_cast<long long>(o.rate)) + " msg/s").c_str()
                  : "");
  std::fflush(stdout);

  produce_result pr;
  if (o.produce) {
    pr = run_produce(o);
  } else {
    pr.delivered = o.messages;  // what the earlier run left in the topic
    pr.seconds = 1;
  }
  const double p_mbps = o.produce ? static_cast<double>(pr.bytes) / 1e6 / pr.seconds : 0;
  const double p_msgps = o.produce ? static_cast<double>(pr.delivered) / pr.seconds : 0;
  if (o.produce)
    std::printf(
        "%s produce: %lld msgs in %.2f s: %.1f MB/s, %.0f msgs/s; latency p50 %.2f ms, p99 %.2f "
        "ms, "
        "p99.9 %.2f ms, max %.2f ms; failed %lld\n",
        o.label.c_str(), pr.delivered, pr.seconds, p_mbps, p_msgps, pr.p50_ms, pr.p99_ms,
        pr.p999_ms, pr.max_ms, pr.failed);
  std::fflush(stdout);

  consume_result cr;
  double c_mbps = 0, c_msgps = 0;
  bool ok = pr.failed == 0;
  if (o.consume && pr.delivered > 0) {
    cr = run_consume(o);
    if (cr.seconds > 0) {
      c_mbps = static_cast<double>(cr.bytes) / 1e6 / cr.seconds;
      c_msgps = static_cast<double>(cr.messages) / cr.seconds;
    }
    std::printf(
        "%s consume: %lld msgs in %.2f s: %.1f MB/s, %.0f msgs/s (first to last message %.2f s: "
        "%.1f MB/s; client CPU %.2f s)%s%s\n",
        o.label.c_str(), cr.messages, cr.seconds, c_mbps, c_msgps, cr.data_seconds,
        cr.data_seconds > 0 ? static_cast<double>(cr.bytes) / 1e6 / cr.data_seconds : 0.0,
        cr.cpu_seconds, cr.timed_out ? " (TIMED OUT)" : "",
        o.mock && cr.messages < pr.delivered
            ? " (the mock keeps only ~5 MiB per partition: older data was dropped)"
            : "");
    ok &= !cr.timed_out;
    // Against a real broker every delivered message must come back (the topic may hold more
    // from earlier runs).
    if (!o.mock && cr.messages < pr.delivered) {
      std::fprintf(stderr, "sh_load: consumed %lld < produced %lld\n", cr.messages, pr.delivered);
      ok = false;
    }
  }
  std::printf(
      "RESULT label=%s produce_MBps=%.2f produce_msgps=%.0f p50_ms=%.3f p99_ms=%.3f "
      "p999_ms=%.3f consume_MBps=%.2f consume_msgps=%.0f consumed=%lld produced=%lld "
      "errors=%lld\n",
      o.label.c_str(), p_mbps, p_msgps, pr.p50_ms, pr.p99_ms, pr.p999_ms, c_mbps, c_msgps,
      cr.messages, pr.delivered, pr.failed + cr.errors);
  std::fflush(stdout);

  if (mcluster) rd_kafka_mock_cluster_destroy(mcluster);
  if (mock_rk) rd_kafka_destroy(mock_rk);
  return ok ? 0 : 1;
}
