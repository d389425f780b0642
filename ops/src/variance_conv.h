// The read-noise variance of a 2-D conv layer without an ADC (docs/op-spec.md, step 5: one term
// per output, var[n, j, p] = sum_k e(x)_k^2 V[k, j] over the patch of position p) as a direct
// convolution on the AMX-BF16 tile unit. Both factors are rounded to bfloat16 after power-of-two
// scaling, products and sums in float32 ("Numerical agreement" states the bound). Two float32
// convs (the product and this one) made read noise cost 2.5x the layer; the tile unit runs the
// variance conv at a fraction of the product's cost.
//
// Layout: per image and group the squared inputs are stored as channel pairs over the padded
// image, flattened ([C/2][Hp * Wp][2] bfloat16), so that for stride 1 the inputs of 16
// consecutive flattened output positions at one kernel offset are 64 contiguous bytes, one row
// of a tile: no im2col. Positions in the padding columns (or past the end of an output row) are
// computed and dropped.
#pragma once

#include <cstdint>

#include "cache_line_vector.h"
#include "layer_plan.h"

namespace memcc {

class TaskRunner;

// V [K, N] (K = Cg * kernel positions, rows ordered as the patches: channel-major) packed per
// group, 16-column block, kernel offset and 32-channel block as 16 x 32 bfloat16 tiles.
struct VarianceConvPack {
  int64_t groups = 0, Cg = 0, Ng = 0, ks = 0;
  int64_t c_tiles = 0;  // 32-channel blocks
  int64_t n_tiles = 0;  // 16-column blocks, even (pairs run together)
  int x_exp = 0;        // the squares are scaled to a maximum below 2^x_exp
  float v_unscale = 1.0f;
  CacheLineVector<uint16_t> tiles;
  bool empty() const { return tiles.empty(); }
};

// Empty when the CPU lacks AMX-BF16 or AVX512-BF16 (or MEMCC_OPS_AMX=0).
VarianceConvPack pack_variance_conv(const float* V, int64_t K, int64_t N, int64_t groups, int64_t Cg);

// var (Y's shape, plan.y_shape) := the variances of every output for the encoded input x (the
// X tensor's layout). Returns false, with var unspecified, when the pack does not serve the call
// (not a 2-D conv, stride other than 1, other shapes than packed) or when the inputs' range
// could push a term the bound keeps into bfloat16's flushed denormals (a pixel's largest square
// below 2^-56 of its image's largest, or a non-finite input): the caller then computes var in
// float32.
bool variance_conv(const VarianceConvPack& pack, const LayerPlan& plan, const float* x, float* var,
                   const TaskRunner& runner);

// ---- Conv ADC path: each tile read's variance ------------------------------------------------

// V [K, groups * Ng] packed per group, column tile (tc columns, as conv_tiles) and 16-column
// block, 32-row block: A tiles of 16 columns x 32 rows in bfloat16, V scaled by an even power of
// two (its square root exact).
struct TileVariancePack {
  int64_t K = 0, groups = 0, Ng = 0, tc = 0;
  int64_t k_blocks = 0;    // 32-row blocks
  int64_t col_blocks = 0;  // 16-column blocks per group (all column tiles)
  int x_exp = 0;
  float v_root_unscale = 1.0f;  // sqrt of the factor that undoes V's scale
  CacheLineVector<uint16_t> tiles;
  bool empty() const { return tiles.empty(); }
};

// Empty when the CPU lacks AMX-BF16 or AVX512-BF16 (or MEMCC_OPS_AMX=0).
TileVariancePack pack_tile_variance(const float* V, int64_t K, int64_t groups, int64_t Ng, int64_t tc);

// One sub-block's squared voltages for tile_variance_read: v holds m voltage vectors as columns
// (v[k * ldv + i], k < K), sq gets their squares times 2^(2t) in bfloat16 pairs of rows
// ([k / 2][ldq][2], rows past K zero, positions up to m rounded to 16). *root_unscale :=
// 2^-t * pk.v_root_unscale, the factor of sqrt(variance) the terms need. False (the caller keeps
// float32) when a nonzero square would lie within 2^-55 of bfloat16's flushed range relative to
// the largest, or a voltage is not finite. sq holds ceil(K / 32) * 16 * ldq uint32 values.
//
// known: bounds [lo, hi] on every nonzero square that the input encoding guarantees (a DAC puts
// each nonzero |v| between one level and full scale), or {0, 0}. When they fit the pack's
// exponent budget (hi below 2^(x_exp - 1), lo high enough that no term the bound keeps can
// flush), the squares go unscaled (t = 0) with neither the scan for the largest voltage nor the
// one for the smallest square: a nonzero square then is a bfloat16 normal, and a NaN voltage
// makes its reads' variances NaN, which the terms count as 0, as on the float32 path.
struct SquareBounds {
  double lo = 0.0, hi = 0.0;
};
bool tile_squares(const TileVariancePack& pk, const float* v, int64_t ldv, int64_t m, uint32_t* sq, int64_t ldq,
                  float* root_unscale, const SquareBounds& known = {});

// out[j * ldo + i] := the scaled variance of read (row tile k0..k0+kc, column j of tile c0 of
// group h) for position i < m (rounded up to 16: ldo >= that), j < nc rounded up to 16 (out
// holds that many rows); sq at the tile's first position. k0 must be a multiple of 32 and kc one
// too unless the tile ends at K: false otherwise (nothing written).
bool tile_variance_read(const TileVariancePack& pk, int64_t h, int64_t c0, int64_t k0, int64_t kc, const uint32_t* sq,
                        int64_t ldq, int64_t m, float* out, int64_t ldo);

}  // namespace memcc
