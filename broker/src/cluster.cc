#include "cluster.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

namespace sh::broker {
namespace {

std::string encode_endpoint(const broker_endpoint& b) {
  return fmt::format("{}:{}", b.host, b.port);
}

std::optional<broker_endpoint> decode(const metadata::broker_registration& r) {
  const auto colon = r.endpoints.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  broker_endpoint b;
  b.node_id = r.node_id;
  b.host = r.endpoints.substr(0, colon);
  const auto port = std::string_view(r.endpoints).substr(colon + 1);
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), b.port);
  if (ec != std::errc() || p != port.data() + port.size()) return std::nullopt;
  b.incarnation = r.incarnation;
  return b;
}

// FNV-1a then a 64-bit finalizer: stable across processes and builds (std::hash is not
// guaranteed to be).
uint64_t stable_hash(const std::string& topic, int32_t partition, int32_t node) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint8_t c) { h = (h ^ c) * 1099511628211ull; };
  for (char c : topic) mix(static_cast<uint8_t>(c));
  for (int i = 0; i < 4; ++i)
    mix(static_cast<uint8_t>(static_cast<uint32_t>(partition) >> (8 * i)));
  for (int i = 0; i < 4; ++i) mix(static_cast<uint8_t>(static_cast<uint32_t>(node) >> (8 * i)));
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

}  // namespace

int32_t preferred_broker(const std::vector<broker_endpoint>& live, const std::string& topic,
                         int32_t partition) {
  int32_t best = live.empty() ? -1 : live.front().node_id;
  uint64_t best_weight = 0;
  for (const auto& b : live) {
    const uint64_t w = stable_hash(topic, partition, b.node_id);
    if (w > best_weight || (w == best_weight && b.node_id < best)) {
      best_weight = w;
      best = b.node_id;
    }
  }
  return best;
}

cluster_membership::cluster_membership(std::shared_ptr<metadata::metadata_store> meta,
                                       broker_endpoint self)
    : _meta(std::move(meta)), _self(std::move(self)), _live{_self} {}

cluster_membership::~cluster_membership() { stop(); }

sh::result<void, metadata::errc> cluster_membership::start() {
  metadata::broker_registration reg;
  reg.node_id = _self.node_id;
  reg.endpoints = encode_endpoint(_self);
  reg.incarnation = _self.incarnation;
  auto r = _meta->register_broker(reg, session_timeout_ms);
  if (!r && r.code() == metadata::errc::conflict) {
    // The node id is held by an incarnation that heartbeated recently. If it advertised the very
    // endpoint we now hold bound (start() runs after the listeners are bound), that process is
    // gone — typically this broker before a crash or kill -9 — and we take over at once.
    if (auto live = _meta->list_brokers(session_timeout_ms); live) {
      for (const auto& other : *live) {
        if (other.node_id == _self.node_id && other.endpoints == reg.endpoints) {
          spdlog::warn(
              "node.id {} was registered by incarnation {} at our own endpoint {}: it "
              "is gone (crash?); taking over",
              _self.node_id, other.incarnation, reg.endpoints);
          r = _meta->register_broker(reg, 1);  // 1 ms: any earlier heartbeat is stale
          break;
        }
      }
    }
  }
  if (!r) {
    return make_error(r.code(), r.code() == metadata::errc::conflict
                                    ? fmt::format("node.id {} is in use by another live broker "
                                                  "sharing this metadata store: {}",
                                                  _self.node_id, r.message())
                                    : r.message());
  }
  refresh();
  _thread = std::thread([this] { loop(); });
  return {};
}

void cluster_membership::stop() {
  {
    std::lock_guard lk(_mu);
    if (_stopping) return;
    _stopping = true;
  }
  _cv.notify_all();
  if (_thread.joinable()) {
    _thread.join();
    if (auto r = _meta->unregister_broker(_self.node_id, _self.incarnation); !r) {
      spdlog::warn("unregistering broker {}: {}", _self.node_id, r.message());
    }
  }
}

void cluster_membership::loop() {
  std::unique_lock lk(_mu);
  while (!_stopping) {
    _cv.wait_for(lk, std::chrono::milliseconds(heartbeat_interval_ms));
    if (_stopping) break;
    lk.unlock();
    if (auto hb = _meta->heartbeat_broker(_self.node_id, _self.incarnation); !hb) {
      spdlog::warn("broker heartbeat failed: {}", hb.message());
      if (hb.code() == metadata::errc::fenced) {
        // Our registration lapsed (e.g. the database was unreachable for a session timeout):
        // register again unless another live process took the node id.
        metadata::broker_registration reg;
        reg.node_id = _self.node_id;
        reg.endpoints = encode_endpoint(_self);
        reg.incarnation = _self.incarnation;
        if (auto r = _meta->register_broker(reg, session_timeout_ms); !r) {
          spdlog::error("re-registering broker {}: {}", _self.node_id, r.message());
        }
      }
    }
    refresh();
    lk.lock();
  }
}

void cluster_membership::refresh() {
  auto listed = _meta->list_brokers(session_timeout_ms);
  if (!listed) {
    spdlog::warn("listing live brokers failed: {}", listed.message());
    return;
  }
  std::vector<broker_endpoint> live;
  for (const auto& r : *listed) {
    if (auto b = decode(r)) live.push_back(std::move(*b));
  }
  if (std::none_of(live.begin(), live.end(),
                   [&](const auto& b) { return b.node_id == _self.node_id; })) {
    live.push_back(_self);
  }
  std::sort(live.begin(), live.end(),
            [](const auto& a, const auto& b) { return a.node_id < b.node_id; });
  std::lock_guard lk(_mu);
  _live = std::move(live);
}

std::vector<broker_endpoint> cluster_membership::live() const {
  std::lock_guard lk(_mu);
  return _live;
}

std::optional<broker_endpoint> cluster_membership::by_incarnation(
    const std::string& incarnation) const {
  std::lock_guard lk(_mu);
  for (const auto& b : _live) {
    if (b.incarnation == incarnation) return b;
  }
  return std::nullopt;
}

}  // namespace sh::broker
