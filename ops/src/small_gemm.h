// A small single-precision GEMM for few rows (ideal matmul layers, R <= kSmallGemmMaxRows):
// Y[M, N] = act(X[M, K] W[K, N] + bias). W is packed once (pack_small_gemm) into column panels of
// kSmallGemmPanel floats, K-major and zero-padded, so a call reads it without repacking (an
// invoked onnxruntime Gemm repacks its B on every call). The micro-kernels are picked at run time
// (AVX-512: 6 rows x 32 columns in 12 zmm accumulators; AVX2 + FMA: 6 x 16 in 12 ymm; else plain
// C++), with no -march; the epilogue adds the bias and applies the activation.
#pragma once

#include <cstdint>
#include <vector>

#include "layer_compute.h"
#include "op_attributes.h"

namespace memcc {

constexpr int64_t kSmallGemmPanel = 32;
// Measured crossover against onnxruntime's Gemm (ops/README.md, "Engines").
constexpr int64_t kSmallGemmMaxRows = 256;

struct SmallGemmPack {
  int64_t K = 0, N = 0;
  std::vector<float> panels;  // ceil(N / 32) panels of [K, 32]
  bool empty() const { return panels.empty(); }
};

// w: [K, N] row-major.
SmallGemmPack pack_small_gemm(const float* w, int64_t K, int64_t N);

// Which micro-kernel runs: the best the CPU has (Auto), or a lower one (tests).
enum class GemmIsa { Auto, Generic, Avx2, Avx512 };
// The kernel Auto picks on this CPU (never Auto).
GemmIsa small_gemm_best_isa();

// y[M, N] = activation(x[M, K] * W + bias); bias may be null. K, N from the pack (K > 0, N > 0).
// An isa the CPU lacks falls back to the best it has.
void small_gemm(const SmallGemmPack& w, const float* x, int64_t M, const float* bias, Activation activation,
                float* y, const TaskRunner& runner, GemmIsa isa = GemmIsa::Auto);

// One thread's block of the product without bias or activation, for a row-tile slice of K:
//   y[i * ldy + j] (+)= sum over k0 <= k < k0 + kc of x[i * ldx + k - k0] W[k, n0 + j]
// for i < M, j < cols; x points at the slice's first element (column k0 of the rows). n0 is a
// multiple of kSmallGemmPanel; n0 + cols <= N, k0 + kc <= K. accumulate: add onto y, else store.
void small_gemm_block(const SmallGemmPack& w, const float* x, int64_t ldx, int64_t M, int64_t k0, int64_t kc,
                      int64_t n0, int64_t cols, float* y, int64_t ldy, bool accumulate,
                      GemmIsa isa = GemmIsa::Auto);

}  // namespace memcc
