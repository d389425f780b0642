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
// of a tile: no im2col. Positions in the padding columns are computed and dropped.
#pragma once

#include <cstdint>
#include <vector>

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
  std::vector<uint16_t> tiles;
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

}  // namespace memcc
