// The packed form of a node's conductances that a kernel keeps between calls. G is an
// initializer in every model memcc writes, so it is packed once per session (and again only
// when what it was packed for changes, e.g. the drift time); a G that is a graph input may change
// between runs behind the same pointer, so it is packed on every call.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace memcc {

// What a packing was made from: G's buffer and shape, and the drift time it was drifted to.
struct PackedSource {
  const void* source = nullptr;
  std::vector<int64_t> shape;
  double time = 0.0;

  void set(const void* g, const std::vector<int64_t>& g_shape, double t) {
    source = g;
    shape = g_shape;
    time = t;
  }
  // The time matters only when the layer drifts.
  bool made_from(const void* g, const std::vector<int64_t>& g_shape, double t, bool drifts) const {
    return source == g && shape == g_shape && (!drifts || time == t);
  }
};

template <class Packed>
class PackedCache {
 public:
  explicit PackedCache(bool g_is_constant) : g_is_constant_(g_is_constant) {}

  // The cached packing if usable(cached), else pack() (cached when G is constant). Callers keep
  // the returned reference for the call, so a concurrent repack never frees it under them.
  template <class Usable, class Pack>
  std::shared_ptr<const Packed> get(Usable&& usable, Pack&& pack) {
    if (!g_is_constant_) return pack();
    std::lock_guard<std::mutex> lock(mutex_);
    if (!packed_ || !usable(*packed_)) packed_ = pack();
    return packed_;
  }

 private:
  const bool g_is_constant_;
  std::mutex mutex_;
  std::shared_ptr<const Packed> packed_;  // guarded by mutex_
};

}  // namespace memcc
