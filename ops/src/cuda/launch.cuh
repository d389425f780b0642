// Grid sizing shared by the element-wise kernels.
#pragma once

#include <cstdint>

namespace memcc {
namespace cuda {

constexpr int kElementThreads = 256;

// Blocks for one thread per element, capped: the kernels stride over what the grid misses.
inline unsigned element_blocks(int64_t n) {
  const int64_t blocks = (n + kElementThreads - 1) / kElementThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > (1 << 20) ? (1 << 20) : blocks));
}

// Grid-stride loop index helpers (64-bit: tensors may exceed 2^31 elements).
__device__ inline int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

}  // namespace cuda
}  // namespace memcc
