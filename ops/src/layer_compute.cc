#include "layer_compute.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <mutex>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cache_line_vector.h"
#include "conv_tiles.h"
#include "counter_normal.h"
#include "crossbar_mac.h"
#include "errors.h"
#include "im2col.h"
#include "normals_avx512.h"
#include "philox.h"
#include "quantize.h"
#include "scratch.h"
#include "simd_dispatch.h"
#include "small_gemm.h"
#include "variance_conv.h"
#include "variance_gemm.h"

namespace memcc {
namespace {

// Below this a task costs more to hand to another thread than to compute.
constexpr int64_t kMinTaskFlops = int64_t{1} << 20;
// Encoded input vectors or patches of one task: 4 MiB, so a task's working set stays in L2/L3
// and scratch stays bounded whatever the batch.
constexpr int64_t kScratchFloats = int64_t{1} << 20;
// OpenBLAS's float micro-kernels are 16 columns wide on AVX-512; blocks on that grid waste none.
constexpr int64_t kColumnAlign = 16;
// Columns per sgemm call of the matmul ADC path (a whole number of column tiles).
constexpr int64_t kMaxCallCols = 512;
// Positions per sub-block of the packed conv tile reads: the sub-block's patches, its tile
// reads and its slice of Y stay in cache from im2col through the ADC and step 8.
constexpr int64_t kSubPositions = 256;
// Positions that go through all row tiles together: their currents and ADC sums (tile columns x
// positions each) stay in L1.
constexpr int64_t kReadPositions = 48;
// Row stride of a sub-block's patches: a multiple of 16 floats plus one cache line, so that the
// rows a micro-kernel walks do not all map to the same few L1 sets.
constexpr int64_t kSubPad = 16;

// The read-noise state of one task's tile reads: the squared encoded inputs (`count` values),
// room for one normal per column of a read (`cols`), and per-read variances (`reads` values).
// With square_late, the squares are left to the conversion for the tile unit (tn.inputs).
TileNoise tile_noise(const ReadNoise& noise, const float* encoded, int64_t count, int64_t reads, int64_t cols,
                     int64_t q0, bool square_late = false) {
  TileNoise tn;
  float* sq = thread_scratch(ScratchSlot::Squares, static_cast<size_t>((square_late ? 0 : count) + cols));
  if (square_late) {
    tn.inputs = encoded;
  } else {
    for (int64_t i = 0; i < count; ++i) sq[i] = encoded[i] * encoded[i];
    tn.squares = sq;
  }
  tn.z = sq + (square_late ? 0 : count);
  tn.var_buf = thread_scratch(ScratchSlot::NoiseReads, static_cast<size_t>(reads));
  tn.packed = noise.packed;
  tn.key = noise.key;
  tn.execution = noise.execution;
  tn.q0 = q0;
  return tn;
}

AdcTiling tiling_of(const OpAttributes& a, int64_t K) {
  AdcTiling t;
  t.tile_rows = a.tile_rows > 0 ? std::min(a.tile_rows, K) : K;
  t.bits = a.adc_bits;
  t.overflow_rate = static_cast<double>(a.adc_overflow_rate);
  return t;
}

// Step 8's factor weight_scale * s / V_max of one input vector.
inline float output_factor(const OpAttributes& a, float s) {
  return static_cast<float>(static_cast<double>(a.weight_scale) * s / a.max_input_voltage);
}

// rows x cols block at y (row stride ld) := bias (or 0); the GEMM then accumulates onto it.
void fill_rows(float* y, int64_t rows, int64_t cols, int64_t ld, const float* bias) {
  for (int64_t i = 0; i < rows; ++i) {
    float* r = y + i * ld;
    if (bias) {
      std::copy(bias, bias + cols, r);
    } else {
      std::fill(r, r + cols, 0.0f);
    }
  }
}

// y[q] = y[q] * f[q] + b (step 8 and the bias); a loop of its own so that it vectorises.
// With relu, also step 9's ReLU (NaN stays NaN), saving the kernel's pass over Y.
MEMCC_SIMD_CLONES
void scale_add(float* y, const float* f, float b, int64_t n, bool relu) {
  if (relu) {
    for (int64_t q = 0; q < n; ++q) {
      const float v = y[q] * f[q] + b;
      y[q] = v < 0.0f ? 0.0f : v;
    }
  } else {
    for (int64_t q = 0; q < n; ++q) y[q] = y[q] * f[q] + b;
  }
}

// y[q] = a[q] * f[q] + b (step 8 and the bias, out of place), then ReLU when relu (NaN stays NaN).
MEMCC_SIMD_CLONES
void scale_store(float* y, const float* a, const float* f, float b, int64_t n, bool relu) {
  for (int64_t q = 0; q < n; ++q) y[q] = a[q] * f[q] + b;
  if (relu) {
    for (int64_t q = 0; q < n; ++q) y[q] = y[q] < 0.0f ? 0.0f : y[q];
  }
}

// y[j] = a[j] * f + b[j] (b may be null), then ReLU when relu.
MEMCC_SIMD_CLONES
void scale_row(float* y, const float* a, float f, const float* b, int64_t n, bool relu) {
  if (b) {
    for (int64_t j = 0; j < n; ++j) y[j] = a[j] * f + b[j];
  } else {
    for (int64_t j = 0; j < n; ++j) y[j] = a[j] * f;
  }
  if (relu) {
    for (int64_t j = 0; j < n; ++j) y[j] = y[j] < 0.0f ? 0.0f : y[j];
  }
}

// mx[i] = max over c < channels of |x[c * n + i]|.
MEMCC_SIMD_CLONES
void channel_abs_max(const float* x, int64_t channels, int64_t n, float* mx) {
  // Starts at 0 and keeps the old value when |x| is NaN, as encode_columns' own scan does.
  std::fill(mx, mx + n, 0.0f);
  for (int64_t c = 0; c < channels; ++c) {
    const float* xc = x + c * n;
    for (int64_t i = 0; i < n; ++i) {
      const float v = std::fabs(xc[i]);
      mx[i] = mx[i] < v ? v : mx[i];
    }
  }
}

// out[i] = max(out[i], w[i]) (both non-negative).
MEMCC_SIMD_CLONES
void max_into(float* out, const float* w, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = out[i] < w[i] ? w[i] : out[i];
}

// s_p = max |x| over the patch of every position p of one image and group, without reading the
// patch matrix: the max over channels of |x| per input pixel (one pass over the image), then
// the max of that one-channel image over each kernel window (im2col of it, ksize rows). Exact
// (max is), and about channels times cheaper than the pass over the patches. Writes P floats
// to out; false when the scratch would be larger than the patches (then the caller scans them).
bool patch_maxima(const float* xg, const Im2colShape& shape, float* out) {
  const int64_t ks = shape.kernel_size(), P = shape.positions(), n = shape.input_size();
  if (shape.channels < 4 || ks * P + n > shape.channels * ks * P / 2) return false;
  float* buf = thread_scratch(ScratchSlot::Squares, static_cast<size_t>(n + ks * P));
  float* mx = buf;
  float* win = buf + n;
  channel_abs_max(xg, shape.channels, n, mx);
  Im2colShape one = shape;
  one.channels = 1;
  im2col_columns(mx, one, 0, P, win, P);
  std::copy(win, win + P, out);
  for (int64_t k = 1; k < ks; ++k) max_into(out, win + k * P, P);
  return true;
}

struct Split {
  int64_t row_blocks = 1, rows_per = 0, col_blocks = 1, cols_per = 0;
};

// y[i] += sqrt(max(var[i], 0)) z[i * ldz] for i < n: add_read_noise's term, normals strided.
MEMCC_SIMD_CLONES
void add_strided_terms(float* y, const float* var, const float* z, int64_t ldz, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = var[i] > 0.0f ? var[i] : 0.0f;
    y[i] += std::sqrt(v) * z[i * ldz];
  }
}

// y[i] += sqrt(max(var[i], 0)) z[i] for i < n.
MEMCC_SIMD_CLONES
void add_terms(float* y, const float* var, const float* z, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = var[i] > 0.0f ? var[i] : 0.0f;
    y[i] += std::sqrt(v) * z[i];
  }
}

// zt[j * 16 + i] = z[i * ld + j] for i < 16, j < n: the normals of 16 positions (drawn along the
// columns) turned so each column's 16 terms are contiguous, as Y and the variances are.
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx512f"))) void transpose16_avx512(const float* z, int64_t ld, int64_t n, float* zt) {
  // Four rounds that swap the off-diagonal k x k blocks of every 2k x 2k block (k = 8, 4, 2, 1).
  alignas(64) int32_t lo[4][16], hi[4][16];
  for (int s = 0; s < 4; ++s) {
    const int k = 8 >> s;
    for (int c = 0; c < 16; ++c) {
      lo[s][c] = (c & k) == 0 ? c : 16 + c - k;
      hi[s][c] = (c & k) == 0 ? c + k : 16 + c;
    }
  }
  int64_t j0 = 0;
  for (; j0 + 16 <= n; j0 += 16) {
    __m512 r[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(z + i * ld + j0);
    for (int s = 0; s < 4; ++s) {
      const int k = 8 >> s;
      const __m512i il = _mm512_load_si512(lo[s]), ih = _mm512_load_si512(hi[s]);
      for (int i = 0; i < 16; ++i) {
        if (i & k) continue;
        const __m512 a = r[i], b = r[i + k];
        r[i] = _mm512_permutex2var_ps(a, il, b);
        r[i + k] = _mm512_permutex2var_ps(a, ih, b);
      }
    }
    for (int i = 0; i < 16; ++i) _mm512_storeu_ps(zt + (j0 + i) * 16, r[i]);
  }
  for (; j0 < n; ++j0) {
    for (int64_t i = 0; i < 16; ++i) zt[j0 * 16 + i] = z[i * ld + j0];
  }
}
#endif

void transpose16(const float* z, int64_t ld, int64_t n, float* zt) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) {
    transpose16_avx512(z, ld, n, zt);
    return;
  }
#endif
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < 16; ++i) zt[j * 16 + i] = z[i * ld + j];
  }
}

// sq[k * ld + i] = v[k * ld + i]^2 for k < rows, i < m.
MEMCC_SIMD_CLONES
void square_rows(const float* v, int64_t ld, int64_t rows, int64_t m, float* sq) {
  for (int64_t k = 0; k < rows; ++k) {
    const float* a = v + k * ld;
    float* o = sq + k * ld;
    for (int64_t i = 0; i < m; ++i) o[i] = a[i] * a[i];
  }
}

// y[j * ld + i] += sqrt(max(var[j * ld + i], 0)) zt[j * 16 + i] for j < n, i < nq <= 16: one
// masked vector per column (a call per column of 16 terms cost more than the terms).
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx512f"))) void add_block_terms_avx512(float* y, int64_t ld, const float* var, int64_t ldv,
                                                               const float* zt, int64_t n, int64_t nq, float f) {
  const __mmask16 k = static_cast<__mmask16>(nq >= 16 ? 0xFFFFu : (1u << nq) - 1u);
  const __m512 zero = _mm512_setzero_ps(), vf = _mm512_set1_ps(f);
  for (int64_t j = 0; j < n; ++j) {
    const __m512 v = _mm512_maskz_loadu_ps(k, var + j * ldv);
    // max(v, 0) with a NaN variance giving 0, as add_terms' comparison does.
    const __m512 pos = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), v);
    __m512 root = _mm512_maskz_sqrt_ps(static_cast<__mmask16>(0xFFFF), pos);
    if (f != 1.0f) root = _mm512_mul_ps(root, vf);
    const __m512 t = _mm512_mul_ps(root, _mm512_loadu_ps(zt + j * 16));
    _mm512_mask_storeu_ps(y + j * ld, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, y + j * ld), t));
  }
}
#endif

// f: a power of two, sqrt of the factor that unscales var (1: var is the variance itself).
void add_block_terms(float* y, int64_t ld, const float* var, int64_t ldv, const float* zt, int64_t n, int64_t nq,
                     float f = 1.0f) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) {
    add_block_terms_avx512(y, ld, var, ldv, zt, n, nq, f);
    return;
  }
#endif
  for (int64_t j = 0; j < n; ++j) {
    if (f == 1.0f) {
      add_terms(y + j * ld, var + j * ldv, zt + j * 16, nq);
    } else {
      for (int64_t i = 0; i < nq; ++i) {
        const float v = var[j * ldv + i] > 0.0f ? var[j * ldv + i] : 0.0f;
        y[j * ld + i] += std::sqrt(v) * f * zt[j * 16 + i];
      }
    }
  }
}

// The read-noise terms of one tile read in [column, position] order (reads[j * m + i],
// var[j * ldv + i] times f^2): normal(key; c, q0 + i, r, j0 + j). With AVX-512 drawn one lane per
// position (add_column_terms_avx512); elsewhere along the columns 16 positions at a time and
// turned, so that each column's terms are added to its contiguous run of positions. z and zt
// hold 16 * nc floats each.
void add_column_noise(const ReadNoise& noise, int64_t q0, int64_t r, int64_t j0, int64_t nc, int64_t m,
                      const float* var, int64_t ldv, float f, float* reads, float* z, float* zt) {
#ifdef MEMCC_NORMALS_AVX512
  if (normals_avx512_available()) {
    add_column_terms_avx512(philox::key_lo(noise.key), philox::key_hi(noise.key),
                            static_cast<uint32_t>(noise.execution), static_cast<uint32_t>(q0),
                            static_cast<uint32_t>(r), static_cast<uint32_t>(j0), nc, m, var, ldv, f, reads, m);
    return;
  }
#endif
  for (int64_t i0 = 0; i0 < m; i0 += 16) {
    const int64_t nq = std::min<int64_t>(16, m - i0);
    for (int64_t i = 0; i < nq; ++i) {
      counter_normals(noise.key, static_cast<uint32_t>(noise.execution), static_cast<uint32_t>(q0 + i0 + i),
                      static_cast<uint32_t>(r), static_cast<uint32_t>(j0), nc, z + i * nc);
    }
    if (nq < 16) std::fill(z + nq * nc, z + 16 * nc, 0.0f);
    transpose16(z, nc, nc, zt);
    add_block_terms(reads + i0, m, var + i0, ldv, zt, nc, nq, f);
  }
}

// Splits an R x N output among at most `want` tasks. Every task packs its rows of the input and
// its columns of the matrix, so choose the split that packs least: ct * R + rt * N elements.
Split choose_split(int64_t R, int64_t N, int64_t want, int64_t min_rows, int64_t min_cols) {
  Split s;
  for (int64_t n = std::max<int64_t>(want, 1); n >= 1; --n) {
    int64_t best_rt = 0, best_ct = 0, best_cost = 0;
    for (int64_t ct = 1; ct <= n; ++ct) {
      if (n % ct != 0) continue;
      const int64_t rt = n / ct;
      if (ct > 1 && N < ct * min_cols) continue;
      if (rt > 1 && R < rt * min_rows) continue;
      const int64_t cost = ct * R + rt * N;
      if (best_rt == 0 || cost < best_cost) {
        best_rt = rt;
        best_ct = ct;
        best_cost = cost;
      }
    }
    if (best_rt == 0) continue;
    s.cols_per = best_ct > 1 ? ceil_div(ceil_div(N, best_ct), kColumnAlign) * kColumnAlign : N;
    s.cols_per = std::max<int64_t>(1, std::min(s.cols_per, N));
    s.col_blocks = ceil_div(N, s.cols_per);
    s.rows_per = std::max<int64_t>(1, ceil_div(R, best_rt));
    s.row_blocks = ceil_div(R, s.rows_per);
    return s;
  }
  s.rows_per = R;
  s.cols_per = N;
  return s;
}

int64_t task_budget(const TaskRunner& runner, int64_t flops) {
  return std::max<int64_t>(1, std::min<int64_t>(runner.concurrency(), flops / kMinTaskFlops));
}

// ---- Matmul mode ---------------------------------------------------------------------------

// Read noise without an ADC (docs/op-spec.md, step 5): one Gaussian term per vector and column,
// its variance one more GEMM of the squared encoded inputs against the variance matrix over all
// K rows (the matrix is (weight_scale sigma)^2 sum_s G'^2 here, so the term is already in output
// units). Vectors are rows of u (u[i * K + k]) or columns (u[k * ldu + i]) when `columns`.
// Output: y[i * ldy_row + j * ldy_col]. Scratch from the Squares and NoiseReads slots.
void add_total_noise(const ReadNoise& noise, const float* u, bool columns, int64_t ldu, int64_t m, int64_t K,
                     int64_t j0, int64_t nc, int64_t N, int64_t q0, float* y, int64_t ldy_row,
                     int64_t ldy_col) {
  if (!columns && ldy_col == 1 && noise.packed) {
    // The tile unit squares u as it converts it (no squaring pass), and its rows' scale factors
    // go into the terms' pass (no unscaling pass).
    float* var = thread_scratch(ScratchSlot::NoiseReads, static_cast<size_t>(m * nc + nc + m));
    float* row_factor = var + m * nc + nc;
    if (variance_gemm(*noise.packed, u, false, K, m, 0, K, j0, nc, var, nc, row_factor, true)) {
      add_read_noise_strided(y, ldy_row, var, nc, m, nc, noise.key, noise.execution, q0, 0, j0, var + m * nc,
                             row_factor);
      return;
    }
  }
  const int64_t n_in = columns ? K * ldu : m * K;
  float* sq = thread_scratch(ScratchSlot::Squares, static_cast<size_t>(n_in + nc));
  float* z = sq + n_in;
  for (int64_t i = 0; i < n_in; ++i) sq[i] = u[i] * u[i];
  if (columns && ldy_row == 1) {
    // Conv (Y is [column, position]): the variances in Y's layout, then the normals of 16
    // vectors at a time added along each column's run of positions (no scatter per vector); with
    // AVX-512 drawn one lane per vector, already in that layout.
    constexpr int64_t kBlock = 16;
    float* var = thread_scratch(ScratchSlot::NoiseReads, static_cast<size_t>(nc * m + kBlock * nc));
    float* zb = var + nc * m;
    sgemm(true, nc, m, K, noise.variance + j0, N, sq, ldu, 0.0f, var, m);
#ifdef MEMCC_NORMALS_AVX512
    if (normals_avx512_available()) {
      add_column_terms_avx512(philox::key_lo(noise.key), philox::key_hi(noise.key),
                              static_cast<uint32_t>(noise.execution), static_cast<uint32_t>(q0), 0u,
                              static_cast<uint32_t>(j0), nc, m, var, m, 1.0f, y, ldy_col);
      return;
    }
#endif
    for (int64_t i0 = 0; i0 < m; i0 += kBlock) {
      const int64_t nq = std::min(kBlock, m - i0);
      for (int64_t i = 0; i < nq; ++i) {
        counter_normals(noise.key, static_cast<uint32_t>(noise.execution), static_cast<uint32_t>(q0 + i0 + i), 0u,
                        static_cast<uint32_t>(j0), nc, zb + i * nc);
      }
      for (int64_t j = 0; j < nc; ++j) add_strided_terms(y + j * ldy_col + i0, var + j * m + i0, zb + j, nc, nq);
    }
    return;
  }
  float* var = thread_scratch(ScratchSlot::NoiseReads, static_cast<size_t>(m * nc + nc));
  // Columns (conv): float32, as in tiled_adc_mac (the transposing conversion does not pay).
  if (!(noise.packed && !columns && variance_gemm(*noise.packed, sq, columns, columns ? ldu : K, m, 0, K, j0, nc, var, nc))) {
    sgemm(columns, m, nc, K, sq, columns ? ldu : K, noise.variance + j0, N, 0.0f, var, nc);
  }
  if (ldy_col == 1) {
    add_read_noise(y, ldy_row, var, m, nc, noise.key, noise.execution, q0, 0, j0, z);
    return;
  }
  // Transposed output (conv: Y is [column, position]): each vector's term in a row, then scattered.
  float* term = var + m * nc;
  for (int64_t i = 0; i < m; ++i) {
    std::fill(term, term + nc, 0.0f);
    add_read_noise(term, nc, var + i * nc, 1, nc, noise.key, noise.execution, q0 + i, 0, j0, z);
    for (int64_t j = 0; j < nc; ++j) y[i * ldy_row + j * ldy_col] += term[j];
  }
}

// Encoded layers with few rows (a DAC or f with input_range = 0): every row encoded once, then
// small_gemm on W packed once (OpenBLAS would repack W on every call, which at these sizes costs
// as much as the product) and the read-noise terms per block of rows.
void matmul_digital_small(const OpAttributes& a, const LayerPlan& p, const SmallGemmPack& small, const float* x,
                          const float* bias, float* y, const TaskRunner& runner, const ReadNoise* noise) {
  const int64_t R = p.rows, K = p.K;
  float* u = thread_scratch(ScratchSlot::Inputs, static_cast<size_t>(R * K));
  float* scale = thread_scratch(ScratchSlot::Vectors, static_cast<size_t>(R));
  const InputEncoding enc = encoding_of(a);
  const int64_t per = std::max<int64_t>(8, ceil_div(R, std::max(1, runner.concurrency())));
  run_tasks(runner, ceil_div(R, per), [&](size_t t) {
    const int64_t r0 = static_cast<int64_t>(t) * per, m = std::min(per, R - r0);
    encode_rows(x + r0 * K, K, m, K, enc, EncodeTarget::Rescaled, u + r0 * K, K, scale + r0);
  });
  small_gemm(small, u, R, bias, Activation::None, y, runner);
  if (noise) add_noise_from_inputs(p, *noise, u, y, runner);
}

void matmul_digital(const OpAttributes& a, const LayerPlan& p, const float* W, const float* x,
                    const float* bias, float* y, const TaskRunner& runner, const ReadNoise* noise,
                    const SmallGemmPack* small) {
  const int64_t R = p.rows, K = p.K, N = p.N;
  if (small && a.encodes_input() && small->K == K && small->N == N && R <= kSmallGemmMaxRows &&
      R * K <= 4 * kScratchFloats) {
    matmul_digital_small(a, p, *small, x, bias, y, runner, noise);
    return;
  }
  const Split s = choose_split(R, N, task_budget(runner, 2 * R * K * N), 8, 64);
  const InputEncoding enc = encoding_of(a);
  run_tasks(runner, s.row_blocks * s.col_blocks, [&](size_t t) {
    const int64_t r0 = static_cast<int64_t>(t) / s.col_blocks * s.rows_per;
    const int64_t c0 = static_cast<int64_t>(t) % s.col_blocks * s.cols_per;
    const int64_t m = std::min(s.rows_per, R - r0);
    const int64_t nc = std::min(s.cols_per, N - c0);
    float* yt = y + r0 * N + c0;
    const float* bt = bias ? bias + c0 : nullptr;
    if (!a.encodes_input()) {
      if (bias) fill_rows(yt, m, nc, N, bt);
      sgemm(false, m, nc, K, x + r0 * K, K, W + c0, N, bias ? 1.0f : 0.0f, yt, N);
      return;
    }
    const int64_t sub = std::min(m, std::max<int64_t>(64, kScratchFloats / K));
    float* u = thread_scratch(ScratchSlot::Inputs, static_cast<size_t>(sub * K));
    float* scale = thread_scratch(ScratchSlot::Vectors, static_cast<size_t>(sub));
    for (int64_t i0 = 0; i0 < m; i0 += sub) {
      const int64_t mm = std::min(sub, m - i0);
      encode_rows(x + (r0 + i0) * K, K, mm, K, enc, EncodeTarget::Rescaled, u, K, scale);
      if (bias) fill_rows(yt + i0 * N, mm, nc, N, bt);
      sgemm(false, mm, nc, K, u, K, W + c0, N, bias ? 1.0f : 0.0f, yt + i0 * N, N);
      if (noise) add_total_noise(*noise, u, false, K, mm, K, c0, nc, N, r0 + i0, yt + i0 * N, N, 1);
    }
  });
}

void matmul_adc(const OpAttributes& a, const LayerPlan& p, const float* D, const float* x,
                const float* bias, float* y, const TaskRunner& runner, const ReadNoise* noise,
                const SmallGemmPack* small) {
  const bool relu = a.activation == Activation::Relu && !noise;  // applied in the no-noise path
  const int64_t R = p.rows, K = p.K, N = p.N;
  const int64_t tc = a.tile_cols > 0 ? std::min(a.tile_cols, N) : N;
  const int64_t col_tiles = ceil_div(N, tc);
  // The packed D serves when every call's first column starts a panel.
  if (small && (small->K != K || small->N != N || (col_tiles > 1 && tc % kSmallGemmPanel != 0))) {
    small = nullptr;
  }
  const int64_t conc = task_budget(runner, 2 * R * K * N);
  // Column tiles first: they share nothing but the encoded inputs, which are cheap to redo.
  // Then rows, in blocks that bound the scratch and keep enough tasks for every thread.
  int64_t groups = std::min(col_tiles, conc);
  const int64_t tiles_per_group = ceil_div(col_tiles, groups);
  groups = ceil_div(col_tiles, tiles_per_group);
  const int64_t max_rows = std::min<int64_t>(256, std::max<int64_t>(16, kScratchFloats / K));
  int64_t row_blocks = ceil_div(R, max_rows);
  if (row_blocks * groups < conc) {
    row_blocks = std::max(row_blocks, std::min(ceil_div(conc, groups), ceil_div(R, 16)));
  }
  const int64_t rows_per = ceil_div(R, row_blocks);
  row_blocks = ceil_div(R, rows_per);

  const InputEncoding enc = encoding_of(a);
  const AdcTiling tiling = tiling_of(a, K);
  run_tasks(runner, row_blocks * groups, [&](size_t t) {
    const int64_t r0 = static_cast<int64_t>(t) / groups * rows_per;
    const int64_t m = std::min(rows_per, R - r0);
    const int64_t g = static_cast<int64_t>(t) % groups;
    const int64_t tile_end = std::min(col_tiles, (g + 1) * tiles_per_group);

    // With the packed D the kernel broadcasts from 12 rows of v at once: rows a power of two of
    // floats apart (K = 2048) would all map to the same L1 sets, so they get one line of padding.
    const int64_t ldv = !noise && small ? ceil_div(K, 16) * 16 + kSubPad : K;
    float* v = thread_scratch(ScratchSlot::Inputs, static_cast<size_t>(m * ldv));
    float* vec = thread_scratch(ScratchSlot::Vectors, static_cast<size_t>(m + tc));
    float* scale = vec;
    float* read_scratch = vec + m;

    encode_rows(x + r0 * K, K, m, K, enc, EncodeTarget::Voltages, v, ldv, scale);
    // One product per row tile over a run of column tiles (small_gemm_block on D's panels when
    // given, else one sgemm, which packs the block's inputs once per call, not once per 128
    // columns), the read-noise terms of the run, then the ADC per column tile on its slice.
    const int64_t per_call = std::max<int64_t>(1, kMaxCallCols / tc);
    TileNoise tn = noise ? tile_noise(*noise, v, m * K, m * per_call * tc, tc, r0, noise->packed != nullptr)
                         : TileNoise{};
    float* wide_acc = thread_scratch(ScratchSlot::Accumulator, static_cast<size_t>(m * per_call * tc));
    float* wide_reads = thread_scratch(ScratchSlot::Reads, static_cast<size_t>(m * per_call * tc));
    for (int64_t t0 = g * tiles_per_group; t0 < tile_end; t0 += per_call) {
      const int64_t c0 = t0 * tc;
      const int64_t t1 = std::min(tile_end, t0 + per_call);
      const int64_t w = std::min(t1 * tc, N) - c0;
      if (noise) {
        tn.variance = noise->variance + c0;
        tn.j0 = c0;
      }
      tiled_adc_mac_wide(v, ldv, m, K, D + c0, N, w, tc, tiling, wide_acc, wide_reads, read_scratch, small, c0,
                         noise ? &tn : nullptr);
      for (int64_t i = 0; i < m; ++i) {
        const float f = output_factor(a, scale[i]);
        scale_row(y + (r0 + i) * N + c0, wide_acc + i * w, f, bias ? bias + c0 : nullptr, w, relu);
      }
    }
  });
}

// ---- Conv mode -----------------------------------------------------------------------------

// C[M, n] (+)= W^T col for a group's columns: W rows are ldw apart, col rows ldc apart.
void gemm_weights_t(int64_t M, int64_t n, int64_t K, const float* W, int64_t ldw, const float* col,
                    int64_t ldc, float beta, float* C, int64_t ld_out) {
  if (M > 4) {
    sgemm(true, M, n, K, W, ldw, col, ldc, beta, C, ld_out);
    return;
  }
  // Depthwise and other narrow groups: a BLAS call per tiny product costs more than the work.
  for (int64_t j = 0; j < M; ++j) {
    float* out = C + j * ld_out;
    if (beta == 0.0f) std::fill(out, out + n, 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float w = W[k * ldw + j];
      const float* c = col + k * ldc;
      for (int64_t q = 0; q < n; ++q) out[q] += w * c[q];
    }
  }
}

bool is_pointwise(const Im2colShape& s) {
  for (int d = 0; d < 3; ++d) {
    if (s.kernel[d] != 1 || s.stride[d] != 1 || s.pad_begin[d] != 0 || s.out[d] != s.in[d]) return false;
  }
  return true;
}

// Read-noise scratch of a conv sub-block loop on packed tiles, per thread: the sub-block's
// squared voltages (float32, and as bfloat16 row pairs for the tile unit), each read's variances
// ([column, position], columns rounded up to 16) and its normals (drawn per position, then turned).
struct ConvNoiseScratch {
  float* sq = nullptr;
  float* var = nullptr;
  float* z = nullptr;
  float* zt = nullptr;
  uint32_t* sq_bf16 = nullptr;

  void setup(int64_t sq_floats, int64_t cols, int64_t K, int64_t ldq, bool on_tiles) {
    sq = thread_scratch(ScratchSlot::Squares, static_cast<size_t>(sq_floats));
    const int64_t cols16 = ceil_div(cols, 16) * 16;
    var = thread_scratch(ScratchSlot::NoiseReads, static_cast<size_t>(cols16 * kReadPositions + 2 * 16 * cols));
    z = var + cols16 * kReadPositions;
    zt = z + 16 * cols;
    if (on_tiles) {
      thread_local CacheLineVector<uint32_t> bf16;
      bf16.resize(static_cast<size_t>(ceil_div(K, 32) * 16 * ldq));
      sq_bf16 = bf16.data();
    }
  }
};

// Conv without an ADC whose voltages depend on each patch (input_range = 0 with a DAC or f):
// e(X) cannot be encoded once for the whole image, so the product runs on the layer's matrix
// (weight_scale * D) packed once (conv_tiles.h) as the ADC path reads it, a sub-block of
// positions at a time extracted, encoded and read while in cache (OpenBLAS repacked both
// operands on every call). Read noise follows the no-ADC rule of docs/op-spec.md, step 5: one term
// per vector and column (r = 0), its variance a read of the squared encoded inputs over all K
// rows, on the tile unit (AMX-BF16) where its pack serves. cnt positions from p0 of image b and
// group h; col and vec are the task's scratch (conv_layer sizes them), y_block = Y at (b, h, p0).
void conv_encoded_tiles(const OpAttributes& a, const LayerPlan& p, const ConvTilePack& tiles, const ReadNoise* noise,
                        const float* xg, int64_t b, int64_t h, int64_t p0, int64_t cnt, float* col, float* vec,
                        float* y_block, const float* bias_g) {
  const int64_t Kg = p.K, Ng = p.group_cols, G = p.group, P = p.patch.positions();
  const InputEncoding enc = encoding_of(a);
  float* scale = vec;
  const bool scale_given = enc.input_range <= 0.0f && cnt == P && patch_maxima(xg, p.patch, scale);
  const int64_t ldq = ceil_div(std::min(cnt, kSubPositions), 16) * 16 + kSubPad;
  // Read noise: the currents of a few positions ([column, position]), their variances and normals.
  float* reads = nullptr;
  const TileVariancePack* tv = noise ? noise->tile_variance : nullptr;
  if (tv && (tv->K != Kg || tv->groups != G || tv->Ng != Ng || tv->tc != Ng)) tv = nullptr;
  ConvNoiseScratch ns;
  if (noise) {
    reads = thread_scratch(ScratchSlot::Reads, static_cast<size_t>(Ng * kReadPositions));
    ns.setup(Kg * ldq, Ng, Kg, ldq, tv != nullptr);
  }
  float *const sq = ns.sq, *const var = ns.var, *const z = ns.z, *const zt = ns.zt;
  for (int64_t s0 = 0; s0 < cnt; s0 += kSubPositions) {
    const int64_t ms = std::min(kSubPositions, cnt - s0);
    const int64_t ld = ceil_div(ms, 16) * 16 + kSubPad;
    float* ys = y_block + s0;
    im2col_columns(xg, p.patch, p0 + s0, ms, col, ld);
    encode_columns(col, ld, Kg, ms, enc, EncodeTarget::Rescaled, scale + s0, vec + cnt, scale_given);
    if (!noise) {
      if (bias_g) {
        for (int64_t j = 0; j < Ng; ++j) std::fill(ys + j * P, ys + j * P + ms, bias_g[j]);
      }
      conv_tile_read(tiles, h, 0, 0, Kg, col, ld, ms, ys, P, bias_g != nullptr);
      continue;
    }
    float root = 1.0f;
    const bool on_tiles = tv && tile_squares(*tv, col, ld, ms, ns.sq_bf16, ldq, &root);
    if (!on_tiles) square_rows(col, ld, Kg, ms, sq);
    for (int64_t i0 = 0, mi = 0; i0 < ms; i0 += mi) {
      // Three 16-position vectors, or two where one would be left alone (conv_tile_read's
      // micro-tiles: a one-vector tile runs at a third of the rate).
      const int64_t vectors = ceil_div(ms - i0, 16);
      mi = std::min(ms - i0, (vectors <= 3 || vectors % 3 == 0 ? 3 : 2) * int64_t{16});
      conv_tile_read(tiles, h, 0, 0, Kg, col + i0, ld, mi, reads, mi, false);
      const int64_t q0 = (b * G + h) * P + p0 + s0 + i0;
      const int64_t ldv = ceil_div(mi, 16) * 16;
      if (on_tiles && tile_variance_read(*tv, h, 0, 0, Kg, ns.sq_bf16 + i0, ldq, mi, var, ldv)) {
        add_column_noise(*noise, q0, 0, h * Ng, Ng, mi, var, ldv, root, reads, z, zt);
      } else {
        if (on_tiles) square_rows(col, ld, Kg, ms, sq);  // not expected: the pack serves one row tile
        conv_tile_read(*noise->conv_tiles, h, 0, 0, Kg, sq + i0, ld, mi, var, mi, false);
        add_column_noise(*noise, q0, 0, h * Ng, Ng, mi, var, mi, 1.0f, reads, z, zt);
      }
      for (int64_t j = 0; j < Ng; ++j) {
        const float bj = bias_g ? bias_g[j] : 0.0f;
        const float* r = reads + j * mi;
        float* yr = ys + j * P + i0;
        for (int64_t i = 0; i < mi; ++i) yr[i] = r[i] + bj;
      }
    }
  }
}

void conv_layer(const OpAttributes& a, const LayerPlan& p, const float* M, const float* x,
                const float* bias, float* y, const TaskRunner& runner, const ReadNoise* noise,
                const ConvTilePack* tiles) {
  const bool relu = a.activation == Activation::Relu && !noise;  // applied in the no-noise ADC path
  const int64_t B = p.batch, N = p.N, Kg = p.K, Ng = p.group_cols, G = p.group;
  const int64_t P = p.patch.positions(), in_size = p.patch.input_size(), Cg = p.patch.channels;
  const bool adc = a.reads_tiles();
  const bool direct = !adc && !a.encodes_input() && is_pointwise(p.patch);

  // Position blocks: patches of one block fill at most kScratchFloats, and there are enough
  // tasks for every thread even with a batch of one.
  int64_t per_block = std::min(P, std::max<int64_t>(16, kScratchFloats / Kg));
  int64_t blocks = ceil_div(P, per_block);
  const int64_t conc = task_budget(runner, 2 * B * P * Kg * N);
  if (B * blocks < conc) blocks = std::max(blocks, std::min(ceil_div(conc, B), ceil_div(P, 16)));
  per_block = ceil_div(P, blocks);
  blocks = ceil_div(P, per_block);

  const InputEncoding enc = encoding_of(a);
  const AdcTiling tiling = tiling_of(a, Kg);
  // The squared voltages' range that the DAC guarantees: their bfloat16 pass then needs no scans.
  const MagnitudeRange vr = voltage_magnitude_range(enc);
  const SquareBounds dac_squares{vr.lo * vr.lo, vr.hi * vr.hi};
  // Without an ADC the columns are one tile (the packs are made so, memristive_matmul_kernel.cc).
  const int64_t tc = adc && a.tile_cols > 0 ? std::min(a.tile_cols, Ng) : Ng;
  auto fits = [&](const ConvTilePack* t) { return t && t->K == Kg && t->groups == G && t->Ng == Ng && t->tc == tc; };
  // The packed reads serve the ADC path and the encoded path without one (conv_encoded_tiles).
  if (!(adc || a.encodes_input()) || !fits(tiles) || (noise && !fits(noise->conv_tiles))) tiles = nullptr;

  run_tasks(runner, B * blocks, [&](size_t t) {
    const int64_t b = static_cast<int64_t>(t) / blocks;
    const int64_t p0 = static_cast<int64_t>(t) % blocks * per_block;
    const int64_t cnt = std::min(per_block, P - p0);
    const int64_t col_floats = tiles ? Kg * (ceil_div(std::min(cnt, kSubPositions), 16) * 16 + kSubPad) : Kg * cnt;
    float* col = direct ? nullptr : thread_scratch(ScratchSlot::Inputs, static_cast<size_t>(col_floats));
    // Per-vector values: s, two scratch rows, the step-8 factors, and one read for the quantile.
    float* vec = thread_scratch(ScratchSlot::Vectors, static_cast<size_t>(4 * cnt + tc));
    float* scale = vec;
    float* factor = vec + 3 * cnt;
    float* read_scratch = vec + 4 * cnt;

    for (int64_t h = 0; h < G; ++h) {
      const float* xg = x + (b * p.channels + h * Cg) * in_size;
      float* yb = y + (b * N + h * Ng) * P + p0;
      const float* bias_g = bias ? bias + h * Ng : nullptr;
      const float* patches = col;
      int64_t ld_patches = cnt;
      if (direct) {
        patches = xg + p0;  // a 1x1 stride-1 kernel: the image already is the patch matrix
        ld_patches = in_size;
      } else if (!tiles) {  // the packed tile reads extract their patches per sub-block
        im2col_columns(xg, p.patch, p0, cnt, col, cnt);
      }

      if (!adc && tiles) {
        conv_encoded_tiles(a, p, *tiles, noise, xg, b, h, p0, cnt, col, vec, yb, bias_g);
        continue;
      }
      if (!adc) {
        if (a.encodes_input()) {
          const bool scale_given = enc.input_range <= 0.0f && cnt == P && patch_maxima(xg, p.patch, scale);
          encode_columns(col, cnt, Kg, cnt, enc, EncodeTarget::Rescaled, scale, vec + cnt, scale_given);
        }
        if (bias_g) {
          for (int64_t j = 0; j < Ng; ++j) std::fill(yb + j * P, yb + j * P + cnt, bias_g[j]);
        }
        gemm_weights_t(Ng, cnt, Kg, M + h * Ng, N, patches, ld_patches, bias_g ? 1.0f : 0.0f, yb, P);
        if (noise) add_total_noise(*noise, col, true, cnt, cnt, Kg, h * Ng, Ng, N, (b * G + h) * P + p0, yb, 1, P);
        continue;
      }

      const bool scale_given = enc.input_range <= 0.0f && cnt == P && patch_maxima(xg, p.patch, scale);
      if (tiles) {
        // Tile reads on D packed once (conv_tiles.h): a sub-block of positions at a time is
        // extracted and encoded; then a few positions at a time go through every row tile, with
        // their currents and ADC sums in L1, and Y is written once.
        float* reads = thread_scratch(ScratchSlot::Reads, static_cast<size_t>(2 * tc * kReadPositions));
        float* sums = reads + tc * kReadPositions;
        float* adc_scratch = thread_scratch(ScratchSlot::Accumulator, static_cast<size_t>(3 * kReadPositions + tc));
        // Read noise: the sub-block's squared voltages, each read's variances ([column,
        // position], like the currents) and its normals (drawn per position, then turned).
        // On the tile unit (AMX-BF16) the squares are bfloat16 row pairs, and a read's variances
        // come out in whole 16 x 16 tiles (rows and positions rounded up to 16).
        const TileVariancePack* tv = noise ? noise->tile_variance : nullptr;
        if (tv && (tv->K != Kg || tv->groups != G || tv->Ng != Ng || tv->tc != tc ||
                   (tiling.tile_rows % 32 != 0 && tiling.tile_rows < Kg))) {
          tv = nullptr;
        }
        const int64_t ldq = ceil_div(std::min(cnt, kSubPositions), 16) * 16 + kSubPad;
        ConvNoiseScratch ns;
        if (noise) ns.setup(col_floats, tc, Kg, ldq, tv != nullptr);
        float *const sq = ns.sq, *const var = ns.var, *const z = ns.z, *const zt = ns.zt;
        for (int64_t s0 = 0; s0 < cnt; s0 += kSubPositions) {
          const int64_t ms = std::min(kSubPositions, cnt - s0);
          const int64_t ld = ceil_div(ms, 16) * 16 + kSubPad;
          im2col_columns(xg, p.patch, p0 + s0, ms, col, ld);
          encode_columns(col, ld, Kg, ms, enc, EncodeTarget::Voltages, scale + s0, vec + cnt, scale_given);
          for (int64_t q = s0; q < s0 + ms; ++q) factor[q] = output_factor(a, scale[q]);
          float root = 1.0f;
          const bool on_tiles = tv && tile_squares(*tv, col, ld, ms, ns.sq_bf16, ldq, &root, dac_squares);
          if (noise && !on_tiles) square_rows(col, ld, Kg, ms, sq);
          for (int64_t c0 = 0; c0 < Ng; c0 += tc) {
            const int64_t nc = std::min(tc, Ng - c0);
            for (int64_t i0 = 0, mi = 0; i0 < ms; i0 += mi) {
              // Equal shares of 16-position vectors, at most kReadPositions: 64 positions as
              // 32 + 32, not 48 + 16 (the kernel runs a narrow micro-tile at a third of its rate).
              const int64_t vectors = ceil_div(ms - i0, 16);
              mi = std::min(ms - i0, ceil_div(vectors, ceil_div(vectors, kReadPositions / 16)) * 16);
              std::fill(sums, sums + nc * mi, 0.0f);
              for (int64_t r0 = 0; r0 < Kg; r0 += tiling.tile_rows) {
                const int64_t kr = std::min(tiling.tile_rows, Kg - r0);
                conv_tile_read(*tiles, h, c0, r0, kr, col + r0 * ld + i0, ld, mi, reads, mi, false);
                if (noise) {
                  const int64_t q0 = (b * G + h) * P + p0 + s0 + i0, r = r0 / tiling.tile_rows;
                  const int64_t ldv = ceil_div(mi, 16) * 16;
                  if (on_tiles && tile_variance_read(*tv, h, c0, r0, kr, ns.sq_bf16 + i0, ldq, mi, var, ldv)) {
                    add_column_noise(*noise, q0, r, h * Ng + c0, nc, mi, var, ldv, root, reads, z, zt);
                  } else {
                    if (on_tiles) square_rows(col + r0 * ld, ld, kr, ms, sq + r0 * ld);  // not expected
                    conv_tile_read(*noise->conv_tiles, h, c0, r0, kr, sq + r0 * ld + i0, ld, mi, var, mi, false);
                    add_column_noise(*noise, q0, r, h * Ng + c0, nc, mi, var, mi, 1.0f, reads, z, zt);
                  }
                }
                adc_accumulate_columns(reads, nc, mi, mi, tiling.bits, tiling.overflow_rate, sums, mi, adc_scratch);
              }
              for (int64_t j = 0; j < nc; ++j) {
                scale_store(yb + (c0 + j) * P + s0 + i0, sums + j * mi, factor + s0 + i0,
                            bias_g ? bias_g[c0 + j] : 0.0f, mi, relu);
              }
            }
          }
        }
        continue;
      }
      encode_columns(col, cnt, Kg, cnt, enc, EncodeTarget::Voltages, scale, vec + cnt, scale_given);
      for (int64_t q = 0; q < cnt; ++q) factor[q] = output_factor(a, scale[q]);
      if (!noise) {
        // Tile reads in [column, position] order: Y's layout comes out directly and the ADC runs
        // vectorised across positions, accumulating straight into Y.
        float* reads = thread_scratch(ScratchSlot::Reads, static_cast<size_t>(cnt * tc));
        float* adc_scratch = thread_scratch(ScratchSlot::Accumulator, static_cast<size_t>(3 * cnt + tc));
        for (int64_t c0 = 0; c0 < Ng; c0 += tc) {
          const int64_t nc = std::min(tc, Ng - c0);
          tiled_adc_mac_columns(col, cnt, cnt, Kg, M + h * Ng + c0, N, nc, tiling, yb + c0 * P, P, reads,
                                adc_scratch);
          for (int64_t j = 0; j < nc; ++j) {
            float* yr = yb + (c0 + j) * P;
            const float bj = bias_g ? bias_g[c0 + j] : 0.0f;
            scale_add(yr, factor, bj, cnt, relu);
          }
        }
        continue;
      }
      float* acc = thread_scratch(ScratchSlot::Accumulator, static_cast<size_t>(cnt * tc));
      float* reads = thread_scratch(ScratchSlot::Reads, static_cast<size_t>(cnt * tc));
      // q0: the spec's q of conv mode.
      TileNoise tn = noise ? tile_noise(*noise, col, Kg * cnt, cnt * tc, tc, (b * G + h) * P + p0) : TileNoise{};
      for (int64_t c0 = 0; c0 < Ng; c0 += tc) {
        const int64_t nc = std::min(tc, Ng - c0);
        if (noise) {
          tn.variance = noise->variance + h * Ng + c0;
          tn.j0 = h * Ng + c0;
        }
        tiled_adc_mac(col, true, cnt, cnt, Kg, M + h * Ng + c0, N, nc, tiling, acc, reads, read_scratch,
                      noise ? &tn : nullptr);
        // acc is [position, column]; Y wants [column, position].
        for (int64_t j = 0; j < nc; ++j) {
          float* yr = yb + (c0 + j) * P;
          const float bj = bias_g ? bias_g[c0 + j] : 0.0f;
          for (int64_t q = 0; q < cnt; ++q) yr[q] = acc[q * nc + j] * factor[q] + bj;
        }
      }
    }
  });
}

}  // namespace

void run_tasks(const TaskRunner& runner, int64_t total, const std::function<void(size_t)>& fn) {
  if (total <= 0) return;
  if (total == 1) {
    fn(0);
    return;
  }
  // Exceptions must not unwind through onnxruntime's thread pool: keep the first, rethrow here.
  std::mutex mutex;
  std::exception_ptr first;
  runner.run(static_cast<size_t>(total), [&](size_t i) {
    try {
      fn(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!first) first = std::current_exception();
    }
  });
  if (first) std::rethrow_exception(first);
}

void encode_elementwise(const OpAttributes& a, const float* x, int64_t n, float* out, const TaskRunner& runner) {
  const InputEncoding enc = encoding_of(a);
  constexpr int64_t kChunk = int64_t{1} << 14;
  run_tasks(runner, ceil_div(n, kChunk), [&](size_t t) {
    const int64_t i0 = static_cast<int64_t>(t) * kChunk, m = std::min(kChunk, n - i0);
    float scale = 0.0f;
    encode_rows(x + i0, m, 1, m, enc, EncodeTarget::Rescaled, out + i0, m, &scale);
  });
}

void add_noise_terms(const OpAttributes& a, const LayerPlan& p, const ReadNoise& noise, const float* var, float* y,
                     const TaskRunner& runner) {
  if (!a.conv) {
    const int64_t R = p.rows, N = p.N;
    const int64_t per = std::max<int64_t>(1, std::min(R, ceil_div(R, std::max(1, runner.concurrency()))));
    run_tasks(runner, ceil_div(R, per), [&](size_t t) {
      const int64_t r0 = static_cast<int64_t>(t) * per, m = std::min(per, R - r0);
      float* z = thread_scratch(ScratchSlot::Vectors, static_cast<size_t>(N));
      add_read_noise(y + r0 * N, N, var + r0 * N, m, N, noise.key, noise.execution, r0, 0, 0, z);
    });
    return;
  }
  const int64_t B = p.batch, N = p.N, Ng = p.group_cols, G = p.group, P = p.patch.positions();
  // The stream runs along columns and Y along positions: the normals of kBlock positions at a
  // time, then each column's run of positions (contiguous in y and var) gets its terms.
  constexpr int64_t kBlock = 16;
  run_tasks(runner, B * G, [&](size_t t) {
    const int64_t b = static_cast<int64_t>(t) / G, h = static_cast<int64_t>(t) % G;
#ifdef MEMCC_NORMALS_AVX512
    if (normals_avx512_available()) {
      // One lane per position: the terms come out in Y's layout, with no turning.
      const int64_t at = (b * N + h * Ng) * P;
      add_column_terms_avx512(philox::key_lo(noise.key), philox::key_hi(noise.key),
                              static_cast<uint32_t>(noise.execution), static_cast<uint32_t>((b * G + h) * P), 0u,
                              static_cast<uint32_t>(h * Ng), Ng, P, var + at, P, 1.0f, y + at, P);
      return;
    }
#endif
    float* z = thread_scratch(ScratchSlot::Vectors, static_cast<size_t>(2 * kBlock * Ng));
    float* zt = z + kBlock * Ng;
    const int64_t base = (b * N + h * Ng) * P;
    for (int64_t q0 = 0; q0 < P; q0 += kBlock) {
      const int64_t nq = std::min(kBlock, P - q0);
      for (int64_t i = 0; i < nq; ++i) {
        counter_normals(noise.key, static_cast<uint32_t>(noise.execution),
                        static_cast<uint32_t>((b * G + h) * P + q0 + i), 0u, static_cast<uint32_t>(h * Ng), Ng,
                        z + i * Ng);
      }
      // (Rows past nq are left over from before: their terms are not added.)
      if (nq < kBlock) std::fill(z + nq * Ng, z + kBlock * Ng, 0.0f);
      transpose16(z, Ng, Ng, zt);
      add_block_terms(y + base + q0, P, var + base + q0, P, zt, Ng, nq);
    }
  });
}

void add_noise_from_inputs(const LayerPlan& p, const ReadNoise& noise, const float* encoded, float* y,
                           const TaskRunner& runner) {
  const int64_t R = p.rows, K = p.K, N = p.N;
  if (R == 0 || K == 0 || N == 0) return;
  // Rows per task: every thread busy, and a block's squares within the scratch budget.
  const int64_t want = task_budget(runner, 2 * R * K * N);
  const int64_t per = std::max<int64_t>(1, std::min(ceil_div(R, want), std::max<int64_t>(16, kScratchFloats / K)));
  run_tasks(runner, ceil_div(R, per), [&](size_t t) {
    const int64_t r0 = static_cast<int64_t>(t) * per, m = std::min(per, R - r0);
    add_total_noise(noise, encoded + r0 * K, false, K, m, K, 0, N, N, r0, y + r0 * N, N, 1);
  });
}

float matrix_scale(const OpAttributes& attrs) { return attrs.reads_tiles() ? 1.0f : attrs.weight_scale; }

float variance_sigma(const OpAttributes& attrs) { return attrs.read_noise_std * matrix_scale(attrs); }

InputEncoding encoding_of(const OpAttributes& a) {
  InputEncoding e;
  e.input_range = a.input_range;
  e.dac_bits = a.dac_bits;
  e.v_max = a.max_input_voltage;
  e.iv_a = a.iv_a;
  e.iv_b = a.iv_b;
  return e;
}

bool run_layer(const OpAttributes& a, const LayerPlan& p, const float* matrix, const float* x,
               const float* bias, float* y, const TaskRunner& runner, const ReadNoise* noise,
               const SmallGemmPack* small, const ConvTilePack* tiles) {
  if (a.read_noise() && !(noise && noise->variance)) throw OpError("read noise needs its variance matrix");
  if (!a.read_noise()) noise = nullptr;
  const int64_t vectors = a.conv ? p.batch * p.patch.positions() : p.rows;
  if (vectors == 0 || p.N == 0) return false;
  if (p.K == 0) {
    // Empty input vectors: s = 0, so y = Bias (or 0).
    if (a.conv) {
      const int64_t P = p.patch.positions();
      for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t n = 0; n < p.N; ++n) {
          float* r = y + (b * p.N + n) * P;
          std::fill(r, r + P, bias ? bias[n] : 0.0f);
        }
      }
    } else {
      fill_rows(y, p.rows, p.N, p.N, bias);
    }
    return false;
  }
  // The no-noise tiled paths apply a ReLU activation in their output loops.
  const bool fused = a.activation == Activation::Relu && !noise && a.reads_tiles();
  if (a.conv) {
    conv_layer(a, p, matrix, x, bias, y, runner, noise, tiles);
  } else if (a.reads_tiles()) {
    matmul_adc(a, p, matrix, x, bias, y, runner, noise, small);
  } else {
    matmul_digital(a, p, matrix, x, bias, y, runner, noise, small);
  }
  return fused;
}

}  // namespace memcc
