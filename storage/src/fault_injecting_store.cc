#include "sh/storage/fault_injecting_store.h"

#include <thread>

namespace sh::storage {

const char* to_string(store_op op) noexcept {
  switch (op) {
    case store_op::put:
      return "put";
    case store_op::get:
      return "get";
    case store_op::get_range:
      return "get_range";
    case store_op::head:
      return "head";
    case store_op::list:
      return "list";
    case store_op::remove:
      return "remove";
    case store_op::remove_many:
      return "remove_many";
  }
  return "?";
}

fault_injecting_store::fault_injecting_store(std::unique_ptr<object_store> backend, uint64_t seed)
    : _backend(std::move(backend)), _rng(seed) {}

void fault_injecting_store::add_rule(fault_rule rule) {
  std::lock_guard lock(_mu);
  _rules.push_back(std::move(rule));
  _rule_seen.push_back(0);
}

void fault_injecting_store::set_failure_probability(store_op op, double p, errc code) {
  std::lock_guard lock(_mu);
  _probability[static_cast<int>(op)] = p;
  _probability_code[static_cast<int>(op)] = code;
}

void fault_injecting_store::set_before_call(
    std::function<void(store_op, const std::string&)> hook) {
  std::lock_guard lock(_mu);
  _before = std::move(hook);
}

void fault_injecting_store::clear() {
  std::lock_guard lock(_mu);
  _rules.clear();
  _rule_seen.clear();
  for (auto& p : _probability) p = 0;
  _before = nullptr;
}

uint64_t fault_injecting_store::calls(store_op op) const {
  std::lock_guard lock(_mu);
  return _calls[static_cast<int>(op)];
}

uint64_t fault_injecting_store::injected_failures() const {
  std::lock_guard lock(_mu);
  return _injected;
}

fault_injecting_store::decision fault_injecting_store::decide(store_op op, const std::string& key) {
  std::function<void(store_op, const std::string&)> before;
  decision d;
  {
    std::lock_guard lock(_mu);
    const int i = static_cast<int>(op);
    ++_calls[i];
    before = _before;
    for (size_t r = 0; r < _rules.size(); ++r) {
      const fault_rule& rule = _rules[r];
      if (rule.op != op || !key.starts_with(rule.key_prefix)) continue;
      const int seen = _rule_seen[r]++;
      if (seen < rule.skip) continue;
      if (rule.times >= 0 && seen >= rule.skip + rule.times) continue;
      d.delay = rule.delay;
      if (rule.code != errc::ok) {
        d.fail = true;
        d.code = rule.code;
        d.after_effect = rule.after_effect;
      }
      break;
    }
    if (!d.fail && _probability[i] > 0 &&
        std::uniform_real_distribution<double>(0, 1)(_rng) < _probability[i]) {
      d.fail = true;
      d.code = _probability_code[i];
    }
    if (d.fail) ++_injected;
  }
  if (before) before(op, key);
  if (d.delay.count() > 0) std::this_thread::sleep_for(d.delay);
  return d;
}

error_info<errc> fault_injecting_store::injected(store_op op, const std::string& key,
                                                 errc code) const {
  return make_error(code, std::string(to_string(op)) + " '" + key + "': injected " +
                              to_string(code) + " (fault_injecting_store)");
}

sresult<void> fault_injecting_store::put(const std::string& key, std::span<const uint8_t> data) {
  auto d = decide(store_op::put, key);
  if (d.fail && !d.after_effect) return injected(store_op::put, key, d.code);
  auto r = _backend->put(key, data);
  if (d.fail && r) return injected(store_op::put, key, d.code);
  return r;
}

// Conditional and multipart puts count and fail as store_op::put: the rules callers write are
// about "writing an object", whichever way the writer chose.
sresult<void> fault_injecting_store::put_if_absent(const std::string& key,
                                                   std::span<const uint8_t> data) {
  auto d = decide(store_op::put, key);
  if (d.fail && !d.after_effect) return injected(store_op::put, key, d.code);
  auto r = _backend->put_if_absent(key, data);
  if (d.fail && r) return injected(store_op::put, key, d.code);
  return r;
}

sresult<void> fault_injecting_store::put_multipart(const std::string& key,
                                                   std::span<const uint8_t> data,
                                                   uint64_t part_size) {
  auto d = decide(store_op::put, key);
  if (d.fail && !d.after_effect) return injected(store_op::put, key, d.code);
  auto r = _backend->put_multipart(key, data, part_size);
  if (d.fail && r) return injected(store_op::put, key, d.code);
  return r;
}

sresult<bytes> fault_injecting_store::get(const std::string& key) {
  auto d = decide(store_op::get, key);
  if (d.fail) return injected(store_op::get, key, d.code);
  return _backend->get(key);
}

sresult<bytes> fault_injecting_store::get_range(const std::string& key, uint64_t offset,
                                                uint64_t length) {
  auto d = decide(store_op::get_range, key);
  if (d.fail) return injected(store_op::get_range, key, d.code);
  return _backend->get_range(key, offset, length);
}

sresult<object_info> fault_injecting_store::head(const std::string& key) {
  auto d = decide(store_op::head, key);
  if (d.fail) return injected(store_op::head, key, d.code);
  return _backend->head(key);
}

sresult<std::vector<object_info>> fault_injecting_store::list(const std::string& prefix) {
  auto d = decide(store_op::list, prefix);
  if (d.fail) return injected(store_op::list, prefix, d.code);
  return _backend->list(prefix);
}

sresult<void> fault_injecting_store::remove(const std::string& key) {
  auto d = decide(store_op::remove, key);
  if (d.fail && !d.after_effect) return injected(store_op::remove, key, d.code);
  auto r = _backend->remove(key);
  if (d.fail && r) return injected(store_op::remove, key, d.code);
  return r;
}

sresult<void> fault_injecting_store::remove_many(std::span<const std::string> keys) {
  const std::string first = keys.empty() ? std::string() : keys.front();
  auto d = decide(store_op::remove_many, first);
  if (d.fail && !d.after_effect) return injected(store_op::remove_many, first, d.code);
  auto r = _backend->remove_many(keys);
  if (d.fail && r) return injected(store_op::remove_many, first, d.code);
  return r;
}

std::string fault_injecting_store::describe() const {
  return "faulty(" + _backend->describe() + ")";
}

}  // namespace sh::storage
