// sh_mirror_mock_source: librdkafka's mock cluster loaded with the mirror test data set, the
// "live Kafka" source for tests/mirror/*.sh. Prints its bootstrap servers on stdout once the data
// is produced, then serves until SIGTERM or SIGINT.
//
//   sh_mirror_mock_source [--topic NAME] [--partitions N] [--rounds N] [--bulk N]
//                         [--markers] [--trickle-ms MS] [--value-size BYTES] [--bulk-codec
//                         none|gzip|snappy|lz4|zstd]
//   sh_mirror_mock_source --dump BOOTSTRAP TOPIC
//   sh_mirror_mock_source --commit BOOTSTRAP GROUP TOPIC P:OFFSET[,P:OFFSET...]
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
// records spread over the partitions (for kill -9 tests). --markers puts ABORT control batches
// (transaction markers) after each codec's records: offsets no consumer sees, gaps to preserve. A
// second topic "<NAME>-ignored" is produced to but must not be mirrored.
#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sh/common/crc32c.h"

namespace {

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

bool produce_all(const char* bootstraps, const char* codec, const std::string& topic,
                 int partitions, int rounds, int bulk, int64_t* ts, size_t value_size = 0) {
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
    std::string v = "bulk-value-" + std::to_string(i);
    v.resize(value_size ? value_size : v.size() + 100, 'b');
    send(topic, i % partitions, k.data(), k.size(), v.data(), v.size(), (i % 3) == 0);
    if ((i & 1023) == 0) rd_kafka_poll(p, 0);
  }
  rd_kafka_flush(p, 30000);
  const bool ok = rd_kafka_outq_len(p) == 0;
  rd_kafka_destroy(p);
  return ok;
}

// ---- transaction markers (--markers) ----
// librdkafka 2.0.2's mock writes no control batches for EndTxn, so a committed or aborted
// transaction leaves no gap there. A raw Produce of an ABORT control batch makes one: a
// read_committed (or any) consumer never sees the marker's offset, exactly as after a real
// aborted transaction's marker.
void put_be(std::vector<uint8_t>& b, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_varint(std::vector<uint8_t>& b, int64_t v) {
  uint64_t z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  while (z >= 0x80) {
    b.push_back(static_cast<uint8_t>(z | 0x80));
    z >>= 7;
  }
  b.push_back(static_cast<uint8_t>(z));
}

std::vector<uint8_t> abort_marker_batch(int64_t ts) {
  std::vector<uint8_t> rec;
  rec.push_back(0);    // attributes
  put_varint(rec, 0);  // timestamp delta
  put_varint(rec, 0);  // offset delta
  put_varint(rec, 4);  // key: version 0, type 0 (ABORT)
  put_be(rec, 0, 2);
  put_be(rec, 0, 2);
  put_varint(rec, 6);  // value: version 0, coordinator epoch 0
  put_be(rec, 0, 2);
  put_be(rec, 0, 4);
  put_varint(rec, 0);         // headers
  std::vector<uint8_t> body;  // from attributes on: what the CRC covers
  put_be(body, 0x30, 2);      // control | transactional
  put_be(body, 0, 4);         // last offset delta
  put_be(body, static_cast<uint64_t>(ts), 8);
  put_be(body, static_cast<uint64_t>(ts), 8);
  put_be(body, static_cast<uint64_t>(-1), 8);  // producer id: none (the mock checks known ids)
  put_be(body, static_cast<uint64_t>(-1), 2);
  put_be(body, static_cast<uint64_t>(-1), 4);
  put_be(body, 1, 4);  // one record
  std::vector<uint8_t> len;
  put_varint(len, static_cast<int64_t>(rec.size()));
  body.insert(body.end(), len.begin(), len.end());
  body.insert(body.end(), rec.begin(), rec.end());
  std::vector<uint8_t> b;
  put_be(b, 0, 8);                                               // base offset
  put_be(b, static_cast<uint64_t>(4 + 1 + 4 + body.size()), 4);  // batch length
  put_be(b, static_cast<uint64_t>(-1), 4);                       // leader epoch
  b.push_back(2);                                                // magic
  put_be(b, sh::crc32c(body), 4);
  b.insert(b.end(), body.begin(), body.end());
  return b;
}

// One Produce v3 request carrying an abort marker into topic/partition; true on success.
bool produce_marker(const char* bootstrap, const std::string& topic, int partition, int64_t ts) {
  std::string host = bootstrap;
  const auto colon = host.rfind(':');
  const std::string port = host.substr(colon + 1);
  host.resize(colon);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return false;
  const int fd = socket(res->ai_family, SOCK_STREAM, 0);
  const bool connected = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0;
  freeaddrinfo(res);
  if (!connected) return false;
  std::vector<uint8_t> req;
  put_be(req, 0, 2);  // Produce
  put_be(req, 3, 2);  // v3
  put_be(req, 7, 4);  // correlation id
  put_be(req, 4, 2);
  req.insert(req.end(), {'m', 'o', 'c', 'k'});
  put_be(req, static_cast<uint64_t>(-1), 2);  // transactional id: null
  put_be(req, 1, 2);                          // acks
  put_be(req, 10000, 4);
  put_be(req, 1, 4);
  put_be(req, topic.size(), 2);
  req.insert(req.end(), topic.begin(), topic.end());
  put_be(req, 1, 4);
  put_be(req, static_cast<uint64_t>(partition), 4);
  const auto batch = abort_marker_batch(ts);
  put_be(req, batch.size(), 4);
  req.insert(req.end(), batch.begin(), batch.end());
  std::vector<uint8_t> frame;
  put_be(frame, req.size(), 4);
  frame.insert(frame.end(), req.begin(), req.end());
  bool ok = write(fd, frame.data(), frame.size()) == static_cast<ssize_t>(frame.size());
  uint8_t resp[512];
  size_t got = 0;
  while (ok && got < 4) {
    const ssize_t n = read(fd, resp + got, sizeof(resp) - got);
    if (n <= 0)
      ok = false;
    else
      got += static_cast<size_t>(n);
  }
  const size_t want = ok ? 4 + ((size_t{resp[0]} << 24) | (size_t{resp[1]} << 16) |
                                (size_t{resp[2]} << 8) | resp[3])
                         : 0;
  while (ok && got < want && got < sizeof(resp)) {
    const ssize_t n = read(fd, resp + got, sizeof(resp) - got);
    if (n <= 0)
      ok = false;
    else
      got += static_cast<size_t>(n);
  }
  close(fd);
  // corr(4) topics(4) name(2+n) partitions(4) index(4) error(2)
  const size_t err_at = 4 + 4 + 4 + 2 + topic.size() + 4 + 4;
  if (!ok || got < err_at + 2) return false;
  const int err = (resp[err_at] << 8) | resp[err_at + 1];
  if (err != 0) std::fprintf(stderr, "marker produce: error %d\n", err);
  return err == 0;
}

// --trickle-ms: after start-up, keeps producing (about 2000 records/s over the partitions, values
// of --value-size bytes if given) for that long, like a live source, then prints "trickle done"
// as the second stdout line.
bool trickle(const char* bootstraps, const std::string& topic, int partitions, int ms, int64_t* ts,
             size_t value_size) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof(err)) ||
      rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err))) {
    return false;
  }
  rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (!p) return false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  int i = 0;
  while (std::chrono::steady_clock::now() < end && !stop_requested) {
    for (int k = 0; k < 20; ++k, ++i) {
      const std::string key = "live-" + std::to_string(i);
      std::string v = "live-value-" + std::to_string(i) + std::string(64, 'l');
      if (value_size) v.resize(value_size, 'l');
      rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(i % partitions),
                        RD_KAFKA_V_KEY(key.data(), key.size()),
                        RD_KAFKA_V_VALUE(const_cast<char*>(v.data()), v.size()),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP((*ts)++),
                        RD_KAFKA_V_END);
    }
    rd_kafka_poll(p, 10);
  }
  rd_kafka_flush(p, 30000);
  rd_kafka_destroy(p);
  std::printf("trickle done\n");
  std::fflush(stdout);
  return true;
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

// Commits offsets for GROUP (a simple consumer commit, no membership), "P:OFFSET,..." on TOPIC.
int commit_offsets(const char* bootstrap, const char* group, const char* topic, const char* spec) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) ||
      rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err))) {
    std::fprintf(stderr, "conf: %s\n", err);
    return 1;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!rk) return 1;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(4);
  std::string s = spec;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    const std::string item = s.substr(pos, comma - pos);
    const size_t colon = item.find(':');
    if (colon == std::string::npos) return 2;
    rd_kafka_topic_partition_list_add(list, topic, std::atoi(item.substr(0, colon).c_str()))
        ->offset = std::atoll(item.substr(colon + 1).c_str());
    pos = comma + 1;
  }
  const rd_kafka_resp_err_t e = rd_kafka_commit(rk, list, 0);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  if (e) {
    std::fprintf(stderr, "commit: %s\n", rd_kafka_err2str(e));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && !std::strcmp(argv[1], "--dump")) return dump(argv[2], argv[3]);
  if (argc == 6 && !std::strcmp(argv[1], "--commit")) {
    return commit_offsets(argv[2], argv[3], argv[4], argv[5]);
  }
  std::string topic = "mirrored";
  int partitions = 3;
  int rounds = 20;
  int bulk = 0;
  bool markers = false;
  int trickle_ms = 0;
  size_t value_size = 0;
  const char* bulk_codec = "lz4";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--topic") && i + 1 < argc) {
      topic = argv[++i];
    } else if (!std::strcmp(argv[i], "--partitions") && i + 1 < argc) {
      partitions = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--bulk") && i + 1 < argc) {
      bulk = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--trickle-ms") && i + 1 < argc) {
      trickle_ms = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--markers")) {
      markers = true;
    } else if (!std::strcmp(argv[i], "--value-size") && i + 1 < argc) {
      value_size = static_cast<size_t>(std::atol(argv[++i]));
    } else if (!std::strcmp(argv[i], "--bulk-codec") && i + 1 < argc) {
      bulk_codec = argv[++i];
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
    // Markers between the codecs' records (gaps inside the log) and, for lz4, two in a row.
    for (int part = 0; markers && part < partitions; ++part) {
      for (int k = 0; k < (std::strcmp(codec, "lz4") ? 1 : 2); ++k) {
        if (!produce_marker(boot, topic, part, ts++)) return 1;
      }
    }
  }
  if (bulk > 0 && !produce_all(boot, bulk_codec, topic, partitions, 0, bulk, &ts, value_size)) {
    return 1;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::printf("%s\n", boot);
  std::fflush(stdout);
  if (trickle_ms > 0 && !trickle(boot, topic, partitions, trickle_ms, &ts, value_size)) return 1;
  while (!stop_requested) rd_kafka_poll(rk, 100);
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  return 0;
}
