#include "scratch.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace memcc {

// Whole cache lines (64 bytes): the tile unit's stores into a scratch block (variance_gemm's
// direct path) need 64-byte aligned rows, and vector loads that straddle lines cost more.
constexpr size_t kLineFloats = 16;

float* thread_scratch(ScratchSlot slot, size_t count) {
  thread_local std::vector<float> buffers[kScratchSlots];
  std::vector<float>& b = buffers[static_cast<int>(slot)];
  count += kLineFloats - 1;  // room to start at the next line
  if (b.size() < count) {
    // Grow geometrically so that a slowly increasing demand does not reallocate every call.
    // The old contents are not needed, so free them before allocating the new block.
    const size_t grown = std::max(count, b.size() + b.size() / 2);
    b.clear();
    b.shrink_to_fit();
    b.resize(grown);
  }
  const uintptr_t at = reinterpret_cast<uintptr_t>(b.data());
  return b.data() + ((64 - at % 64) % 64) / sizeof(float);
}

}  // namespace memcc
