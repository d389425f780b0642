#include "small_gemm.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MEMCC_SMALL_GEMM_X86 1
#else
#define MEMCC_SMALL_GEMM_X86 0
#endif

namespace memcc {
namespace {

constexpr int64_t P = kSmallGemmPanel;

// K is split into slices of kSliceK, so that a panel's slice (32 KiB) stays in L1 while every row
// block of a task reads it.
constexpr int64_t kSliceK = 256;

// One block: rows x cols outputs (rows <= the kernel's row count, cols <= 32) of y, from rows rows
// of x and a slice of K rows of one packed panel. bias points at the block's first column (or is
// null: later slices); accumulate adds y's values (slices after the first); relu: the last slice.
struct Block {
  const float* x;
  int64_t ldx;
  const float* panel;
  int64_t K;
  const float* bias;
  bool accumulate;
  bool relu;
  float* y;
  int64_t ldy;
  int64_t cols;
};

// ---------------------------------------------------------------------------------------------
// Plain C++: 4 rows x 32 columns.
// ---------------------------------------------------------------------------------------------
constexpr int64_t kGenericRows = 4;

void block_generic(const Block& b, int64_t rows) {
  float acc[kGenericRows][P] = {};
  for (int64_t k = 0; k < b.K; ++k) {
    const float* w = b.panel + k * P;
    for (int64_t r = 0; r < rows; ++r) {
      const float xv = b.x[r * b.ldx + k];
      for (int64_t c = 0; c < P; ++c) acc[r][c] += xv * w[c];
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* out = b.y + r * b.ldy;
    for (int64_t c = 0; c < b.cols; ++c) {
      float v = acc[r][c] + (b.bias ? b.bias[c] : 0.0f) + (b.accumulate ? out[c] : 0.0f);
      if (b.relu) v = v < 0.0f ? 0.0f : v;
      out[c] = v;
    }
  }
}

#if MEMCC_SMALL_GEMM_X86
constexpr int64_t kAvx512Rows = 12;  // 24 of the 32 zmm registers accumulate
constexpr int64_t kAvx2Rows = 6;     // 12 of the 16 ymm registers

// ---------------------------------------------------------------------------------------------
// AVX-512: R rows x 32 columns, 2R zmm accumulators.
// ---------------------------------------------------------------------------------------------
template <int R>
__attribute__((target("avx512f"))) void kernel_avx512(const Block& b) {
  __m512 a0[R], a1[R];
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm512_setzero_ps();
  const float* x = b.x;
  const float* w = b.panel;
  for (int64_t k = 0; k < b.K; ++k, w += P) {
    const __m512 w0 = _mm512_loadu_ps(w);
    const __m512 w1 = _mm512_loadu_ps(w + 16);
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_set1_ps(x[r * b.ldx + k]);
      a0[r] = _mm512_fmadd_ps(xv, w0, a0[r]);
      a1[r] = _mm512_fmadd_ps(xv, w1, a1[r]);
    }
  }
  const int64_t c0 = std::min<int64_t>(b.cols, 16), c1 = std::max<int64_t>(b.cols - 16, 0);
  const __mmask16 m0 = static_cast<__mmask16>(c0 >= 16 ? 0xFFFFu : (1u << c0) - 1u);
  const __mmask16 m1 = static_cast<__mmask16>(c1 >= 16 ? 0xFFFFu : (1u << c1) - 1u);
  const __m512 zero = _mm512_setzero_ps();
  const __m512 b0 = b.bias ? _mm512_maskz_loadu_ps(m0, b.bias) : zero;
  const __m512 b1 = b.bias && m1 ? _mm512_maskz_loadu_ps(m1, b.bias + 16) : zero;
  for (int r = 0; r < R; ++r) {
    float* out = b.y + r * b.ldy;
    __m512 v0 = _mm512_add_ps(a0[r], b0), v1 = _mm512_add_ps(a1[r], b1);
    if (b.accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, out));
      if (m1) v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, out + 16));
    }
    if (b.relu) {  // max(0, v) returns v when v is NaN (the second operand)
      v0 = _mm512_maskz_max_ps(0xFFFF, zero, v0);  // maskz: no undefined source (GCC 12 warns)
      v1 = _mm512_maskz_max_ps(0xFFFF, zero, v1);
    }
    _mm512_mask_storeu_ps(out, m0, v0);
    if (m1) _mm512_mask_storeu_ps(out + 16, m1, v1);
  }
}

__attribute__((target("avx512f"))) void block_avx512(const Block& b, int64_t rows) {
  switch (rows) {
    case 1: kernel_avx512<1>(b); break;
    case 2: kernel_avx512<2>(b); break;
    case 3: kernel_avx512<3>(b); break;
    case 4: kernel_avx512<4>(b); break;
    case 5: kernel_avx512<5>(b); break;
    case 6: kernel_avx512<6>(b); break;
    case 7: kernel_avx512<7>(b); break;
    case 8: kernel_avx512<8>(b); break;
    case 9: kernel_avx512<9>(b); break;
    case 10: kernel_avx512<10>(b); break;
    case 11: kernel_avx512<11>(b); break;
    default: kernel_avx512<12>(b); break;
  }
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA: R rows x 16 columns (one half of a panel), 2R ymm accumulators.
// ---------------------------------------------------------------------------------------------
template <int R>
__attribute__((target("avx2,fma"))) void kernel_avx2(const Block& b, int64_t half) {
  __m256 a0[R], a1[R];
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
  const float* x = b.x;
  const float* w = b.panel + half * 16;
  for (int64_t k = 0; k < b.K; ++k, w += P) {
    const __m256 w0 = _mm256_loadu_ps(w);
    const __m256 w1 = _mm256_loadu_ps(w + 8);
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_broadcast_ss(x + r * b.ldx + k);
      a0[r] = _mm256_fmadd_ps(xv, w0, a0[r]);
      a1[r] = _mm256_fmadd_ps(xv, w1, a1[r]);
    }
  }
  const int64_t cols = std::min<int64_t>(b.cols - half * 16, 16);
  const float* bias = b.bias ? b.bias + half * 16 : nullptr;
  const __m256 zero = _mm256_setzero_ps();
  alignas(32) float bias_buf[16] = {};
  if (bias) std::memcpy(bias_buf, bias, static_cast<size_t>(cols) * sizeof(float));
  const __m256 b0 = _mm256_load_ps(bias_buf), b1 = _mm256_load_ps(bias_buf + 8);
  for (int r = 0; r < R; ++r) {
    float* out = b.y + r * b.ldy + half * 16;
    __m256 v0 = _mm256_add_ps(a0[r], b0), v1 = _mm256_add_ps(a1[r], b1);
    if (b.accumulate) {
      alignas(32) float prev[16] = {};
      std::memcpy(prev, out, static_cast<size_t>(cols) * sizeof(float));
      v0 = _mm256_add_ps(v0, _mm256_load_ps(prev));
      v1 = _mm256_add_ps(v1, _mm256_load_ps(prev + 8));
    }
    if (b.relu) {
      v0 = _mm256_max_ps(zero, v0);
      v1 = _mm256_max_ps(zero, v1);
    }
    if (cols == 16) {
      _mm256_storeu_ps(out, v0);
      _mm256_storeu_ps(out + 8, v1);
    } else {
      alignas(32) float tmp[16];
      _mm256_store_ps(tmp, v0);
      _mm256_store_ps(tmp + 8, v1);
      std::memcpy(out, tmp, static_cast<size_t>(cols) * sizeof(float));
    }
  }
}

template <int R>
__attribute__((target("avx2,fma"))) void halves_avx2(const Block& b) {
  kernel_avx2<R>(b, 0);
  if (b.cols > 16) kernel_avx2<R>(b, 1);
}

__attribute__((target("avx2,fma"))) void block_avx2(const Block& b, int64_t rows) {
  switch (rows) {
    case 1: halves_avx2<1>(b); break;
    case 2: halves_avx2<2>(b); break;
    case 3: halves_avx2<3>(b); break;
    case 4: halves_avx2<4>(b); break;
    case 5: halves_avx2<5>(b); break;
    default: halves_avx2<6>(b); break;
  }
}
#endif

GemmIsa detect_isa() {
#if MEMCC_SMALL_GEMM_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return GemmIsa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GemmIsa::Avx2;
#endif
  return GemmIsa::Generic;
}

int isa_rank(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::Avx512: return 2;
    case GemmIsa::Avx2: return 1;
    default: return 0;
  }
}

}  // namespace

GemmIsa small_gemm_best_isa() {
  static const GemmIsa best = detect_isa();
  return best;
}

namespace {

struct Kernel {
  void (*block)(const Block&, int64_t);
  int64_t rows;
};

Kernel kernel_for(GemmIsa isa) {
  const GemmIsa best = small_gemm_best_isa();
  if (isa == GemmIsa::Auto || isa_rank(isa) > isa_rank(best)) isa = best;
#if MEMCC_SMALL_GEMM_X86
  if (isa == GemmIsa::Avx512) return {&block_avx512, kAvx512Rows};
  if (isa == GemmIsa::Avx2) return {&block_avx2, kAvx2Rows};
#endif
  return {&block_generic, kGenericRows};
}

}  // namespace

SmallGemmPack pack_small_gemm(const float* w, int64_t K, int64_t N) {
  SmallGemmPack p;
  p.K = K;
  p.N = N;
  const int64_t panels = ceil_div(N, P);
  p.panels.assign(static_cast<size_t>(panels * K * P), 0.0f);
  for (int64_t j = 0; j < panels; ++j) {
    const int64_t n0 = j * P, cols = std::min(P, N - n0);
    float* dst = p.panels.data() + j * K * P;
    for (int64_t k = 0; k < K; ++k) {
      std::memcpy(dst + k * P, w + k * N + n0, static_cast<size_t>(cols) * sizeof(float));
    }
  }
  return p;
}

void small_gemm(const SmallGemmPack& w, const float* x, int64_t M, const float* bias, Activation activation,
                float* y, const TaskRunner& runner, GemmIsa isa) {
  const int64_t K = w.K, N = w.N;
  if (M <= 0 || N <= 0) return;
  const Kernel kern = kernel_for(isa);
  void (*block)(const Block&, int64_t) = kern.block;
  const int64_t mr = kern.rows;
  const int64_t panels = ceil_div(N, P);
  // Work units: (panel, chunk of rows), panel-major, so a task's units share their panel. A chunk
  // is a multiple of the kernel's rows; tasks get whole units and at least ~1 MFLOP each.
  const int64_t chunk_rows = M <= 8 * mr ? M : 8 * mr;
  const int64_t chunks = ceil_div(M, chunk_rows);
  const int64_t units = panels * chunks;
  const int64_t unit_flops = 2 * std::min(M, chunk_rows) * std::max<int64_t>(K, 1) * P;
  constexpr int64_t kMinTaskFlops = int64_t{1} << 20;
  const int64_t per_task_min = std::max<int64_t>(1, kMinTaskFlops / unit_flops);
  const int64_t tasks = std::max<int64_t>(1, std::min(ceil_div(units, per_task_min),
                                                      int64_t{4} * std::max(1, runner.concurrency())));
  const bool relu = activation == Activation::Relu;
  auto run_units = [&](size_t t) {
    const int64_t begin = units * static_cast<int64_t>(t) / tasks;
    const int64_t end = units * (static_cast<int64_t>(t) + 1) / tasks;
    for (int64_t u = begin; u < end; ++u) {
      const int64_t j = u / chunks, c = u % chunks;
      const int64_t n0 = j * P;
      const int64_t r_begin = c * chunk_rows, r_end = std::min(M, r_begin + chunk_rows);
      const float* panel = w.panels.data() + j * K * P;
      for (int64_t k0 = 0; k0 < K || k0 == 0; k0 += kSliceK) {
        const int64_t kc = std::min(kSliceK, K - k0);
        Block b{nullptr, K, panel + k0 * P, kc, k0 == 0 && bias ? bias + n0 : nullptr, k0 > 0,
                relu && k0 + kc >= K, nullptr, N, std::min(P, N - n0)};
        for (int64_t r = r_begin; r < r_end; r += mr) {
          b.x = x + r * K + k0;
          b.y = y + r * N + n0;
          block(b, std::min(mr, r_end - r));
        }
      }
    }
  };
  if (tasks == 1) {
    run_units(0);
  } else {
    runner.run(static_cast<size_t>(tasks), run_units);
  }
}

void small_gemm_block(const SmallGemmPack& w, const float* x, int64_t ldx, int64_t M, int64_t k0, int64_t kc,
                      int64_t n0, int64_t cols, float* y, int64_t ldy, bool accumulate, GemmIsa isa) {
  if (M <= 0 || cols <= 0) return;
  if (kc <= 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < M; ++i) std::fill(y + i * ldy, y + i * ldy + cols, 0.0f);
    }
    return;
  }
  const Kernel kern = kernel_for(isa);
  const int64_t K = w.K;
  for (int64_t j0 = 0; j0 < cols; j0 += P) {
    const float* panel = w.panels.data() + (n0 + j0) / P * K * P;
    for (int64_t s = 0; s < kc; s += kSliceK) {
      const int64_t ks = std::min(kSliceK, kc - s);
      Block b{nullptr, ldx, panel + (k0 + s) * P, ks, nullptr, accumulate || s > 0, false, nullptr, ldy,
              std::min(P, cols - j0)};
      for (int64_t r = 0; r < M; r += kern.rows) {
        b.x = x + r * ldx + s;
        b.y = y + r * ldy + j0;
        kern.block(b, std::min(kern.rows, M - r));
      }
    }
  }
}

}  // namespace memcc
