// object_store in memory: a sorted map under a mutex. For unit tests of the modules above
// storage (not durable, by design).
#include <map>
#include <mutex>

#include "sh/storage/object_store.h"

namespace sh::storage {
namespace {

class memory_store final : public object_store {
 public:
  sresult<void> put(const std::string& key, std::span<const uint8_t> data) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    auto value = std::make_shared<const bytes>(data.begin(), data.end());
    std::lock_guard lock(_mu);
    _objects[key] = std::move(value);
    return {};
  }
  sresult<void> put_if_absent(const std::string& key, std::span<const uint8_t> data) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    auto value = std::make_shared<const bytes>(data.begin(), data.end());
    std::lock_guard lock(_mu);
    if (!_objects.emplace(key, std::move(value)).second) {
      return make_error(errc::already_exists, "put_if_absent '" + key + "': object exists");
    }
    return {};
  }
  sresult<bytes> get(const std::string& key) override {
    auto v = find(key, "get");
    if (!v) return v.error();
    return bytes(**v);
  }
  sresult<bytes> get_range(const std::string& key, uint64_t offset, uint64_t length) override {
    auto v = find(key, "get_range");
    if (!v) return v.error();
    const bytes& b = **v;
    if (offset > b.size()) {
      return make_error(errc::invalid_argument, "get_range '" + key + "': offset " +
                                                    std::to_string(offset) + " is past the end (" +
                                                    std::to_string(b.size()) + " bytes)");
    }
    const uint64_t n = std::min<uint64_t>(length, b.size() - offset);
    return bytes(b.begin() + static_cast<ptrdiff_t>(offset),
                 b.begin() + static_cast<ptrdiff_t>(offset + n));
  }
  sresult<object_info> head(const std::string& key) override {
    auto v = find(key, "head");
    if (!v) return v.error();
    return object_info{key, (*v)->size()};
  }
  sresult<std::vector<object_info>> list(const std::string& prefix) override {
    std::vector<object_info> out;
    std::lock_guard lock(_mu);
    for (auto it = _objects.lower_bound(prefix);
         it != _objects.end() && it->first.starts_with(prefix); ++it) {
      out.push_back(object_info{it->first, it->second->size()});
    }
    return out;
  }
  sresult<void> remove(const std::string& key) override {
    if (auto ok = validate_key(key); !ok) return ok.error();
    std::lock_guard lock(_mu);
    _objects.erase(key);
    return {};
  }
  std::string describe() const override { return "memory://"; }

 private:
  sresult<std::shared_ptr<const bytes>> find(const std::string& key, const char* op) {
    if (auto ok = validate_key(key); !ok) return ok.error();
    std::lock_guard lock(_mu);
    auto it = _objects.find(key);
    if (it == _objects.end()) {
      return make_error(errc::not_found, std::string(op) + " '" + key + "': no such object");
    }
    return it->second;
  }

  std::mutex _mu;
  std::map<std::string, std::shared_ptr<const bytes>> _objects;
};

}  // namespace

std::unique_ptr<object_store> open_memory_store() { return std::make_unique<memory_store>(); }

}  // namespace sh::storage
