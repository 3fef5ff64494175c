#include "sh/metrics/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace sh::metrics {
namespace {

std::string http_get(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return "";
  }
  (void)!::write(fd, request.data(), request.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST(registry, renders_text_exposition_format) {
  registry r;
  ASSERT_TRUE(r.declare("mirror_lag_records", metric_type::gauge, "Records behind."));
  ASSERT_TRUE(r.declare("mirror_records_total", metric_type::counter, "Records copied."));
  r.set("mirror_lag_records", {{"topic", "t"}, {"partition", "1"}}, 5);
  r.set("mirror_lag_records", {{"topic", "t"}, {"partition", "0"}}, 2.5);
  r.add("mirror_records_total", {}, 3);
  r.add("mirror_records_total", {}, 4);
  r.set("odd", {{"v", "a\"b\\c\nd"}}, 1);
  EXPECT_EQ(r.render(),
            "# HELP mirror_lag_records Records behind.\n"
            "# TYPE mirror_lag_records gauge\n"
            "mirror_lag_records{partition=\"0\",topic=\"t\"} 2.5\n"
            "mirror_lag_records{partition=\"1\",topic=\"t\"} 5\n"
            "# HELP mirror_records_total Records copied.\n"
            "# TYPE mirror_records_total counter\n"
            "mirror_records_total 7\n"
            "# TYPE odd gauge\n"
            "odd{v=\"a\\\"b\\\\c\\nd\"} 1\n");
  EXPECT_EQ(r.value("mirror_records_total", {}), 7);
  r.remove("mirror_lag_records", {{"topic", "t"}, {"partition", "1"}});
  EXPECT_EQ(r.value("mirror_lag_records", {{"topic", "t"}, {"partition", "1"}}, -1), -1);
  r.remove("mirror_lag_records");
  EXPECT_EQ(r.render().find("partition=\"0\""), std::string::npos);
}

TEST(registry, rejects_bad_names) {
  registry r;
  EXPECT_FALSE(r.declare("1abc", metric_type::gauge, ""));
  EXPECT_FALSE(r.declare("a-b", metric_type::gauge, ""));
  EXPECT_TRUE(r.declare("a_b:c9", metric_type::gauge, ""));
  r.set("a_b:c9", {}, 1);
  EXPECT_FALSE(r.declare("a_b:c9", metric_type::counter, ""));
  r.set("bad name", {}, 1);  // never rendered: it would break the whole scrape
  EXPECT_EQ(r.render().find("bad name"), std::string::npos);
}

TEST(format, values) {
  EXPECT_EQ(format_value(3), "3");
  EXPECT_EQ(format_value(-2), "-2");
  EXPECT_EQ(format_value(0.5), "0.5");
  EXPECT_EQ(format_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(format_value(0.0 / 0.0), "NaN");
}

TEST(http_listener, serves_metrics_and_refuses_the_rest) {
  registry r;
  r.set("up", {}, 1);
  auto l = http_listener::start("127.0.0.1:0", r);
  ASSERT_TRUE(l) << l.message();
  const int port = (*l)->port();
  ASSERT_GT(port, 0);
  std::string ok = http_get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(ok.find("\r\n\r\n# TYPE up gauge\nup 1\n"), std::string::npos) << ok;
  r.set("up", {}, 0);
  EXPECT_NE(http_get(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").find("\nup 0\n"),
            std::string::npos);
  EXPECT_EQ(http_get(port, "GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(http_get(port, "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  // Garbage and an oversized head are closed without an answer, and the listener lives on.
  EXPECT_EQ(http_get(port, std::string(10000, 'x')), "");
  EXPECT_EQ(http_get(port, "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
  (*l)->stop();
  (*l)->stop();
  EXPECT_EQ(http_get(port, "GET /metrics HTTP/1.1\r\n\r\n"), "");
}

TEST(http_listener, bad_addresses) {
  registry r;
  EXPECT_FALSE(http_listener::start("nocolon", r));
  EXPECT_FALSE(http_listener::start("127.0.0.1:99999", r));
  EXPECT_FALSE(http_listener::start("127.0.0.1:x", r));
  auto a = http_listener::start("127.0.0.1:0", r);
  ASSERT_TRUE(a);
  auto b = http_listener::start("127.0.0.1:" + std::to_string((*a)->port()), r);
  EXPECT_FALSE(b);
  EXPECT_EQ(b.code(), errc::io_error);
}

}  // namespace
}  // namespace sh::metrics
