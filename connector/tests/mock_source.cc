// sh_mirror_mock_source: librdkafka's mock cluster loaded with the mirror test data set, the
// "live Kafka" source for tests/mirror/*.sh. Prints its bootstrap servers on stdout once the data
// is produced, then serves until SIGTERM or SIGINT.
//
//   sh_mirror_mock_source [--topic NAME] [--partitions N] [--rounds N] [--bulk N]
//   sh_mirror_mock_source --dump BOOTSTRAP TOPIC
//
// --dump reads every partition of TOPIC on any Kafka-protocol server (the mock, or the
// StreamHouse broker) to its end and prints one line per record, exact where kcat is not (null
// and empty keys, values and header values differ):
//   <partition> <offset> <timestamp type> <timestamp> <key> <value> <headers>
// with bytes as hex, "-" for null, "" as "''", and headers as name=value joined by ','.
//
// Per codec (none, gzip, snappy, lz4, zstd) and partition, --rounds rounds of: a keyed record
// with headers (duplicate keys, an empty and a null header value), a null-key record, an empty-key
// record with an empty value, and a tombstone; explicit create timestamps. Then --bulk keyed
// records spread over the partitions (for kill -9 tests). A second topic "<NAME>-ignored" is
// produced to but must not be mirrored.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

bool produce_all(const char* bootstraps, const char* codec, const std::string& topic,
                 int partitions, int rounds, int bulk, int64_t* ts) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof(err)) ||
      rd_kafka_conf_set(conf, "compression.codec", codec, err, sizeof(err)) ||
      rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof(err))) {
    std::fprintf(stderr, "conf: %s\n", err);
    return false;
  }
  rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (!p) {
    std::fprintf(stderr, "producer: %s\n", err);
    return false;
  }
  auto send = [&](const std::string& t, int part, const char* key, size_t key_len,
                  const char* value, size_t value_len, bool headers) {
    rd_kafka_headers_t* h = nullptr;
    if (headers) {
      h = rd_kafka_headers_new(4);
      rd_kafka_header_add(h, "h1", -1, "v1", -1);
      rd_kafka_header_add(h, "dup", -1, "a", -1);
      rd_kafka_header_add(h, "dup", -1, "b", -1);
      rd_kafka_header_add(h, "empty", -1, "", 0);
      rd_kafka_header_add(h, "null", -1, nullptr, 0);
    }
    rd_kafka_resp_err_t e;
    do {
      e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(t.c_str()), RD_KAFKA_V_PARTITION(part),
                            RD_KAFKA_V_KEY(key, key_len),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value), value_len),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP((*ts)++),
                            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(p, 50);
    } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    if (e) {
      std::fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
      if (h) rd_kafka_headers_destroy(h);
    }
  };
  for (int r = 0; r < rounds; ++r) {
    for (int part = 0; part < partitions; ++part) {
      std::string k = std::string("key-") + codec + "-" + std::to_string(r);
      std::string v = std::string("value-") + codec + "-" + std::to_string(r) + "-" +
                      std::string(static_cast<size_t>(r % 7) * 10, 'x');
      send(topic, part, k.data(), k.size(), v.data(), v.size(), true);
      send(topic, part, nullptr, 0, v.data(), v.size(), false);
      send(topic, part, "", 0, "", 0, false);
      send(topic, part, k.data(), k.size(), nullptr, 0, false);
      send(topic + "-ignored", part % 2, k.data(), k.size(), v.data(), v.size(), false);
    }
  }
  for (int i = 0; i < bulk; ++i) {
    std::string k = "bulk-" + std::to_string(i);
    std::string v = "bulk-value-" + std::to_string(i) + std::string(100, 'b');
    send(topic, i % partitions, k.data(), k.size(), v.data(), v.size(), (i % 3) == 0);
    if ((i & 1023) == 0) rd_kafka_poll(p, 0);
  }
  rd_kafka_flush(p, 30000);
  const bool ok = rd_kafka_outq_len(p) == 0;
  rd_kafka_destroy(p);
  return ok;
}

std::string hex_or_null(const void* p, size_t n) {
  if (!p) return "-";
  if (n == 0) return "''";
  static const char* d = "0123456789abcdef";
  std::string out;
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    out += d[b[i] >> 4];
    out += d[b[i] & 15];
  }
  return out;
}

int dump(const char* bootstrap, const std::string& topic) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) ||
      rd_kafka_conf_set(conf, "group.id", "sh-mirror-dump", err, sizeof(err)) ||
      rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err)) ||
      rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err))) {
    std::fprintf(stderr, "conf: %s\n", err);
    return 1;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!rk) return 1;
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1 || md->topics[0].err) {
    std::fprintf(stderr, "no metadata for %s\n", topic.c_str());
    return 1;
  }
  const int n = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(n);
  for (int p = 0; p < n; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  int eof = 0;
  int idle = 0;
  while (eof < n && idle < 300) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) {
      ++idle;
      continue;
    }
    idle = 0;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++eof;
    } else if (m->err) {
      std::fprintf(stderr, "consume: %s\n", rd_kafka_message_errstr(m));
    } else {
      rd_kafka_timestamp_type_t tt;
      const int64_t ts = rd_kafka_message_timestamp(m, &tt);
      std::string hs;
      rd_kafka_headers_t* h = nullptr;
      if (!rd_kafka_message_headers(m, &h) && h) {
        const char* name;
        const void* val;
        size_t size;
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &size); ++i) {
          if (i) hs += ',';
          hs += std::string(name) + "=" + hex_or_null(val, size);
        }
      }
      std::printf("%d %lld %d %lld %s %s %s\n", static_cast<int>(m->partition),
                  static_cast<long long>(m->offset), static_cast<int>(tt),
                  static_cast<long long>(ts), hex_or_null(m->key, m->key_len).c_str(),
                  hex_or_null(m->payload, m->len).c_str(), hs.empty() ? "-" : hs.c_str());
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  if (eof < n) {
    std::fprintf(stderr, "dump: only %d of %d partitions reached their end\n", eof, n);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && !std::strcmp(argv[1], "--dump")) return dump(argv[2], argv[3]);
  std::string topic = "mirrored";
  int partitions = 3;
  int rounds = 20;
  int bulk = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--topic") && i + 1 < argc) {
      topic = argv[++i];
    } else if (!std::strcmp(argv[i], "--partitions") && i + 1 < argc) {
      partitions = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--bulk") && i + 1 < argc) {
      bulk = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--topic NAME] [--partitions N] [--rounds N] [--bulk N]\n",
                   argv[0]);
      return 2;
    }
  }
  if (partitions < 1 || rounds < 0 || bulk < 0) return 2;
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof(err));
  if (!rk) return 1;
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, 1);
  if (!cluster) return 1;
  const char* boot = rd_kafka_mock_cluster_bootstraps(cluster);
  if (rd_kafka_mock_topic_create(cluster, topic.c_str(), partitions, 1) ||
      rd_kafka_mock_topic_create(cluster, (topic + "-ignored").c_str(), 2, 1)) {
    std::fprintf(stderr, "topic create failed\n");
    return 1;
  }
  int64_t ts = 1700000000000;
  for (const char* codec : {"none", "gzip", "snappy", "lz4", "zstd"}) {
    if (!produce_all(boot, codec, topic, partitions, rounds, 0, &ts)) return 1;
  }
  if (bulk > 0 && !produce_all(boot, "lz4", topic, partitions, 0, bulk, &ts)) return 1;
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::printf("%s\n", boot);
  std::fflush(stdout);
  while (!stop_requested) rd_kafka_poll(rk, 100);
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  return 0;
}
