#pragma once
// The broker process: opens the metadata and object stores, serves the Kafka protocol on the
// configured listeners and shuts down gracefully on SIGTERM/SIGINT.
#include "sh/broker/config.h"

namespace sh::broker {

// Blocks until shutdown. Returns the process exit code (0 after a graceful shutdown).
int run_broker(const broker_config& cfg);

}  // namespace sh::broker
