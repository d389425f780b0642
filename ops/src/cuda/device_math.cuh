// Element-wise arithmetic of docs/op-spec.md on the device, written to give the CPU kernels'
// results (quantize.cc, runtime_effects.cc): the same operations in the same precision, so the
// two agree to float rounding and quantizer decisions only differ within rounding of a boundary.
#pragma once

#include <cstdint>

#include "../philox.h"

namespace memcc {
namespace cuda {

__device__ inline float clamp_unit(float x) { return fminf(fmaxf(x, -1.0f), 1.0f); }

// Steps 2-4 (and f) for one entry of a vector whose scale has reciprocal inv_s (0 for s = 0).
// `levels` = 2^(dac_bits - 1) - 1, or 0 without a DAC.
__device__ inline float encode_value(float x, float inv_s, float levels, float v_max, float iv_a, float iv_b) {
  float v;
  if (levels > 0.0f) {
    v = rintf(clamp_unit(x * inv_s) * levels) * (v_max / levels);
  } else {
    v = clamp_unit(x * inv_s) * v_max;
  }
  if (iv_b > 0.0f) v = static_cast<float>(static_cast<double>(iv_a) * sinh(static_cast<double>(iv_b) * v));
  return v;
}

// Quant's step 1: the index t of Q among the sorted magnitudes of a read of m values.
__device__ inline int64_t quantile_index(int64_t m, float overflow_rate) {
  int64_t t = m - 1 - static_cast<int64_t>(floor(static_cast<double>(overflow_rate) * static_cast<double>(m)));
  return t < 0 ? 0 : (t > m - 1 ? m - 1 : t);
}

// Steps 2-3: Δ = 2^(c + 1 - b), c the smallest integer with 2^c >= Q; 0 when Q = 0.
__device__ inline double adc_step(float Q, int bits) {
  if (!(Q > 0.0f)) return 0.0;
  int e = 0;
  const double f = frexp(static_cast<double>(Q), &e);
  const int c = f == 0.5 ? e - 1 : e;
  return ldexp(1.0, c + 1 - bits);
}

// Step 4 for one value of a read with step delta > 0.
__device__ inline float adc_value(float a, double delta, int bits) {
  const double hi = ldexp(1.0, bits - 1) - 1.0, lo = -ldexp(1.0, bits - 1);
  return static_cast<float>(rint(fmin(fmax(a / delta, lo), hi)) * delta);
}

// normal(key; c0, c1, c2, c3) rounded to float, as the CPU's counter_normals stores it.
__device__ inline float counter_normal(uint64_t key, uint64_t c0, uint64_t c1, uint64_t c2, uint64_t c3) {
  return static_cast<float>(philox::normal(key, static_cast<uint32_t>(c0), static_cast<uint32_t>(c1),
                                           static_cast<uint32_t>(c2), static_cast<uint32_t>(c3)));
}

}  // namespace cuda
}  // namespace memcc
