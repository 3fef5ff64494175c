// The orphan sweep: objects in the bucket the metadata store does not know.
#include <spdlog/spdlog.h>

#include <set>

#include "compactor.h"
#include "sh/storage/segment.h"

namespace sh::broker::compaction {
namespace {

bool ends_with(const std::string& s, const char* suffix) {
  std::string_view x(suffix);
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

constexpr size_t k_lookup_chunk = 1000;

}  // namespace

cresult<sweep_outcome> orphan_sweeper::sweep(metadata::metadata_store& meta,
                                             storage::object_store& objects, int64_t now_ms) {
  sweep_outcome out;
  const std::string base = _options.prefix.empty() ? "" : _options.prefix + "/";
  // Only the two key families StreamHouse writes data under; anything else in the bucket is
  // not ours to judge.
  std::vector<std::string> keys;
  for (const char* family : {"ingest/", "topics/"}) {
    auto listed = objects.list(base + family);
    if (!listed) return make_error(errc::storage_error, listed.message());
    for (auto& o : *listed) {
      if (ends_with(o.key, ".ing") || ends_with(o.key, ".seg")) keys.push_back(std::move(o.key));
    }
  }
  out.listed = keys.size();
  std::set<std::string> unregistered;
  for (size_t i = 0; i < keys.size(); i += k_lookup_chunk) {
    std::vector<std::string> chunk(
        keys.begin() + static_cast<std::ptrdiff_t>(i),
        keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), i + k_lookup_chunk)));
    auto known = meta.registered_objects(chunk);
    if (!known) return make_error(errc::metadata_error, known.message());
    std::set<std::string> registered(known->begin(), known->end());
    for (auto& k : chunk) {
      if (!registered.count(k)) unregistered.insert(std::move(k));
    }
  }
  out.unregistered = unregistered.size();
  // Forget keys that are gone or registered now; remember new suspects.
  for (auto it = _first_seen.begin(); it != _first_seen.end();) {
    it = unregistered.count(it->first) ? std::next(it) : _first_seen.erase(it);
  }
  std::vector<std::string> due;
  for (const auto& k : unregistered) {
    auto [it, added] = _first_seen.emplace(k, now_ms);
    if (!added && now_ms - it->second >= _options.grace_ms) due.push_back(k);
  }
  if (due.empty()) return out;
  for (const auto& key : due) {
    if (ends_with(key, ".seg")) {
      // Only the partition's compaction lease holder writes its segment keys (and may write
      // the same key again after a crash): sweep them only while holding that lease, from the
      // thread that compacts, so no PUT of ours can be between its write and its swap.
      auto parts = storage::parse_segment_key(std::string_view(key).substr(base.size()));
      if (!parts) continue;
      std::string name = "compact/" + parts->topic + "/" + std::to_string(parts->partition);
      auto held = meta.acquire_lease(name, _options.owner, _options.lease_ttl_ms);
      if (!held || held->owner != _options.owner) continue;
    }
    // Checked again right before the delete: a commit may have registered it meanwhile.
    auto known = meta.registered_objects({key});
    if (!known) return make_error(errc::metadata_error, known.message());
    if (!known->empty()) {
      _first_seen.erase(key);
      continue;
    }
    auto gone = objects.remove(key);
    if (!gone) return make_error(errc::storage_error, gone.message());
    spdlog::info("orphan sweep: deleted {} (unregistered for at least {} ms)", key,
                 _options.grace_ms);
    _first_seen.erase(key);
    ++out.deleted;
  }
  return out;
}

}  // namespace sh::broker::compaction
