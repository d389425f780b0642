// Shape checks of one MemristiveMatMul call (docs/op-spec.md, "Inputs" and "Shapes") and the
// sizes the computation needs, derived once per call from the input shapes.
#pragma once

#include <cstdint>
#include <vector>

#include "im2col.h"
#include "op_attributes.h"

namespace memcc {

struct LayerPlan {
  int64_t S = 0, K = 0, N = 0;  // G is [S, K, N]
  bool has_bias = false;
  std::vector<int64_t> y_shape;    // the layer's outputs (before max pooling)
  std::vector<int64_t> out_shape;  // the node's output Y: y_shape, pooled with max_pool

  // Matmul mode: R input vectors of length K.
  int64_t rows = 0;

  // Conv mode.
  int64_t batch = 0, channels = 0, group = 1;
  int64_t group_cols = 0;  // N / group
  Im2colShape patch;       // one image, one group; patch.rows() == K
};

// bias_shape: nullptr when the optional input is absent. An empty Bias ([0] with N > 0) counts
// as absent, as the spec's "absent or empty name" does for the input itself.
// Throws OpError naming the input and the constraint.
LayerPlan plan_layer(const OpAttributes& attrs, const std::vector<int64_t>& x_shape,
                     const std::vector<int64_t>& g_shape, const std::vector<int64_t>* bias_shape);

}  // namespace memcc
