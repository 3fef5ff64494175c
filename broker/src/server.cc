// clang-format off
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange
// clang-format on

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <random>
#include <thread>

#include "broker_context.h"
#include "compaction/compactor.h"
#include "groups/group_coordinator.h"
#include "handlers/handlers.h"
#include "sh/broker/broker.h"
#include "sh/kafka/messages/api_keys.h"
#include "sh/kafka/messages/request_header.h"

namespace sh::broker {
namespace {

using asio::ip::tcp;
using boost::system::error_code;

constexpr int16_t api_versions_key = 18;
constexpr size_t max_pending_per_connection = 1024;

struct pending_response {
  // Request bytes held until the response is gone, counted against queued.max.request.bytes.
  std::atomic<int64_t>* global_inflight = nullptr;
  int64_t request_bytes = 0;
  ~pending_response() {
    if (global_inflight) global_inflight->fetch_sub(request_bytes, std::memory_order_relaxed);
  }
  bool ready = false;
  bool send = true;
  bool close = false;
  std::vector<uint8_t> head;  // size prefix + response header
  std::vector<uint8_t> body;  // written after head without copying (scatter-gather)
  std::shared_ptr<const response_gather> gather;  // then these pieces (Fetch records), likewise
};

// One client connection: a reader coroutine that decodes frames and starts a handler per
// request, and a writer coroutine that sends responses strictly in request order. Everything
// runs on the connection's strand.
class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(broker_context& ctx, tcp::socket socket)
      : _ctx(ctx),
        _socket(std::move(socket)),
        _wake_writer(_socket.get_executor(), asio::steady_timer::time_point::max()),
        _wake_reader(_socket.get_executor(), asio::steady_timer::time_point::max()) {
    error_code ec;
    auto ep = _socket.remote_endpoint(ec);
    _state.peer = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
    _state.produce_turn_changed = std::make_shared<asio::steady_timer>(
        _socket.get_executor(), asio::steady_timer::time_point::max());
    _socket.set_option(tcp::no_delay(true), ec);
  }

  void start() {
    auto self = shared_from_this();
    asio::co_spawn(_socket.get_executor(), reader(self), asio::detached);
    asio::co_spawn(_socket.get_executor(), writer(self), asio::detached);
    asio::co_spawn(_socket.get_executor(), idle_watchdog(self), asio::detached);
  }

 private:
  awaitable<void> reader(std::shared_ptr<connection> self) {
    try {
      for (;;) {
        uint8_t size_buf[4];
        error_code ec;
        co_await asio::async_read(_socket, asio::buffer(size_buf),
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        const int32_t size =
            static_cast<int32_t>((uint32_t(size_buf[0]) << 24) | (uint32_t(size_buf[1]) << 16) |
                                 (uint32_t(size_buf[2]) << 8) | size_buf[3]);
        if (size < 8 || size > _ctx.cfg.socket_request_max_bytes) {
          spdlog::warn(
              "{}: request frame of {} bytes is outside [8, socket.request.max.bytes={}]; "
              "closing connection",
              _state.peer, size, _ctx.cfg.socket_request_max_bytes);
          break;
        }
        // Back-pressure: stop reading (TCP pushes back on the client) while this connection or
        // the whole broker holds too many request bytes in flight. A connection with nothing in
        // flight may always proceed, so no client starves.
        while (!_closed && (_pending.size() >= max_pending_per_connection ||
                            (_inflight_bytes > 0 &&
                             (_inflight_bytes + size > _ctx.cfg.max_inflight_bytes_per_connection ||
                              _ctx.inflight_request_bytes.load(std::memory_order_relaxed) + size >
                                  _ctx.cfg.queued_max_request_bytes)))) {
          _wake_reader.expires_after(std::chrono::milliseconds(10));
          co_await _wake_reader.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (_closed) break;
        _inflight_bytes += size;
        _ctx.inflight_request_bytes.fetch_add(size, std::memory_order_relaxed);
        _next_request_bytes = size;
        request req;
        req.frame.resize(static_cast<size_t>(size));  // not zero-filled (frame_bytes)
        co_await asio::async_read(_socket, asio::buffer(req.frame),
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        _last_activity = std::chrono::steady_clock::now();
        if (!dispatch(self, std::move(req))) break;
      }
    } catch (const std::exception& e) {
      spdlog::error("{}: connection reader failed: {}", _state.peer, e.what());
    }
    close();
  }

  // Parses the header and starts the handler; false closes the connection.
  bool dispatch(const std::shared_ptr<connection>& self, request req) {
    kafka::byte_reader peek(req.frame);
    req.api_key = peek.read_int16();
    req.api_version = peek.read_int16();
    req.correlation_id = peek.read_int32();
    auto p = std::make_shared<pending_response>();
    p->global_inflight = &_ctx.inflight_request_bytes;
    p->request_bytes = _next_request_bytes;
    const api_handler* h = find_handler(req.api_key);
    if (req.api_key == api_versions_key && h &&
        (req.api_version < h->min_version || req.api_version > h->max_version)) {
      // Kafka answers an ApiVersions request it can't parse in the v0 layout, so the client
      // learns the supported range and retries.
      _pending.push_back(p);
      complete(p, req.correlation_id, 0, handler_response{api_versions_unsupported_body()});
      return true;
    }
    if (!h || req.api_version < h->min_version || req.api_version > h->max_version) {
      spdlog::warn("{}: unsupported request api key {} ({}) version {} (client {}); closing",
                   _state.peer, req.api_key, kafka::api_name(req.api_key), req.api_version,
                   req.client_id.value_or("-"));
      return false;
    }
    kafka::byte_reader r(req.frame);
    kafka::request_header header;
    if (!header.decode(r, kafka::request_header_version(req.api_key, req.api_version))) {
      spdlog::warn("{}: malformed request header; closing", _state.peer);
      return false;
    }
    req.client_id = header.client_id;
    req.body_offset = r.position();
    if (req.api_key == 0) req.produce_ticket = _state.next_produce_ticket++;
    _pending.push_back(p);
    asio::co_spawn(_socket.get_executor(), run_handler(self, h, std::move(req), p), asio::detached);
    return true;
  }

  awaitable<void> run_handler(std::shared_ptr<connection> self, const api_handler* h, request req,
                              std::shared_ptr<pending_response> p) {
    handler_response resp;
    try {
      resp = co_await h->fn(_ctx, _state, req);
    } catch (const std::exception& e) {
      spdlog::error("{}: {} v{} handler failed: {}; closing", _state.peer,
                    kafka::api_name(req.api_key), req.api_version, e.what());
      resp.send = false;
      resp.close = true;
    }
    complete(p, req.correlation_id, kafka::response_header_version(req.api_key, req.api_version),
             std::move(resp));
    (void)self;
  }

  void complete(const std::shared_ptr<pending_response>& p, int32_t correlation_id,
                int16_t header_version, handler_response resp) {
    p->ready = true;
    p->send = resp.send;
    p->close = resp.close;
    if (resp.send) {
      kafka::byte_writer w;
      w.write_int32(0);  // size, patched below
      w.write_int32(correlation_id);
      if (header_version >= 1) w.write_unsigned_varint(0);  // no tagged fields
      p->head = w.take();
      const uint32_t size = static_cast<uint32_t>(p->head.size() - 4 + resp.body.size() +
                                                  (resp.gather ? resp.gather->size() : 0));
      p->head[0] = static_cast<uint8_t>(size >> 24);
      p->head[1] = static_cast<uint8_t>(size >> 16);
      p->head[2] = static_cast<uint8_t>(size >> 8);
      p->head[3] = static_cast<uint8_t>(size);
      p->body = std::move(resp.body);
      p->gather = std::move(resp.gather);
    }
    _wake_writer.cancel();
  }

  awaitable<void> writer(std::shared_ptr<connection> self) {
    try {
      while (!_closed) {
        if (_pending.empty() || !_pending.front()->ready) {
          error_code ec;
          co_await _wake_writer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          continue;
        }
        auto p = std::move(_pending.front());
        _pending.pop_front();
        _inflight_bytes -= p->request_bytes;
        _wake_reader.cancel();
        if (p->send && p->gather) {
          // Records straight from the read cache's buffers: one writev per up to 64 pieces.
          error_code ec;
          std::vector<asio::const_buffer> buffers;
          buffers.reserve(2);
          buffers.push_back(asio::buffer(p->head));
          if (!p->body.empty()) buffers.push_back(asio::buffer(p->body));
          p->gather->for_each_piece(
              [&](const uint8_t* d, size_t n) { buffers.push_back(asio::const_buffer(d, n)); });
          co_await asio::async_write(_socket, buffers,
                                     asio::redirect_error(asio::use_awaitable, ec));
          if (ec) break;
        } else if (p->send) {
          error_code ec;
          const std::array<asio::const_buffer, 2> buffers{asio::buffer(p->head),
                                                          asio::buffer(p->body)};
          co_await asio::async_write(_socket, buffers,
                                     asio::redirect_error(asio::use_awaitable, ec));
          if (ec) break;
        }
        if (p->close) break;
      }
    } catch (const std::exception& e) {
      spdlog::error("{}: connection writer failed: {}", _state.peer, e.what());
    }
    close();
    (void)self;
  }

  // connections.max.idle.ms: a connection with no request for that long and nothing in flight
  // is closed, as Kafka does.
  awaitable<void> idle_watchdog(std::shared_ptr<connection> self) {
    const auto idle = std::chrono::milliseconds(_ctx.cfg.connections_max_idle_ms);
    asio::steady_timer timer(_socket.get_executor());
    while (!_closed) {
      timer.expires_after(std::min<std::chrono::milliseconds>(
          idle / 2 + std::chrono::milliseconds(1), std::chrono::seconds(30)));
      error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (_closed) break;
      if (_pending.empty() && std::chrono::steady_clock::now() - _last_activity >= idle) {
        spdlog::debug("{}: idle for {} ms; closing", _state.peer, idle.count());
        close();
      }
    }
    (void)self;
  }

  void close() {
    if (_closed) return;
    _closed = true;
    error_code ec;
    _socket.shutdown(tcp::socket::shutdown_both, ec);
    _socket.close(ec);
    _wake_writer.cancel();
    _wake_reader.cancel();
  }

  broker_context& _ctx;
  tcp::socket _socket;
  asio::steady_timer _wake_writer;
  asio::steady_timer _wake_reader;
  std::deque<std::shared_ptr<pending_response>> _pending;
  connection_state _state;
  int64_t _inflight_bytes = 0;      // request bytes of this connection not yet answered
  int64_t _next_request_bytes = 0;  // size of the frame being dispatched
  std::chrono::steady_clock::time_point _last_activity = std::chrono::steady_clock::now();
  bool _closed = false;
};

awaitable<void> accept_loop(broker_context& ctx, tcp::acceptor& acceptor, asio::io_context& io) {
  for (;;) {
    error_code ec;
    tcp::socket socket(asio::make_strand(io));
    co_await acceptor.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      spdlog::warn("accept failed: {}", ec.message());
      continue;
    }
    std::make_shared<connection>(ctx, std::move(socket))->start();
  }
}

std::string make_writer_id(int32_t node_id) {
  std::random_device rd;
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  char buf[64];
  std::snprintf(buf, sizeof(buf), "n%d-%lld-%08x", node_id, static_cast<long long>(now), rd());
  return buf;
}

}  // namespace

int run_broker(const broker_config& cfg) {
  std::error_code fs_ec;
  std::filesystem::create_directories(cfg.data_dir, fs_ec);
  if (fs_ec) {
    spdlog::critical("cannot create data.dir {}: {}", cfg.data_dir, fs_ec.message());
    return 1;
  }
  auto meta = metadata::open_metadata_store(cfg.metadata_url);
  if (!meta) {
    spdlog::critical("cannot open metadata store {}: {}", cfg.metadata_url, meta.message());
    return 1;
  }
  storage::s3_options s3;
  s3.endpoint = cfg.s3_endpoint;
  s3.region = cfg.s3_region;
  s3.access_key = cfg.s3_access_key;
  s3.secret_key = cfg.s3_secret_key;
  s3.session_token = cfg.s3_session_token;
  s3.path_style = cfg.s3_path_style;
  s3.multipart_threshold = static_cast<uint64_t>(cfg.s3_multipart_threshold_bytes);
  s3.multipart_part_size = static_cast<uint64_t>(cfg.s3_multipart_part_bytes);
  storage::local_store_options local;
  local.direct_io = cfg.local_direct_io;
  auto store = storage::open_object_store(cfg.storage_url, s3, local);
  if (!store) {
    spdlog::critical("cannot open object store {}: {}", cfg.storage_url, store.message());
    return 1;
  }
  // Refuse to start unless the store is reachable, exists and accepts our signature.
  if (auto probe = (*store)->probe(); !probe) {
    spdlog::critical("object store {} is not usable: {}{}", cfg.storage_url, probe.message(),
                     probe.code() == storage::errc::auth_failed
                         ? " (wrong credentials: check s3.access.key / s3.secret.key)"
                         : "");
    return 1;
  }
  broker_context ctx(cfg, std::shared_ptr<storage::object_store>(std::move(*store)),
                     std::shared_ptr<metadata::metadata_store>(std::move(*meta)));
  ctx.instance_id = make_writer_id(cfg.node_id);
  // SQLite notifies the index cache on the committing thread before commit_object returns;
  // PostgreSQL's notification of our own commit arrives later, so until then every cached
  // partition state is re-read (a producer's ack must be visible to its next fetch here).
  const bool async_notifications = !ctx.meta->describe().starts_with("sqlite");
  ctx.writer = std::make_unique<ingest_writer>(
      ctx.store, ctx.meta, ctx.instance_id, cfg.ingest_flush_bytes,
      std::chrono::milliseconds(cfg.ingest_flush_ms), [&ctx, async_notifications] {
        if (async_notifications) ctx.index->invalidate_states();
        ctx.commits.notify();
      });
  ctx.writer->start();
  asio::io_context io(cfg.num_io_threads);
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  for (const auto& l : cfg.listeners) {
    error_code ec;
    auto addr = asio::ip::make_address(l.host.empty() ? "0.0.0.0" : l.host, ec);
    if (ec) {
      tcp::resolver resolver(io);
      auto results = resolver.resolve(l.host, std::to_string(l.port), ec);
      if (ec || results.empty()) {
        spdlog::critical("cannot resolve listener host {}: {}", l.host, ec.message());
        return 1;
      }
      addr = results.begin()->endpoint().address();
    }
    auto acceptor = std::make_unique<tcp::acceptor>(io);
    tcp::endpoint ep(addr, l.port);
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      spdlog::critical("cannot listen on {}:{}: {}", l.host, l.port, ec.message());
      return 1;
    }
    spdlog::info("listening on {}://{}:{}", l.name, l.host, acceptor->local_endpoint().port());
    acceptors.push_back(std::move(acceptor));
  }
  // Registered only once the listeners are bound (see cluster_membership::start).
  ctx.cluster = std::make_unique<cluster_membership>(ctx.meta, ctx.self());
  if (auto joined = ctx.cluster->start(); !joined) {
    spdlog::critical("cannot register broker: {}", joined.message());
    ctx.writer->stop();
    return 1;
  }
  // Commits by any broker (PostgreSQL LISTEN/NOTIFY; in-process for SQLite) update the index
  // cache, then wake long-polls; without notifications the cache polls the store.
  ctx.index->start(
      [&ctx](const std::vector<metadata::partition_change>&, bool) { ctx.commits.notify(); });
  if (!ctx.index->notifications_active()) {
    spdlog::warn("commit notifications unavailable; the index cache polls the metadata store");
  }
  ctx.groups = std::make_unique<group_coordinator>(ctx);
  ctx.groups->start();
  auto compactor_options = compaction::make_compactor_options(cfg, ctx.instance_id);
  compactor_options.on_partition_changed = [&ctx](const std::string& topic, int32_t partition) {
    ctx.index->invalidate(topic, partition);
  };
  compaction::compactor compactor(ctx.meta, ctx.store, std::move(compactor_options));
  compactor.start();

  for (auto& a : acceptors) asio::co_spawn(io, accept_loop(ctx, *a, io), asio::detached);

  std::thread stopper;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {} received: stopping (no new connections; flushing buffered produce)",
                 sig);
    for (auto& a : acceptors) {
      error_code ignored;
      a->close(ignored);
    }
    // Commit what is buffered and answer its producers before the I/O threads stop.
    stopper = std::thread([&ctx, &io] {
      ctx.writer->stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let answers go out
      io.stop();
    });
  });

  spdlog::info("streamhouse broker node {} ready (metadata {}, storage {}, flush {} bytes / {} ms)",
               cfg.node_id, ctx.meta->describe(), ctx.store->describe(), cfg.ingest_flush_bytes,
               cfg.ingest_flush_ms);
  std::vector<std::thread> threads;
  for (int i = 1; i < cfg.num_io_threads; ++i) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  if (stopper.joinable()) stopper.join();
  ctx.writer->stop();
  ctx.groups->stop();
  compactor.stop();
  ctx.index->stop();
  ctx.cluster->stop();
  ctx.blocking.join();
  spdlog::info("broker stopped");
  return 0;
}

}  // namespace sh::broker
