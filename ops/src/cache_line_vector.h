// Vectors whose storage starts on a 64-byte boundary, for the AMX tile unit's operands: a tile
// row (64 bytes) that straddles two cache lines makes tile loads and stores 2-3x slower (a
// micro benchmark of the conv read-noise variance reads: 9 ns a product from aligned tiles,
// 23 ns from tiles 16 bytes off, which is where std::vector's malloc'd storage starts).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace memcc {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};
template <class T>
using CacheLineVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace memcc
