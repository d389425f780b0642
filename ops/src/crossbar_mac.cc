#include "crossbar_mac.h"

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

#include <cblas.h>

#include "errors.h"
#include "quantize.h"
#include "runtime_effects.h"
#include "small_gemm.h"
#include "variance_gemm.h"

namespace memcc {
namespace {

blasint blas_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) {
    throw OpError(std::string("tensor too large for the 32-bit BLAS: ") + what + " = " + std::to_string(v));
  }
  return static_cast<blasint>(v);
}

}  // namespace

void blas_use_single_thread() { scipy_openblas_set_num_threads(1); }

void sgemm(bool trans_a, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
           int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    // BLAS insists on lda >= 1 even when K = 0; the product is empty anyway.
    for (int64_t i = 0; i < M; ++i) {
      float* c = C + i * ldc;
      for (int64_t j = 0; j < N; ++j) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
    }
    return;
  }
  scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, blas_int(M, "M"),
                    blas_int(N, "N"), blas_int(K, "K"), 1.0f, A, blas_int(lda, "lda"), B,
                    blas_int(ldb, "ldb"), beta, C, blas_int(ldc, "ldc"));
}

void effective_matrix(const float* G, int64_t S, int64_t K, int64_t N, float g_ref, float scale,
                      float* out) {
  const int64_t n = K * N;
  // The difference is formed in float first, as D is defined; the scale is a second rounding,
  // matching weight_scale * D.
  if (S == 2) {
    const float* pos = G;
    const float* neg = G + n;
    if (scale == 1.0f) {
      for (int64_t i = 0; i < n; ++i) out[i] = pos[i] - neg[i];
    } else {
      for (int64_t i = 0; i < n; ++i) out[i] = scale * (pos[i] - neg[i]);
    }
  } else {
    if (scale == 1.0f) {
      for (int64_t i = 0; i < n; ++i) out[i] = G[i] - g_ref;
    } else {
      for (int64_t i = 0; i < n; ++i) out[i] = scale * (G[i] - g_ref);
    }
  }
}

void tiled_adc_mac(const float* v, bool v_columns, int64_t ldv, int64_t m, int64_t K, const float* D,
                   int64_t ldd, int64_t nc, const AdcTiling& tiling, float* acc, float* buf,
                   float* scratch, const TileNoise* noise) {
  std::fill(acc, acc + m * nc, 0.0f);
  if (m <= 0 || nc <= 0) return;
  const int64_t tr = std::max<int64_t>(1, tiling.tile_rows);
  for (int64_t r0 = 0; r0 < K; r0 += tr) {
    const int64_t kr = std::min(tr, K - r0);
    const float* a = v_columns ? v + r0 * ldv : v + r0;
    // The tile's currents for the whole block, small enough to stay in cache for the ADC pass.
    sgemm(v_columns, m, nc, kr, a, ldv, D + r0 * ldd, ldd, 0.0f, buf, nc);
    if (noise) {
      // The read's variance: one more product, of f(v)^2 with sigma^2 sum_s G'^2.
      const float* sq = v_columns ? noise->squares + r0 * ldv : noise->squares + r0;
      // Row tiles under 32 rows fill less than one bfloat16 tile: the float32 product is as cheap.
      // Vectors as columns (conv) stay on float32 too: measured, variance_gemm's transposing
      // conversion costs more than the tile unit saves there (bench_nonidealities, conv adc).
      if (!(noise->packed && kr >= 32 && !v_columns &&
            variance_gemm(*noise->packed, sq, v_columns, ldv, m, r0, kr, noise->j0, nc, noise->var_buf, nc))) {
        sgemm(v_columns, m, nc, kr, sq, ldv, noise->variance + r0 * ldd, ldd, 0.0f, noise->var_buf, nc);
      }
      add_read_noise(buf, nc, noise->var_buf, m, nc, noise->key, noise->execution, noise->q0, r0 / tr, noise->j0,
                     noise->z);
    }
    if (tiling.bits == 0) {
      for (int64_t i = 0; i < m * nc; ++i) acc[i] += buf[i];
      continue;
    }
    adc_accumulate_rows(buf, m, nc, nc, tiling.bits, tiling.overflow_rate, acc, nc, scratch);
  }
}

// The read-noise terms of one row tile's reads over w columns (tiles of tc): the variances of
// all w columns in one product (variance_gemm converts the block's squares once, not once per
// column tile), then each read's normals. buf is [m, w]; noise->variance, j0 at the first column.
// row_max gets each read's largest magnitude ([column tile][row], NaN where not found).
static void add_wide_noise(const TileNoise& noise, int64_t ldv, int64_t m, int64_t r0, int64_t kr, int64_t r,
                           int64_t ldd, int64_t w, int64_t tc, float* buf, float* row_max) {
  // The tile unit's rows come back scaled: their factors go into the terms' pass.
  thread_local std::vector<float> row_factor;
  row_factor.resize(static_cast<size_t>(m));
  const float* factor = row_factor.data();
  const bool late = noise.squares == nullptr;
  const float* x = late ? noise.inputs + r0 : noise.squares + r0;
  if (!(noise.packed && kr >= 32 &&
        variance_gemm(*noise.packed, x, false, ldv, m, r0, kr, noise.j0, w, noise.var_buf, w, row_factor.data(),
                      late))) {
    const float* sq = x;
    int64_t ldsq = ldv;
    if (late) {
      thread_local std::vector<float> block;  // this row tile's squares
      block.resize(static_cast<size_t>(m * kr));
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t k = 0; k < kr; ++k) block[static_cast<size_t>(i * kr + k)] = x[i * ldv + k] * x[i * ldv + k];
      }
      sq = block.data();
      ldsq = kr;
    }
    sgemm(false, m, w, kr, sq, ldsq, noise.variance + r0 * ldd, ldd, 0.0f, noise.var_buf, w);
    factor = nullptr;
  }
  for (int64_t c0 = 0; c0 < w; c0 += tc) {
    const int64_t nc = std::min(tc, w - c0);
    add_read_noise_strided(buf + c0, w, noise.var_buf + c0, w, m, nc, noise.key, noise.execution, noise.q0, r,
                           noise.j0 + c0, noise.z, factor, row_max + c0 / tc * m);
  }
}

void tiled_adc_mac_wide(const float* v, int64_t ldv, int64_t m, int64_t K, const float* D, int64_t ldd,
                        int64_t w, int64_t tc, const AdcTiling& tiling, float* acc, float* buf, float* scratch,
                        const SmallGemmPack* small, int64_t n0, const TileNoise* noise) {
  std::fill(acc, acc + m * w, 0.0f);
  if (m <= 0 || w <= 0) return;
  const int64_t tr = std::max<int64_t>(1, tiling.tile_rows);
  for (int64_t r0 = 0; r0 < K; r0 += tr) {
    const int64_t kr = std::min(tr, K - r0);
    if (noise) {
      // Every read gets its term before the ADC: the currents go through buf.
      if (small) {
        small_gemm_block(*small, v + r0, ldv, m, r0, kr, n0, w, buf, w, false);
      } else {
        sgemm(false, m, w, kr, v + r0, ldv, D + r0 * ldd, ldd, 0.0f, buf, w);
      }
      thread_local std::vector<float> row_max;  // the reads' maxima, found by the noise pass
      row_max.resize(static_cast<size_t>((w + tc - 1) / tc * m));
      add_wide_noise(*noise, ldv, m, r0, kr, r0 / tr, ldd, w, tc, buf, row_max.data());
      if (tiling.bits == 0) {
        for (int64_t i = 0; i < m * w; ++i) acc[i] += buf[i];
        continue;
      }
      for (int64_t c0 = 0; c0 < w; c0 += tc) {
        const int64_t nc = std::min(tc, w - c0);
        adc_accumulate_rows(buf + c0, m, nc, w, tiling.bits, tiling.overflow_rate, acc + c0, w, scratch,
                            row_max.data() + c0 / tc * m);
      }
      continue;
    }
    if (small) {
      // D's row tile read from its panels: no repacking per call.
      const bool direct = tiling.bits == 0;
      small_gemm_block(*small, v + r0, ldv, m, r0, kr, n0, w, direct ? acc : buf, w, direct);
      if (direct) continue;
      for (int64_t c0 = 0; c0 < w; c0 += tc) {
        const int64_t nc = std::min(tc, w - c0);
        adc_accumulate_rows(buf + c0, m, nc, w, tiling.bits, tiling.overflow_rate, acc + c0, w, scratch);
      }
      continue;
    }
    if (tiling.bits == 0) {
      sgemm(false, m, w, kr, v + r0, ldv, D + r0 * ldd, ldd, 1.0f, acc, w);
      continue;
    }
    sgemm(false, m, w, kr, v + r0, ldv, D + r0 * ldd, ldd, 0.0f, buf, w);
    for (int64_t c0 = 0; c0 < w; c0 += tc) {
      const int64_t nc = std::min(tc, w - c0);
      adc_accumulate_rows(buf + c0, m, nc, w, tiling.bits, tiling.overflow_rate, acc + c0, w, scratch);
    }
  }
}

void tiled_adc_mac_columns(const float* v, int64_t ldv, int64_t m, int64_t K, const float* D, int64_t ldd,
                           int64_t nc, const AdcTiling& tiling, float* acc, int64_t ld_acc, float* buf,
                           float* scratch) {
  if (m <= 0 || nc <= 0) return;
  for (int64_t j = 0; j < nc; ++j) std::fill(acc + j * ld_acc, acc + j * ld_acc + m, 0.0f);
  const int64_t tr = std::max<int64_t>(1, tiling.tile_rows);
  for (int64_t r0 = 0; r0 < K; r0 += tr) {
    const int64_t kr = std::min(tr, K - r0);
    if (tiling.bits == 0) {
      // No ADC: the tile sums are plain partial sums, accumulated by the GEMM itself.
      sgemm(true, nc, m, kr, D + r0 * ldd, ldd, v + r0 * ldv, ldv, 1.0f, acc, ld_acc);
      continue;
    }
    sgemm(true, nc, m, kr, D + r0 * ldd, ldd, v + r0 * ldv, ldv, 0.0f, buf, m);
    adc_accumulate_columns(buf, nc, m, m, tiling.bits, tiling.overflow_rate, acc, ld_acc, scratch);
  }
}

}  // namespace memcc
