#pragma once
// Prometheus metrics: a registry of labelled counters and gauges rendered in the text exposition
// format (version 0.0.4), and a tiny HTTP/1.1 listener answering GET /metrics.
//
// Threading: every registry method is thread-safe (one mutex); the listener serves from its own
// thread and only calls registry::render().
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sh/common/result.h"

namespace sh::metrics {

enum class errc {
  ok = 0,
  invalid_argument,  // bad listener address, bad metric or label name
  io_error,          // socket, bind, listen
};

template <class T>
using mresult = sh::result<T, errc>;

enum class metric_type { counter, gauge };

// Label name -> value, e.g. {{"topic", "orders"}, {"partition", "3"}}. Ordered, so one set of
// labels always renders the same way.
using labels = std::map<std::string, std::string>;

class registry {
 public:
  // Declares a family: its HELP text and TYPE. Errors: invalid_argument (a name not matching
  // [a-zA-Z_:][a-zA-Z0-9_:]*, or redeclared with another type).
  mresult<void> declare(const std::string& name, metric_type type, const std::string& help);
  // Sets a gauge (or a counter, for totals kept elsewhere) to `value`. An undeclared family is
  // declared as a gauge without help.
  void set(const std::string& name, const labels& l, double value);
  // Adds `delta` (>= 0 for counters) to a series, creating it at 0.
  void add(const std::string& name, const labels& l, double delta);
  // Current value, or `fallback` for an unknown series (for tests and log lines).
  double value(const std::string& name, const labels& l, double fallback = 0) const;
  // Drops one series (a partition no longer owned), or every series of `name` when `l` is
  // empty.
  void remove(const std::string& name, const labels& l = {});
  // The text exposition format: "# HELP", "# TYPE" and one line per series, families in name
  // order. Label values are escaped (\\, \", \n).
  std::string render() const;

 private:
  struct family {
    metric_type type = metric_type::gauge;
    std::string help;
    std::map<labels, double> series;
  };
  mutable std::mutex _mu;
  std::map<std::string, family> _families;
};

// Serves GET /metrics (any query string) with registry.render(); 404 for other paths, 405 for
// other methods. One request per connection (Connection: close), requests up to 8 KiB, 2 s to
// send one. The registry must outlive the listener.
class http_listener {
 public:
  // `host_port`: "host:port" or ":port" (all interfaces); port 0 picks a free one (see port()).
  // Errors: invalid_argument, io_error.
  static mresult<std::unique_ptr<http_listener>> start(const std::string& host_port,
                                                       const registry& reg);
  ~http_listener();  // stop()
  http_listener(const http_listener&) = delete;
  http_listener& operator=(const http_listener&) = delete;

  int port() const { return _port; }
  // Closes the socket and joins the thread; idempotent.
  void stop();

 private:
  http_listener(int fd, int port, const registry& reg);
  void serve();

  int _fd = -1;
  int _wake[2] = {-1, -1};  // a pipe; stop() writes to it to end the poll loop
  int _port = 0;
  const registry& _reg;
  std::thread _thread;
};

// "1.5", "3", "NaN", "+Inf": a value in the exposition format.
std::string format_value(double v);

}  // namespace sh::metrics
