#include "sh/metrics/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace sh::metrics {
namespace {

bool valid_name(const std::string& n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string escape_label(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void write_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // the scraper went away; nothing to report to
    }
    done += static_cast<size_t>(n);
  }
}

std::string response(int status, const char* reason, const std::string& type,
                     const std::string& body) {
  char head[256];
  std::snprintf(head, sizeof(head),
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: "
                "close\r\n\r\n",
                status, reason, type.c_str(), body.size());
  return head + body;
}

}  // namespace

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

mresult<void> registry::declare(const std::string& name, metric_type type,
                                const std::string& help) {
  if (!valid_name(name))
    return make_error(errc::invalid_argument, "bad metric name '" + name + "'");
  std::lock_guard lk(_mu);
  auto [it, fresh] = _families.try_emplace(name);
  if (!fresh && !it->second.series.empty() && it->second.type != type) {
    return make_error(errc::invalid_argument, "metric " + name + " redeclared with another type");
  }
  it->second.type = type;
  it->second.help = help;
  return {};
}

void registry::set(const std::string& name, const labels& l, double value) {
  std::lock_guard lk(_mu);
  _families[name].series[l] = value;
}

void registry::add(const std::string& name, const labels& l, double delta) {
  std::lock_guard lk(_mu);
  _families[name].series[l] += delta;
}

double registry::value(const std::string& name, const labels& l, double fallback) const {
  std::lock_guard lk(_mu);
  auto f = _families.find(name);
  if (f == _families.end()) return fallback;
  auto s = f->second.series.find(l);
  return s == f->second.series.end() ? fallback : s->second;
}

void registry::remove(const std::string& name, const labels& l) {
  std::lock_guard lk(_mu);
  auto f = _families.find(name);
  if (f == _families.end()) return;
  if (l.empty()) {
    f->second.series.clear();
  } else {
    f->second.series.erase(l);
  }
}

std::string registry::render() const {
  std::lock_guard lk(_mu);
  std::string out;
  for (const auto& [name, fam] : _families) {
    if (!valid_name(name)) continue;  // set() with a bad name: never emit a broken line
    if (!fam.help.empty()) out += "# HELP " + name + " " + escape_help(fam.help) + "\n";
    out += "# TYPE " + name + (fam.type == metric_type::counter ? " counter\n" : " gauge\n");
    for (const auto& [l, v] : fam.series) {
      out += name;
      if (!l.empty()) {
        out += '{';
        bool first = true;
        for (const auto& [k, lv] : l) {
          if (!valid_name(k)) continue;
          if (!first) out += ',';
          first = false;
          out += k + "=\"" + escape_label(lv) + "\"";
        }
        out += '}';
      }
      out += ' ';
      out += format_value(v);
      out += '\n';
    }
  }
  return out;
}

mresult<std::unique_ptr<http_listener>> http_listener::start(const std::string& host_port,
                                                             const registry& reg) {
  const auto colon = host_port.rfind(':');
  if (colon == std::string::npos) {
    return make_error(errc::invalid_argument, "expected host:port, got '" + host_port + "'");
  }
  std::string host = host_port.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = host_port.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
    return make_error(errc::invalid_argument, "bad port in '" + host_port + "'");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (int e = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
      e != 0) {
    return make_error(errc::invalid_argument,
                      "resolving '" + host_port + "': " + ::gai_strerror(e));
  }
  int fd = -1;
  std::string last_error = "no address";
  for (addrinfo* a = res; a; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 16) == 0) break;
    last_error = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) return make_error(errc::io_error, "listening on " + host_port + ": " + last_error);
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  const int bound = ss.ss_family == AF_INET6
                        ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                        : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  std::unique_ptr<http_listener> l(new http_listener(fd, bound, reg));
  if (::pipe2(l->_wake, O_CLOEXEC) != 0) {
    return make_error(errc::io_error, std::string("pipe: ") + std::strerror(errno));
  }
  l->_thread = std::thread([p = l.get()] { p->serve(); });
  return l;
}

http_listener::http_listener(int fd, int port, const registry& reg)
    : _fd(fd), _port(port), _reg(reg) {}

http_listener::~http_listener() { stop(); }

void http_listener::stop() {
  if (_wake[1] >= 0) {
    const char c = 'x';
    (void)!::write(_wake[1], &c, 1);
  }
  if (_thread.joinable()) _thread.join();
  for (int* fd : {&_fd, &_wake[0], &_wake[1]}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void http_listener::serve() {
  for (;;) {
    pollfd fds[2] = {{_fd, POLLIN, 0}, {_wake[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    const int c = ::accept4(_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    // Read the request head within 2 s and 8 KiB; a slow or huge request is just closed.
    std::string req;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    bool complete = false;
    while (req.size() < 8192) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) break;
      pollfd p{c, POLLIN, 0};
      pollfd w{_wake[0], POLLIN, 0};
      pollfd both[2] = {p, w};
      if (::poll(both, 2, static_cast<int>(left)) <= 0 || both[1].revents) break;
      char buf[2048];
      const ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
      if (req.find("\r\n\r\n") != std::string::npos || req.find("\n\n") != std::string::npos) {
        complete = true;
        break;
      }
    }
    if (complete) {
      const auto sp1 = req.find(' ');
      const auto sp2 = sp1 == std::string::npos ? sp1 : req.find(' ', sp1 + 1);
      const std::string method = req.substr(0, sp1);
      std::string path = sp2 == std::string::npos ? "" : req.substr(sp1 + 1, sp2 - sp1 - 1);
      if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
      if (method != "GET" && method != "HEAD") {
        write_all(c, response(405, "Method Not Allowed", "text/plain", "method not allowed\n"));
      } else if (path != "/metrics") {
        write_all(c, response(404, "Not Found", "text/plain", "try /metrics\n"));
      } else {
        std::string r =
            response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", _reg.render());
        if (method == "HEAD") r.resize(r.find("\r\n\r\n") + 4);
        write_all(c, r);
      }
    }
    ::close(c);
  }
}

}  // namespace sh::metrics
