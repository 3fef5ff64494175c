// sh_mock_kafka: librdkafka's in-process mock cluster as a stand-in "real Kafka" for checking the
// integration test harnesses themselves (tests/integration/*). It prints its bootstrap servers on
// the first line of stdout and serves until SIGTERM or SIGINT.
//
//   sh_mock_kafka [--partitions N] [--topic NAME[:PARTITIONS]]...
//
// The mock auto-creates topics (with 4 partitions); --topic pre-creates one with PARTITIONS, else
// N (default 4), partitions, because the mock has no CreateTopics API. It keeps data in memory
// only, so it cannot check restarts.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

volatile std::sig_atomic_t stop_requested = 0;

void on_signal(int) { stop_requested = 1; }

}  // namespace

int main(int argc, char** argv) {
  int partitions = 4;
  std::vector<std::pair<std::string, int>> topics;  // partitions 0 = the --partitions value
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--partitions") == 0 && i + 1 < argc) {
      partitions = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
      std::string spec = argv[++i];
      std::size_t colon = spec.rfind(':');
      if (colon == std::string::npos) {
        topics.emplace_back(spec, 0);
      } else {
        topics.emplace_back(spec.substr(0, colon), std::atoi(spec.c_str() + colon + 1));
      }
    } else {
      std::fprintf(stderr, "usage: %s [--partitions N] [--topic NAME[:PARTITIONS]]...\n", argv[0]);
      return 2;
    }
  }
  if (partitions < 1) {
    std::fprintf(stderr, "--partitions must be at least 1\n");
    return 2;
  }

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The mock cluster needs an rd_kafka_t for its book keeping; a producer that sends nothing.
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    std::fprintf(stderr, "rd_kafka_new: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, 1);
  if (cluster == nullptr) {
    std::fprintf(stderr, "rd_kafka_mock_cluster_new failed\n");
    rd_kafka_destroy(rk);
    return 1;
  }
  for (const auto& [topic, count] : topics) {
    rd_kafka_resp_err_t e =
        rd_kafka_mock_topic_create(cluster, topic.c_str(), count > 0 ? count : partitions, 1);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "creating %s: %s\n", topic.c_str(), rd_kafka_err2str(e));
      rd_kafka_mock_cluster_destroy(cluster);
      rd_kafka_destroy(rk);
      return 1;
    }
  }

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::printf("%s\n", rd_kafka_mock_cluster_bootstraps(cluster));
  std::fflush(stdout);
  std::fprintf(stderr, "mock cluster up at %s\n", rd_kafka_mock_cluster_bootstraps(cluster));
  while (stop_requested == 0) {
    rd_kafka_poll(rk, 100);
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  std::fprintf(stderr, "mock cluster stopped\n");
  return 0;
}
