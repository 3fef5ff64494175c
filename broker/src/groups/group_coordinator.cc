#include "group_coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>

#include "../broker_context.h"

namespace sh::broker {
namespace {

using kafka::error_code;

int64_t raw_int(const broker_context& ctx, const char* key, int64_t fallback) {
  auto it = ctx.cfg.raw.find(key);
  if (it == ctx.cfg.raw.end() || it->second.empty()) return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (end == it->second.c_str() || *end != '\0' || v < 0) {
    spdlog::warn("ignoring {}={}: not a non-negative integer", key, it->second);
    return fallback;
  }
  return v;
}

}  // namespace

coordinator_options coordinator_options_from(const broker_context& ctx) {
  coordinator_options o;
  o.group.initial_rebalance_delay_ms =
      raw_int(ctx, "group.initial.rebalance.delay.ms", o.group.initial_rebalance_delay_ms);
  o.group.min_session_timeout_ms = static_cast<int32_t>(std::min<int64_t>(
      INT32_MAX, raw_int(ctx, "group.min.session.timeout.ms", o.group.min_session_timeout_ms)));
  o.group.max_session_timeout_ms = static_cast<int32_t>(std::min<int64_t>(
      INT32_MAX, raw_int(ctx, "group.max.session.timeout.ms", o.group.max_session_timeout_ms)));
  o.lease_ttl_ms = std::clamp<int64_t>(raw_int(ctx, "group.coordinator.lease.ms", o.lease_ttl_ms),
                                       3000, metadata::max_lease_ttl_ms);
  o.lease_margin_ms = std::min(o.lease_margin_ms, o.lease_ttl_ms / 3);
  o.idle_ms = std::max(o.idle_ms, 2 * o.lease_ttl_ms);
  return o;
}

group_coordinator::group_coordinator(broker_context& ctx)
    : group_coordinator(ctx, coordinator_options_from(ctx)) {}

group_coordinator::group_coordinator(broker_context& ctx, coordinator_options options)
    : _ctx(ctx), _options(std::move(options)) {}

group_coordinator::~group_coordinator() { stop(); }

int64_t group_coordinator::now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void group_coordinator::start() {
  std::lock_guard lk(_mu);
  if (_running || _stopping) return;
  _running = true;
  _ticker = std::thread([this] { ticker_loop(); });
  _leaser = std::thread([this] { lease_loop(); });
}

void group_coordinator::stop() {
  std::vector<std::pair<std::string, int64_t>> held;
  {
    std::lock_guard lk(_mu);
    if (_stopping) return;
    _stopping = true;
    for (auto& [id, s] : _slots) {
      s.g->shutdown(error_code::not_coordinator);
      held.emplace_back(id, s.epoch);
    }
    _slots.clear();
  }
  _wake_ticker.notify_all();
  _wake_leaser.notify_all();
  if (_ticker.joinable()) _ticker.join();
  if (_leaser.joinable()) _leaser.join();
  // Let a restarted or surviving broker take the groups at once instead of after the ttl.
  for (const auto& [id, epoch] : held) {
    auto released = _ctx.meta->release_lease(lease_name(id), _ctx.instance_id, epoch);
    if (!released && released.code() != metadata::errc::fenced) {
      spdlog::warn("group {}: releasing the coordinator lease: {}", id, released.message());
    }
  }
}

// ---- ownership ----

group_coordinator::slot* group_coordinator::held_locked(const std::string& group_id, int64_t now) {
  auto it = _slots.find(group_id);
  if (it == _slots.end() || now >= it->second.valid_until) return nullptr;
  it->second.last_activity = now;
  return &it->second;
}

std::optional<metadata::lease_fence> group_coordinator::held_fence(const std::string& group_id) {
  std::lock_guard lk(_mu);
  slot* s = held_locked(group_id, now_ms());
  if (!s) return std::nullopt;
  return metadata::lease_fence{lease_name(group_id), s->epoch};
}

coordinator_lookup group_coordinator::lookup_blocking(const std::string& group_id) {
  coordinator_lookup out;
  {
    std::lock_guard lk(_mu);
    if (_stopping) {
      out.error = error_code::coordinator_not_available;
      return out;
    }
  }
  const int64_t before = now_ms();
  auto l = _ctx.meta->acquire_lease(lease_name(group_id), _ctx.instance_id, _options.lease_ttl_ms);
  if (!l) {
    if (l.code() == metadata::errc::invalid_argument) {
      out.error = error_code::invalid_group_id;
    } else {
      spdlog::warn("group {}: coordinator lease: {}", group_id, l.message());
      out.error = error_code::coordinator_not_available;
    }
    return out;
  }
  if (l->owner != _ctx.instance_id) {
    auto ep = _ctx.broker_for_owner(l->owner);
    if (!ep) {
      out.error = error_code::coordinator_not_available;
      return out;
    }
    out.node_id = ep->node_id;
    out.host = ep->host;
    out.port = ep->port;
    return out;
  }
  const auto self = _ctx.self();
  out.node_id = self.node_id;
  out.host = self.host;
  out.port = self.port;
  out.fence = metadata::lease_fence{l->name, l->epoch};
  std::unique_lock lk(_mu);
  if (_stopping) {
    // stop() has released the leases; one taken since must not outlive this process either.
    lk.unlock();
    (void)_ctx.meta->release_lease(l->name, _ctx.instance_id, l->epoch);
    out = coordinator_lookup{};
    out.error = error_code::coordinator_not_available;
    return out;
  }
  slot& s = _slots[group_id];
  if (!s.g || s.epoch != l->epoch) {
    // First time, or the lease moved away and back: whatever was in memory is stale.
    if (s.g) s.g->shutdown(error_code::not_coordinator);
    s.g = std::make_unique<group>(group_id, _options.group);
    s.epoch = l->epoch;
    spdlog::info("group {}: coordinating (lease epoch {})", group_id, l->epoch);
  }
  s.valid_until = before + _options.lease_ttl_ms - _options.lease_margin_ms;
  s.last_activity = now_ms();
  return out;
}

void group_coordinator::lost(const std::string& group_id, int64_t epoch) {
  std::lock_guard lk(_mu);
  auto it = _slots.find(group_id);
  if (it == _slots.end() || it->second.epoch != epoch) return;
  spdlog::warn("group {}: lease epoch {} was taken over; no longer coordinating", group_id, epoch);
  it->second.g->shutdown(error_code::not_coordinator);
  _slots.erase(it);
}

// ---- membership ----

void group_coordinator::log_changes(const std::string& group_id, slot& s) {
  const group& g = *s.g;
  if (g.generation() == s.logged_generation && g.state() == s.logged_state) return;
  if (g.generation() != s.logged_generation) {
    spdlog::info("group {}: generation {} ({}, {} members, protocol {}, leader {})", group_id,
                 g.generation(), group_state_name(g.state()), g.member_count(),
                 g.protocol_name().value_or("-"), g.leader().empty() ? "-" : g.leader());
  } else {
    spdlog::debug("group {}: {} (generation {})", group_id, group_state_name(g.state()),
                  g.generation());
  }
  s.logged_generation = g.generation();
  s.logged_state = g.state();
}

void group_coordinator::join(const std::string& group_id, join_params p, join_callback done) {
  {
    std::lock_guard lk(_mu);
    const int64_t now = now_ms();
    if (slot* s = held_locked(group_id, now)) {
      s->g->join(std::move(p), now, std::move(done));
      log_changes(group_id, *s);
      done = nullptr;
    }
  }
  _wake_ticker.notify_one();  // the group may have a new deadline
  if (done) {
    join_result r;
    r.error = error_code::not_coordinator;
    r.member_id = p.member_id;
    done(std::move(r));
  }
}

void group_coordinator::sync(const std::string& group_id, sync_params p, sync_callback done) {
  {
    std::lock_guard lk(_mu);
    const int64_t now = now_ms();
    if (slot* s = held_locked(group_id, now)) {
      s->g->sync(std::move(p), now, std::move(done));
      log_changes(group_id, *s);
      done = nullptr;
    }
  }
  _wake_ticker.notify_one();
  if (done) {
    sync_result r;
    r.error = error_code::not_coordinator;
    done(std::move(r));
  }
}

kafka::error_code group_coordinator::heartbeat(const std::string& group_id,
                                               const std::string& member_id,
                                               const std::optional<std::string>& instance_id,
                                               int32_t generation) {
  std::lock_guard lk(_mu);
  const int64_t now = now_ms();
  slot* s = held_locked(group_id, now);
  if (!s) return error_code::not_coordinator;
  return s->g->heartbeat(member_id, instance_id, generation, now);
}

kafka::error_code group_coordinator::leave(const std::string& group_id,
                                           const std::string& member_id,
                                           const std::optional<std::string>& instance_id) {
  kafka::error_code e;
  {
    std::lock_guard lk(_mu);
    const int64_t now = now_ms();
    slot* s = held_locked(group_id, now);
    if (!s) return error_code::not_coordinator;
    e = s->g->leave(member_id, instance_id, now);
    log_changes(group_id, *s);
  }
  _wake_ticker.notify_one();
  return e;
}

kafka::error_code group_coordinator::validate_commit(const std::string& group_id,
                                                     const std::string& member_id,
                                                     const std::optional<std::string>& instance_id,
                                                     int32_t generation) {
  std::lock_guard lk(_mu);
  const int64_t now = now_ms();
  slot* s = held_locked(group_id, now);
  if (!s) return error_code::not_coordinator;
  return s->g->validate_commit(member_id, instance_id, generation, now);
}

// ---- inspection and administration ----

std::optional<group_coordinator::group_snapshot> group_coordinator::describe(
    const std::string& group_id) {
  std::lock_guard lk(_mu);
  slot* s = held_locked(group_id, now_ms());
  if (!s) return std::nullopt;
  return group_snapshot{s->g->is_known(), s->g->describe()};
}

std::vector<listed_group> group_coordinator::list_held() {
  std::lock_guard lk(_mu);
  const int64_t now = now_ms();
  std::vector<listed_group> out;
  for (const auto& [id, s] : _slots) {
    if (now >= s.valid_until || !s.g->is_known() || s.g->state() == group_state::dead) continue;
    out.push_back(listed_group{id, s.g->protocol_type().value_or(""), s.g->state()});
  }
  return out;
}

kafka::error_code group_coordinator::subscriptions(const std::string& group_id,
                                                   const std::vector<std::string>& topics,
                                                   std::vector<bool>& subscribed, bool& known) {
  std::lock_guard lk(_mu);
  slot* s = held_locked(group_id, now_ms());
  if (!s) return error_code::not_coordinator;
  known = s->g->is_known();
  subscribed.assign(topics.size(), false);
  if (s->g->member_count() == 0) return error_code::none;
  if (s->g->protocol_type().value_or("") != "consumer") return error_code::non_empty_group;
  for (size_t i = 0; i < topics.size(); ++i) subscribed[i] = s->g->subscribed_to(topics[i]);
  return error_code::none;
}

kafka::error_code group_coordinator::begin_delete(const std::string& group_id, bool& known) {
  std::lock_guard lk(_mu);
  slot* s = held_locked(group_id, now_ms());
  if (!s) return error_code::not_coordinator;
  if (s->g->state() == group_state::dead) return error_code::coordinator_not_available;
  if (!s->g->is_empty()) return error_code::non_empty_group;
  known = s->g->is_known();
  s->g->shutdown(error_code::coordinator_not_available);
  return error_code::none;
}

void group_coordinator::finish_delete(const std::string& group_id) {
  std::lock_guard lk(_mu);
  auto it = _slots.find(group_id);
  // The lease stays ours until it lapses; the next request starts a fresh, empty group.
  if (it != _slots.end() && it->second.g->state() == group_state::dead) _slots.erase(it);
}

// ---- background work ----

void group_coordinator::tick_for_test() {
  std::lock_guard lk(_mu);
  const int64_t now = now_ms();
  for (auto& [id, s] : _slots) s.g->tick(now);
}

void group_coordinator::ticker_loop() {
  std::unique_lock lk(_mu);
  while (!_stopping) {
    const int64_t now = now_ms();
    int64_t next = now + 1000;
    for (auto& [id, s] : _slots) {
      if (s.g->next_deadline() <= now) {
        s.g->tick(now);
        log_changes(id, s);
      }
      next = std::min(next, s.g->next_deadline());
    }
    const auto wait = std::chrono::milliseconds(std::max<int64_t>(next - now, 1));
    _wake_ticker.wait_for(lk, wait);
  }
}

void group_coordinator::lease_loop() {
  std::unique_lock lk(_mu);
  const auto period = std::chrono::milliseconds(std::max<int64_t>(_options.lease_ttl_ms / 3, 100));
  while (!_stopping) {
    _wake_leaser.wait_for(lk, period);
    if (_stopping) break;
    lk.unlock();
    renew_all();
    lk.lock();
  }
}

void group_coordinator::renew_all() {
  std::vector<std::pair<std::string, int64_t>> renew;
  {
    std::lock_guard lk(_mu);
    const int64_t now = now_ms();
    for (auto it = _slots.begin(); it != _slots.end();) {
      slot& s = it->second;
      const bool idle = s.g->is_empty() && now - s.last_activity >= _options.idle_ms;
      if (idle) {
        // Not renewed: the lease lapses and any broker may coordinate the group next time.
        s.g->shutdown(error_code::not_coordinator);
        it = _slots.erase(it);
        continue;
      }
      renew.emplace_back(it->first, s.epoch);
      ++it;
    }
  }
  for (const auto& [id, epoch] : renew) {
    const int64_t before = now_ms();
    auto r = _ctx.meta->renew_lease(lease_name(id), _ctx.instance_id, epoch, _options.lease_ttl_ms);
    if (r) {
      std::lock_guard lk(_mu);
      auto it = _slots.find(id);
      if (it != _slots.end() && it->second.epoch == epoch) {
        it->second.valid_until = before + _options.lease_ttl_ms - _options.lease_margin_ms;
      }
    } else if (r.code() == metadata::errc::fenced) {
      lost(id, epoch);
    } else {
      // Transient: keep the group; requests stop using the lease once it is close to expiry.
      spdlog::warn("group {}: renewing the coordinator lease: {}", id, r.message());
    }
  }
}

}  // namespace sh::broker
