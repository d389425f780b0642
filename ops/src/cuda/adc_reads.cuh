// The ADC of tile reads stored by the Store epilogue (crossbar_gemm.cuh): one block per read
// (an input vector's currents over one column tile), acc += Quant(read). Q is the read's largest
// magnitude, or with an overflow rate the t-th smallest magnitude, found by a radix select over
// the magnitudes' bit patterns (non-negative floats order like their bits): four passes of
// 8-bit digits through a shared histogram, linear in the read's length.
#pragma once

#include <cstdint>

#include "device_math.cuh"

namespace memcc {
namespace cuda {

constexpr int kAdcThreads = 256;

__device__ inline float block_max(float v, float* shared) {
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x / 32) ? shared[lane] : 0.0f;
    for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  const float result = shared[0];
  __syncthreads();
  return result;
}

// The t-th smallest (0-based) of |a_j|, j < m.
__device__ inline float block_select(const float* a, int64_t m, int64_t t, unsigned* hist, unsigned* found) {
  uint32_t prefix = 0, mask = 0;
  int64_t rank = t;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
    __syncthreads();
    for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
      const uint32_t key = __float_as_uint(fabsf(a[j]));
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xffu], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t below = 0;
      unsigned digit = 255;
      for (unsigned b = 0; b < 256; ++b) {
        if (below + hist[b] > rank) {
          digit = b;
          break;
        }
        below += hist[b];
      }
      found[0] = digit;
      found[1] = static_cast<unsigned>(below);
    }
    __syncthreads();
    prefix |= static_cast<uint32_t>(found[0]) << shift;
    mask |= 0xffu << shift;
    rank -= found[1];
    __syncthreads();
  }
  return __uint_as_float(prefix);
}

// Grid: (groups * rows reads of vectors, column tiles). cur and acc are [groups][rows][Ng].
__global__ void __launch_bounds__(kAdcThreads) adc_reads(const float* cur, float* acc, int64_t Ng, int64_t tile_cols,
                                                         int bits, float overflow_rate) {
  __shared__ float warp_max[kAdcThreads / 32];
  __shared__ unsigned hist[256];
  __shared__ unsigned found[2];
  const int64_t vector = blockIdx.x;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * tile_cols;
  const int64_t m = c0 + tile_cols < Ng ? tile_cols : Ng - c0;
  const float* read = cur + vector * Ng + c0;
  float* out = acc + vector * Ng + c0;
  const int64_t t = quantile_index(m, overflow_rate);
  float Q;
  if (t == m - 1) {
    float v = 0.0f;
    for (int64_t j = threadIdx.x; j < m; j += blockDim.x) v = fmaxf(v, fabsf(read[j]));
    Q = block_max(v, warp_max);
  } else {
    Q = block_select(read, m, t, hist, found);
  }
  const double delta = adc_step(Q, bits);
  if (delta == 0.0) return;  // Q = 0: the read contributes zeros
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) out[j] += adc_value(read[j], delta, bits);
}

}  // namespace cuda
}  // namespace memcc
