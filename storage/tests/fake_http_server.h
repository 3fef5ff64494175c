#pragma once
// A scripted HTTP/1.1 server on 127.0.0.1:<ephemeral> for S3 client fault tests (in the spirit of
// Redpanda's s3_imposter): each request gets the next scripted reply, or the default one. It
// records what it received. Keep-alive connections, one thread per connection.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sh::storage::testing {

struct fake_reply {
  fake_reply() = default;
  fake_reply(int s, std::string b, std::vector<std::string> h = {})
      : status(s), body(std::move(b)), headers(std::move(h)) {}
  int status = 200;
  std::string body;
  std::vector<std::string> headers;  // "Name: value"
  bool reset = false;                // close the connection with RST instead of answering
  std::chrono::milliseconds delay{0};
};

struct fake_request {
  std::string method;
  std::string target;                                        // path + query as sent
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

class fake_http_server {
 public:
  fake_http_server() {
    _listen = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(_listen, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
    socklen_t len = sizeof addr;
    ::getsockname(_listen, reinterpret_cast<sockaddr*>(&addr), &len);
    _port = ntohs(addr.sin_port);
    ::listen(_listen, 64);
    _acceptor = std::thread([this] { accept_loop(); });
  }
  ~fake_http_server() {
    _stop = true;
    ::shutdown(_listen, SHUT_RDWR);
    ::close(_listen);
    _acceptor.join();
    std::vector<std::thread> conns;
    {
      std::lock_guard lock(_mu);
      for (int fd : _conn_fds) ::shutdown(fd, SHUT_RDWR);
      conns.swap(_conns);
    }
    for (auto& t : conns) t.join();
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(_port); }
  void script(fake_reply r) {
    std::lock_guard lock(_mu);
    _script.push_back(std::move(r));
  }
  void set_default(fake_reply r) {
    std::lock_guard lock(_mu);
    _default = std::move(r);
  }
  std::vector<fake_request> requests() {
    std::lock_guard lock(_mu);
    return _seen;
  }

 private:
  void accept_loop() {
    while (!_stop) {
      int fd = ::accept4(_listen, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (_stop) return;
        continue;
      }
      std::lock_guard lock(_mu);
      _conn_fds.push_back(fd);
      _conns.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    std::string buf;
    char chunk[65536];
    while (true) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return close_fd(fd);
        buf.append(chunk, static_cast<size_t>(n));
      }
      fake_request req;
      std::string head = buf.substr(0, end);
      buf.erase(0, end + 4);
      size_t line_end = head.find("\r\n");
      std::string first = head.substr(0, line_end);
      size_t sp1 = first.find(' ');
      size_t sp2 = first.find(' ', sp1 + 1);
      req.method = first.substr(0, sp1);
      req.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t content_length = 0;
      size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        size_t e = head.find("\r\n", pos);
        if (e == std::string::npos) e = head.size();
        std::string line = head.substr(pos, e - pos);
        pos = e + 2;
        size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(value.begin());
        if (name == "content-length") content_length = std::stoul(value);
        req.headers.emplace_back(name, value);
      }
      while (buf.size() < content_length) {
        ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return close_fd(fd);
        buf.append(chunk, static_cast<size_t>(n));
      }
      req.body = buf.substr(0, content_length);
      buf.erase(0, content_length);

      fake_reply reply;
      {
        std::lock_guard lock(_mu);
        _seen.push_back(req);
        if (!_script.empty()) {
          reply = std::move(_script.front());
          _script.pop_front();
        } else {
          reply = _default;
        }
      }
      if (reply.delay.count() > 0) std::this_thread::sleep_for(reply.delay);
      if (reply.reset) {
        linger lg{1, 0};  // RST on close
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        return close_fd(fd);
      }
      std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n";
      for (const auto& h : reply.headers) out += h + "\r\n";
      out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n\r\n";
      if (req.method != "HEAD") out += reply.body;
      size_t sent = 0;
      while (sent < out.size()) {
        ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return close_fd(fd);
        sent += static_cast<size_t>(n);
      }
    }
  }

  void close_fd(int fd) {
    std::lock_guard lock(_mu);
    ::close(fd);
    std::erase(_conn_fds, fd);
  }

  int _listen = -1;
  uint16_t _port = 0;
  std::atomic<bool> _stop{false};
  std::thread _acceptor;
  std::mutex _mu;
  std::vector<std::thread> _conns;
  std::vector<int> _conn_fds;
  std::deque<fake_reply> _script;
  fake_reply _default;
  std::vector<fake_request> _seen;
};

}  // namespace sh::storage::testing
