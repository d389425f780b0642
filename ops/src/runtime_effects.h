// The run-time non-idealities of docs/op-spec.md that the op computes itself: the I-V
// nonlinearity f(v) of the encoded voltages, drift of the conductances with the time since
// programming (applied when the conductances are packed), and the read-noise variances and the
// Gaussian term they scale (added to every tile read before the ADC).
#pragma once

#include <cstdint>

#include "op_attributes.h"

namespace memcc {

// ---- I-V nonlinearity: f(v) = a sinh(b v) ---------------------------------------------------

// x[i] := post * f(pre * x[i]) for i < n (pre = post = 1: the voltages themselves).
void iv_apply(float* x, int64_t n, float a, float b, float pre, float post);
// x[i] := post[i] * f(pre[i] * x[i]): one factor pair per input vector (im2col columns).
void iv_apply_each(float* x, int64_t n, float a, float b, const float* pre, const float* post);

// ---- Drift ------------------------------------------------------------------------------------

// Whether the attributes ask for drift at all (drift_nu or drift_nu_std > 0).
bool drift_enabled(const OpAttributes& a);
// The time the spec uses: T when given, else drift_t0. Throws OpError unless finite and >= 0.
double drift_time(const OpAttributes& a, const float* t_value);
// out := G' = G tau^(-nu) for every device of G [S, K, N] at time t (out may equal G).
void drift_conductances(const OpAttributes& a, const float* G, int64_t S, int64_t K, int64_t N, double t,
                        float* out);

// ---- Read noise -------------------------------------------------------------------------------

// out[k * N + n] := sigma^2 * sum_s G'[s, k, n]^2, the per-device variance of the read current
// per volt^2 (the reference column of S = 1 adds none).
void noise_variance(const float* G, int64_t S, int64_t K, int64_t N, float sigma, float* out);

// What run_layer needs for read noise: the variance matrix (as noise_variance writes it, [K, N])
// and the stream: key noise_seed, c = the node's execution count.
struct VariancePack;
struct ConvTilePack;
struct TileVariancePack;
struct ReadNoise {
  const float* variance = nullptr;
  // The same matrix packed for variance_gemm (AMX-BF16), when the CPU has it: the variance
  // products then run there (within the bound docs/op-spec.md states), else in float32.
  const VariancePack* packed = nullptr;
  // The matrix packed by pack_conv_tiles like D (conv ADC path): each read's variance is then a
  // tile read of the squared voltages on the same kernel.
  const ConvTilePack* conv_tiles = nullptr;
  // The same for the tile unit (AMX-BF16 CPUs): those variances then run there, in bfloat16.
  const TileVariancePack* tile_variance = nullptr;
  uint64_t key = 0;
  uint64_t execution = 0;
};

// Adds the noise term to m reads of nc columns (currents[i * ldc + j], i < m): variance[i * nc + j]
// is sum_k f(v_k)^2 sigma^2 sum_s G'^2 of that read, and the normal is
// normal(key; c, q0 + i, r, j0 + j) (r = 0 for the one term per column without an ADC).
// `z` holds nc floats.
void add_read_noise(float* currents, int64_t ldc, const float* variance, int64_t m, int64_t nc, uint64_t key,
                    uint64_t execution, int64_t q0, int64_t r, int64_t j0, float* z);
// The same with the variances ldv apart (variance[i * ldv + j]), and with row_factor (m floats,
// or null for all 1) read i's variances times row_factor[i] (variance_gemm's row factors).
// With row_max (m floats): each read's largest magnitude after the terms, for the ADC
// (adc_accumulate_rows), where the pass could find it on the way; NaN where it did not.
void add_read_noise_strided(float* currents, int64_t ldc, const float* variance, int64_t ldv, int64_t m, int64_t nc,
                            uint64_t key, uint64_t execution, int64_t q0, int64_t r, int64_t j0, float* z,
                            const float* row_factor = nullptr, float* row_max = nullptr);

}  // namespace memcc
