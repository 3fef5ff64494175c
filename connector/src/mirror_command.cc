// `streamhouse mirror --config FILE`: argument parsing and signal handling around run_mirror.
#include <malloc.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstring>

#include "sh/connector/mirror.h"

namespace sh::connector {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) { g_stop.store(true); }

void mirror_usage(FILE* out) {
  std::fprintf(out,
               "usage: streamhouse mirror --config FILE\n"
               "       streamhouse mirror verify --config FILE [--topic T]\n"
               "  copies live Kafka topics into the archive with offsets preserved\n\n%s",
               mirror_config_help_text().c_str());
}

}  // namespace

int run_mirror_command(int argc, char** argv) {
  // First, so that a stop request during start-up still ends in an orderly exit.
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::string config_path;
  std::string topic;
  bool verify = false;
  for (int i = 2; i < argc; ++i) {
    if (i == 2 && !std::strcmp(argv[i], "verify")) {
      verify = true;
      continue;
    }
    if (verify && !std::strcmp(argv[i], "--topic") && i + 1 < argc) {
      topic = argv[++i];
      continue;
    }
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      mirror_usage(stdout);
      return 0;
    }
    if (!std::strcmp(argv[i], "--config") && i + 1 < argc) {
      config_path = argv[++i];
    } else {
      std::fprintf(stderr, "streamhouse mirror: unexpected argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "streamhouse mirror: --config FILE is required (see --help)\n");
    return 2;
  }
  auto cfg = load_mirror_config(config_path);
  if (!cfg) {
    std::fprintf(stderr, "streamhouse mirror: %s\n", cfg.message().c_str());
    return 2;
  }
  if (!spdlog::get("streamhouse")) {
    spdlog::set_default_logger(spdlog::stderr_color_mt("streamhouse"));
  }
  spdlog::set_level(spdlog::level::from_str(cfg->log_level));
  if (verify) {
    auto same = verify_mirror(*cfg, topic, stdout);
    if (!same) {
      std::fprintf(stderr, "streamhouse mirror verify: %s\n", same.message().c_str());
      return 2;
    }
    return *same ? 0 : 1;
  }
  // Flush buffers are several MiB: by default glibc maps and unmaps each one, and the page
  // faults of fresh mappings cost more than encoding. Keep them on the heap and keep the heap.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  auto r = run_mirror(*cfg, g_stop);
  if (!r) {
    spdlog::error("mirror {}: {}", cfg->name, r.message());
    return 1;
  }
  return 0;
}

}  // namespace sh::connector
