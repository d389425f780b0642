// The tiled crossbar MAC: a register-blocked SGEMM (64 x 128 outputs per block of 256 threads,
// 4 x 8 per thread, K in steps of 16 through shared memory) over the input vectors [rows, K] of
// one group and the packed matrix, with the op's periphery in its epilogue:
//  - Output:   one product over all K (no ADC): read noise (one term per vector and column),
//              then y = a * weight_scale * s / V_max + Bias, activation, stored in Y's layout;
//  - AdcFused: a block owns one column tile (tile_cols <= 128) and walks the row tiles: each tile
//              read gets its noise term and is quantized in registers (Q = the read's largest
//              magnitude, a warp reduction over the 16 threads that hold a row) and summed, then
//              the Output epilogue; the currents never leave the chip;
//  - Store:    the currents of one row tile (with noise) to scratch, for the ADC kernel of reads
//              wider than a block or with an overflow rate (adc_reads.cuh).
// With `kNoise` the same pass accumulates the variance sum_k f(v_k)^2 var[k, j] next to the
// current, so the inputs are read once for both (docs/op-spec.md, step 5).
#pragma once

#include <cstdint>

#include "crossbar_cuda.h"
#include "device_math.cuh"

namespace memcc {
namespace cuda {

constexpr int kGemmBM = 64, kGemmBN = 128, kGemmBK = 16, kGemmThreads = 256;
constexpr int kGemmTM = 4, kGemmTN = 8;  // per thread: rows ty*4 + i, columns tx + 16 j

enum class Epilogue { Output, AdcFused, Store };

struct GemmArgs {
  LayerSpec spec;
  const float* a;         // [groups][rows][K]
  const float* scale;     // [groups][rows]; nullptr: inputs are X itself (ideal, factor 1)
  const float* matrix;    // [K][N]
  const float* variance;  // [K][N] (kNoise)
  const float* bias;      // [N] or nullptr
  float* y;               // Output, AdcFused
  float* store;           // Store: [groups][rows][Ng]
  int64_t row_tile;       // Store: the row tile computed
};

// The read-noise counter q of row `row` of group h (docs/op-spec.md, step 5).
__device__ inline uint64_t vector_index(const LayerSpec& s, int64_t h, int64_t row) {
  if (!s.conv) return static_cast<uint64_t>(row);
  const int64_t b = row / s.positions, p = row % s.positions;
  return static_cast<uint64_t>((b * s.groups + h) * s.positions + p);
}

// Step 8, activation and the store into Y ([rows, N] or [B, N, positions...]).
__device__ inline void write_output(const GemmArgs& g, int64_t h, int64_t row, int64_t col, float a) {
  const LayerSpec& s = g.spec;
  const int64_t n = h * s.Ng + col;
  float v = a;
  if (g.scale) {
    const float sv = g.scale[h * s.rows + row];
    v = a * static_cast<float>(static_cast<double>(s.weight_scale) * sv / s.v_max);
  }
  if (g.bias) v += g.bias[n];
  if (s.relu) v = v < 0.0f ? 0.0f : v;  // NaN stays NaN
  if (s.conv) {
    const int64_t b = row / s.positions, p = row % s.positions;
    g.y[(b * s.N + n) * s.positions + p] = v;
  } else {
    g.y[row * s.N + n] = v;
  }
}

template <bool kNoise, Epilogue kEpi>
__global__ void __launch_bounds__(kGemmThreads) crossbar_gemm(GemmArgs g) {
  constexpr int BM = kGemmBM, BN = kGemmBN, BK = kGemmBK, TM = kGemmTM, TN = kGemmTN;
  // +4: the tile is stored k-major by threads that walk k fastest; padding spreads those stores
  // over the banks (and keeps each row of 4 floats 16-byte aligned for the reads).
  __shared__ float As[BK][BM + 4];
  __shared__ float Bs[BK][BN];
  __shared__ float Vs[kNoise ? BK : 1][kNoise ? BN : 1];
  const LayerSpec& s = g.spec;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t h = blockIdx.z;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int64_t width = kEpi == Epilogue::AdcFused ? s.tile_cols : BN;
  const int64_t col0 = static_cast<int64_t>(blockIdx.y) * width;
  const int64_t col_end = col0 + width < s.Ng ? col0 + width : s.Ng;
  const float* A = g.a + h * s.rows * s.K;
  const int64_t gcol = h * s.Ng;  // column of the matrix for the group's column 0

  const int64_t row_tiles = kEpi == Epilogue::AdcFused ? (s.K + s.tile_rows - 1) / s.tile_rows : 1;
  float out[TM][TN];
  for (int i = 0; i < TM; ++i)
    for (int j = 0; j < TN; ++j) out[i][j] = 0.0f;

  for (int64_t r = 0; r < row_tiles; ++r) {
    const int64_t tile = kEpi == Epilogue::Store ? g.row_tile : r;
    const int64_t k_lo = kEpi == Epilogue::Output ? 0 : tile * s.tile_rows;
    const int64_t k_hi = kEpi == Epilogue::Output ? s.K : (k_lo + s.tile_rows < s.K ? k_lo + s.tile_rows : s.K);
    float acc[TM][TN], var[kNoise ? TM : 1][kNoise ? TN : 1];
    for (int i = 0; i < TM; ++i)
      for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
    if (kNoise) {
      for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) var[i][j] = 0.0f;
    }
    for (int64_t k0 = k_lo; k0 < k_hi; k0 += BK) {
      for (int l = 0; l < BM * BK / kGemmThreads; ++l) {
        const int e = tid + kGemmThreads * l;
        const int row = e / BK, kk = e % BK;
        const int64_t gr = row0 + row, gk = k0 + kk;
        As[kk][row] = gr < s.rows && gk < k_hi ? A[gr * s.K + gk] : 0.0f;
      }
      for (int l = 0; l < BN * BK / kGemmThreads; ++l) {
        const int e = tid + kGemmThreads * l;
        const int kk = e / BN, c = e % BN;
        const int64_t gc = col0 + c, gk = k0 + kk;
        const bool inside = c < width && gc < col_end && gk < k_hi;
        Bs[kk][c] = inside ? g.matrix[gk * s.N + gcol + gc] : 0.0f;
        if (kNoise) Vs[kk][c] = inside ? g.variance[gk * s.N + gcol + gc] : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        float av[TM], bv[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) av[i] = As[kk][ty * TM + i];
#pragma unroll
        for (int j = 0; j < TN; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        if (kNoise) {
#pragma unroll
          for (int j = 0; j < TN; ++j) {
            const float q = Vs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < TM; ++i) var[i][j] = fmaf(av[i] * av[i], q, var[i][j]);
          }
        }
      }
      __syncthreads();
    }
    if (kNoise) {
      // Without an ADC there is one term per vector and column over all K (r = 0).
      const uint64_t r_word = kEpi == Epilogue::Output ? 0 : static_cast<uint64_t>(tile);
      for (int i = 0; i < TM; ++i) {
        const int64_t row = row0 + ty * TM + i;
        if (row >= s.rows) continue;
        const uint64_t q = vector_index(s, h, row);
        for (int j = 0; j < TN; ++j) {
          const int64_t col = col0 + tx + 16 * j;
          if (tx + 16 * j >= width || col >= col_end) continue;
          const float sd = sqrtf(var[i][j] > 0.0f ? var[i][j] : 0.0f);
          // One fused multiply-add, as the CPU's AVX-512 terms are added.
          acc[i][j] = fmaf(sd, counter_normal(s.noise_key, s.execution, q, r_word, static_cast<uint64_t>(gcol + col)),
                           acc[i][j]);
        }
      }
    }
    if (kEpi == Epilogue::AdcFused) {
      // Quant with Q = max |read| (no overflow): the 16 threads of a row (tx) share a half warp.
      for (int i = 0; i < TM; ++i) {
        float m = 0.0f;
        for (int j = 0; j < TN; ++j) {
          if (tx + 16 * j < width && col0 + tx + 16 * j < col_end) m = fmaxf(m, fabsf(acc[i][j]));
        }
        for (int off = 8; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
        const double delta = adc_step(m, s.adc_bits);
        if (delta == 0.0) continue;  // Q = 0: the read contributes zeros
        for (int j = 0; j < TN; ++j) out[i][j] += adc_value(acc[i][j], delta, s.adc_bits);
      }
    } else {
      for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) out[i][j] = acc[i][j];
    }
  }

  for (int i = 0; i < TM; ++i) {
    const int64_t row = row0 + ty * TM + i;
    if (row >= s.rows) continue;
    for (int j = 0; j < TN; ++j) {
      const int64_t col = col0 + tx + 16 * j;
      if (tx + 16 * j >= width || col >= col_end) continue;
      if (kEpi == Epilogue::Store) {
        g.store[(h * s.rows + row) * s.Ng + col] = out[i][j];
      } else {
        write_output(g, h, row, col, out[i][j]);
      }
    }
  }
}

}  // namespace cuda
}  // namespace memcc
