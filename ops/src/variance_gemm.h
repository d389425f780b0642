// The read-noise variance product, sum_k f(v_k)^2 * V[k, j] with V = sigma^2 sum_s G'^2, on the
// CPU's AMX-BF16 tile unit: both factors rounded to bfloat16, products and sums in float32
// (docs/op-spec.md, "Numerical agreement", states the bound this keeps). The variance only scales
// the noise and every term is >= 0, so the rounding moves it by at most 2^-7 + 2^-16 relative,
// while the tile unit runs the product of the same size as the layer's own at a fraction of its
// cost. Without AMX (or for shapes it does not cover) the callers keep the exact float32 sgemm.
#pragma once

#include <cstdint>

#include "cache_line_vector.h"

namespace memcc {

// V [K, N] packed once: column blocks of 16, row blocks of 32 (one 1 KiB tile each, pairs of rows
// interleaved as the tile unit reads them), zero-padded; scaled by a power of two (exact) so
// that its largest value lies in [1, 2) and small values stay normal numbers.
struct VariancePack {
  int64_t K = 0, N = 0, k_blocks = 0, n_blocks = 0;
  float unscale = 1.0f;  // the power of two that undoes the packing scale
  CacheLineVector<uint16_t> tiles;
  bool empty() const { return tiles.empty(); }
};

// Whether this CPU and OS run AMX-BF16 (the OS permission is requested on the first call).
// MEMCC_OPS_AMX=0 turns it off (comparisons, tests of the fallback).
bool variance_amx_available();

// Empty when AMX is not available.
VariancePack pack_variance(const float* V, int64_t K, int64_t N);

// out[i * ldo + j] = sum over k0 <= k < k0 + kc of sq_i[k] * V[k, j0 + j] for i < m, j < nc, with
// the vectors' squares as rows (sq[i * ldsq + k - k0]) or, when sq_columns, as columns
// (sq[(k - k0) * ldsq + i]); sq points at the slice's first element. Returns false (writing
// nothing) when the pack does not serve these bounds: k0 not a multiple of 32, j0 not a multiple
// of 32, or the pack empty; the caller then computes the product itself.
// With row_factor (m floats), row i of out may be left scaled by a power of two and
// row_factor[i] is what undoes it (out[i * ldo + j] * row_factor[i] is the value, exactly unless
// it leaves float32's normal range): callers that read every variance once fold the factor into
// that read instead of a pass over out.
// With square_inputs (vectors as rows only), sq holds the values themselves and their squares
// (x * x in float32, as a caller's squaring pass would round them) are formed as they are converted.
bool variance_gemm(const VariancePack& pack, const float* sq, bool sq_columns, int64_t ldsq, int64_t m,
                   int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* out, int64_t ldo,
                   float* row_factor = nullptr, bool square_inputs = false);

}  // namespace memcc
