// streamhouse: one binary, subcommands. Thin: everything lives in the module libraries.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <malloc.h>
#include <map>
#include <string>
#include <thread>

#include "sh/analytics/export.h"
#include "sh/broker/broker.h"
#include "sh/broker/config.h"
#include "sh/connector/mirror.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: streamhouse <command> [options]\n"
               "\n"
               "commands:\n"
               "  broker --config FILE [--set key=value]...\n"
               "                         run a Kafka-compatible broker; STREAMHOUSE_<KEY> env\n"
               "                         vars (e.g. STREAMHOUSE_NODE_ID) and --set override FILE\n"
               "  export --config FILE --topic T --format jsonl|csv|parquet --output PATH ...\n"
               "                         read a topic from the archive into a file (see\n"
               "                         streamhouse export --help)\n"
               "  version                print the version\n"
               "\n"
               "%s",
               sh::broker::config_help_text().c_str());
}

int run_broker_command(int argc, char** argv) {
  std::string config_path;
  std::map<std::string, std::string> overrides;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    }
    if (!std::strcmp(argv[i], "--config") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--set") && i + 1 < argc) {
      const std::string kv = argv[++i];
      const auto eq = kv.find('=');
      if (eq == std::string::npos) {
        std::fprintf(stderr, "streamhouse broker: --set expects key=value, got '%s'\n", kv.c_str());
        return 2;
      }
      overrides[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else {
      std::fprintf(stderr, "streamhouse broker: unexpected argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "streamhouse broker: --config FILE is required (see --help)\n");
    return 2;
  }
  auto cfg = sh::broker::load_broker_config(config_path, overrides);
  if (!cfg) {
    std::fprintf(stderr, "streamhouse broker: %s\n", cfg.message().c_str());
    return 2;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("streamhouse"));
  spdlog::set_level(spdlog::level::from_str(cfg->log_level));
  // mirror.config: the mirror runs on its own thread beside the broker; the broker's SIGTERM
  // handling ends run_broker, and the mirror then flushes, commits and stops.
  std::atomic<bool> mirror_stop{false};
  std::thread mirror_thread;
  sh::connector::mirror_config mirror_cfg;
  if (auto it = cfg->raw.find("mirror.config"); it != cfg->raw.end() && !it->second.empty()) {
    auto mc = sh::connector::load_mirror_config(it->second);
    if (!mc) {
      std::fprintf(stderr, "streamhouse broker: mirror.config: %s\n", mc.message().c_str());
      return 2;
    }
    mirror_cfg = std::move(*mc);
    // A mirror that fails (its stores or source unreachable, its membership lost) starts again
    // after a pause, as a restarted `streamhouse mirror` would; a bad configuration does not.
    mirror_thread = std::thread([&] {
      while (!mirror_stop.load()) {
        auto r = sh::connector::run_mirror(mirror_cfg, mirror_stop);
        if (r) break;
        spdlog::error("mirror {}: {}", mirror_cfg.name, r.message());
        if (r.code() == sh::connector::errc::invalid_config) break;
        for (int i = 0; i < 50 && !mirror_stop.load(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (!mirror_stop.load()) spdlog::info("mirror {}: starting again", mirror_cfg.name);
      }
    });
  }
  // Keep freed large buffers (request frames, ingest objects) in the heap for reuse instead of
  // handing them back to the kernel after every produce request: fresh pages cost a fault and
  // zeroing each time (and a host fault on VMs with free page reporting). On the 2-core bench
  // VM this alone took embedded produce from ~200-400 to ~360-545 MB/s (bench/README.md).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  const int rc = sh::broker::run_broker(*cfg);
  mirror_stop.store(true);
  if (mirror_thread.joinable()) mirror_thread.join();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "broker") return run_broker_command(argc, argv);
  if (cmd == "mirror") return sh::connector::run_mirror_command(argc, argv);
  if (cmd == "export") return sh::analytics::run_export_command(argc, argv);
  if (cmd == "version" || cmd == "--version") {
    std::printf("streamhouse 0.1.0\n");
    return 0;
  }
  std::fprintf(stderr, "streamhouse: unknown command '%s'\n\n", cmd.c_str());
  usage(stderr);
  return 2;
}
