#pragma once
// Latency samples and percentiles for the system benchmarks and the load generator.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace sh::bench {

using bench_clock = std::chrono::steady_clock;

inline double seconds_since(bench_clock::time_point t0) {
  return std::chrono::duration<double>(bench_clock::now() - t0).count();
}

// Collects samples in microseconds; percentiles by nearest rank on a sorted copy.
class latency_stats {
 public:
  void reserve(size_t n) { _us.reserve(n); }
  void add_us(double us) {
    _us.push_back(us);
    _sorted = false;
  }
  void add(bench_clock::duration d) {
    add_us(std::chrono::duration<double, std::micro>(d).count());
  }
  void merge(const latency_stats& o) {
    _us.insert(_us.end(), o._us.begin(), o._us.end());
    _sorted = false;
  }
  size_t count() const { return _us.size(); }

  // p in [0, 100]. 0 when empty.
  double percentile_us(double p) const {
    if (_us.empty()) return 0;
    sort();
    auto rank = static_cast<size_t>(p / 100.0 * static_cast<double>(_us.size()));
    if (rank >= _us.size()) rank = _us.size() - 1;
    return _us[rank];
  }
  double max_us() const { return percentile_us(100); }
  double mean_us() const {
    if (_us.empty()) return 0;
    double s = 0;
    for (double v : _us) s += v;
    return s / static_cast<double>(_us.size());
  }

 private:
  void sort() const {
    if (!_sorted) {
      std::sort(_us.begin(), _us.end());
      _sorted = true;
    }
  }
  mutable std::vector<double> _us;
  mutable bool _sorted = false;
};

}  // namespace sh::bench
