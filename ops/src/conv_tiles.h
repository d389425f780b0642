// The tile reads of conv mode's ADC path on D packed once per session (OpenBLAS repacks D's tile
// on every sgemm call, and that packing was a third of the layer's time). A read produces the
// tile's currents in Y's [column, position] layout, I[j, i] = sum_k D[k, j] v_i[k], from voltage
// vectors stored as columns (the im2col layout), which the kernel reads without packing them.
//
// D's columns are packed per group and column tile in blocks of kConvTileBlock columns, K-major:
// block b of a tile holds D[k, c0 + 8b + r] at [k * 8 + r], zero past the tile's last column.
// The AVX-512 micro-kernel keeps 8 columns x 32 positions in 16 zmm accumulators; the plain C++
// one exists for tests and CPUs without AVX-512 (where the caller keeps OpenBLAS).
#pragma once

#include <cstdint>
#include <vector>

#include "small_gemm.h"

namespace memcc {

constexpr int64_t kConvTileBlock = 8;

struct ConvTilePack {
  int64_t K = 0;       // rows of D (Kg: the rows of one group)
  int64_t groups = 0;
  int64_t Ng = 0;      // columns per group
  int64_t tc = 0;      // columns per column tile (the last of a group may be narrower)
  int64_t blocks = 0;  // blocks per group
  std::vector<float> data;
  bool empty() const { return data.empty(); }
};

// D: [K, groups * Ng] row-major (the layer's matrix). tc > 0.
ConvTilePack pack_conv_tiles(const float* D, int64_t K, int64_t groups, int64_t Ng, int64_t tc);

// One tile read for m vectors: out[j * ldo + i] (=, or += with accumulate) sum over
// k0 <= k < k0 + kc of D[k, h * Ng + c0 + j] v[(k - k0) * ldv + i], for j < min(tc, Ng - c0),
// i < m. c0 is a multiple of tc; v points at row k0 of the vectors.
void conv_tile_read(const ConvTilePack& pack, int64_t h, int64_t c0, int64_t k0, int64_t kc, const float* v,
                    int64_t ldv, int64_t m, float* out, int64_t ldo, bool accumulate,
                    GemmIsa isa = GemmIsa::Auto);

}  // namespace memcc
