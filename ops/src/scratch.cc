#include "scratch.h"

#include <algorithm>
#include <vector>

namespace memcc {

float* thread_scratch(ScratchSlot slot, size_t count) {
  thread_local std::vector<float> buffers[kScratchSlots];
  std::vector<float>& b = buffers[static_cast<int>(slot)];
  if (b.size() < count) {
    // Grow geometrically so that a slowly increasing demand does not reallocate every call.
    // The old contents are not needed, so free them before allocating the new block.
    const size_t grown = std::max(count, b.size() + b.size() / 2);
    b.clear();
    b.shrink_to_fit();
    b.resize(grown);
  }
  return b.data();
}

}  // namespace memcc
