#include "broker_context.h"

#include <spdlog/spdlog.h>

#include "groups/group_coordinator.h"

namespace sh::broker {
namespace {

// The memory cache, plus the disk tier when read.cache.disk.bytes > 0. A disk tier that can't be
// set up (directory not creatable) is logged and left out: fetches still work, only slower.
std::unique_ptr<storage::read_cache> make_read_cache(storage::object_store& store,
                                                     const broker_config& cfg) {
  storage::read_cache_options o;
  o.memory_bytes = static_cast<uint64_t>(cfg.read_cache_bytes);
  o.disk_bytes = static_cast<uint64_t>(cfg.read_cache_disk_bytes);
  o.disk_dir = cfg.read_cache_disk_dir.empty() ? cfg.data_dir + "/read-cache"
                                               : cfg.read_cache_disk_dir;
  auto cache = storage::read_cache::open(store, o);
  if (cache) return std::move(*cache);
  spdlog::error("read cache disk tier at {} is off: {}", o.disk_dir.string(), cache.message());
  return std::make_unique<storage::read_cache>(store, o.memory_bytes);
}

}  // namespace

broker_context::broker_context(broker_config c, std::shared_ptr<storage::object_store> s,
                               std::shared_ptr<metadata::metadata_store> m)
    : cfg(std::move(c)),
      store(std::move(s)),
      meta(std::move(m)),
      index(std::make_unique<metadata::index_cache>(meta)),
      cache(make_read_cache(*store, cfg)),
      blocking(static_cast<size_t>(cfg.num_blocking_threads)),
      topics(meta) {
  topics.on_invalidate = [this](const std::string& name) { index->invalidate_topic(name); };
}

broker_context::~broker_context() = default;

broker_endpoint broker_context::self() const {
  if (cluster) return cluster->self();
  broker_endpoint b;
  b.node_id = cfg.node_id;
  const auto& l = cfg.advertised_listeners.front();
  b.host = l.host;
  b.port = l.port;
  b.incarnation = instance_id;
  return b;
}

std::vector<broker_endpoint> broker_context::live_brokers() const {
  if (cluster) return cluster->live();
  return {self()};
}

std::optional<broker_endpoint> broker_context::broker_for_owner(const std::string& owner) const {
  if (owner == instance_id) return self();
  if (cluster) return cluster->by_incarnation(owner);
  return std::nullopt;
}

void commit_signal::add(const std::shared_ptr<asio::steady_timer>& timer) {
  std::lock_guard lk(_mu);
  std::erase_if(_timers, [](const auto& w) { return w.expired(); });
  _timers.push_back(timer);
}

void commit_signal::notify() {
  std::vector<std::weak_ptr<asio::steady_timer>> timers;
  {
    std::lock_guard lk(_mu);
    _generation.fetch_add(1, std::memory_order_acq_rel);
    timers.swap(_timers);
  }
  for (auto& w : timers) {
    if (auto t = w.lock()) {
      // steady_timer is not thread-safe: cancel on the timer's own executor.
      asio::post(t->get_executor(), [t] { t->cancel(); });
    }
  }
}

sh::result<std::optional<metadata::topic_info>, metadata::errc> topic_registry::find(
    const std::string& name) {
  if (auto c = cached(name)) return std::optional<metadata::topic_info>(std::move(*c));
  auto found = _meta->get_topic(name);
  if (found && found->has_value()) {
    std::lock_guard lk(_mu);
    _cache[name] = **found;
  }
  return found;
}

sh::result<metadata::topic_info, metadata::errc> topic_registry::create(
    const std::string& name, int32_t partitions,
    const std::map<std::string, std::string>& configs) {
  auto created = _meta->create_topic(name, partitions, configs);
  if (created) {
    std::lock_guard lk(_mu);
    _cache[name] = *created;
  }
  return created;
}

std::optional<metadata::topic_info> topic_registry::cached(const std::string& name) {
  std::lock_guard lk(_mu);
  auto it = _cache.find(name);
  if (it == _cache.end()) return std::nullopt;
  return it->second;
}

void topic_registry::invalidate(const std::string& name) {
  {
    std::lock_guard lk(_mu);
    _cache.erase(name);
  }
  if (on_invalidate) on_invalidate(name);
}

awaitable<std::pair<kafka::error_code, std::optional<metadata::topic_info>>> resolve_topic(
    broker_context& ctx, const std::string& name, bool auto_create) {
  using out_t = std::pair<kafka::error_code, std::optional<metadata::topic_info>>;
  if (auto c = ctx.topics.cached(name)) co_return out_t{kafka::error_code::none, std::move(c)};
  const bool create = auto_create && ctx.cfg.auto_create_topics;
  co_return co_await run_blocking(ctx.blocking, [&]() -> out_t {
    auto found = ctx.topics.find(name);
    if (!found) {
      if (found.code() == metadata::errc::invalid_argument) {
        return {kafka::error_code::invalid_topic_exception, std::nullopt};
      }
      spdlog::error("topic lookup {}: {}", name, found.message());
      return {kafka::error_code::unknown_server_error, std::nullopt};
    }
    if (found->has_value()) return {kafka::error_code::none, std::move(*found)};
    if (!create) return {kafka::error_code::unknown_topic_or_partition, std::nullopt};
    auto created = ctx.topics.create(name, ctx.cfg.num_partitions, {});
    if (created) {
      spdlog::info("auto-created topic {} with {} partitions", name, ctx.cfg.num_partitions);
      return {kafka::error_code::none, std::move(*created)};
    }
    if (created.code() == metadata::errc::already_exists) {  // raced with another creator
      auto again = ctx.topics.find(name);
      if (again && again->has_value()) return {kafka::error_code::none, std::move(*again)};
    }
    if (created.code() == metadata::errc::invalid_argument) {
      return {kafka::error_code::invalid_topic_exception, std::nullopt};
    }
    spdlog::error("auto-create topic {}: {}", name, created.message());
    return {kafka::error_code::unknown_server_error, std::nullopt};
  });
}

}  // namespace sh::broker
