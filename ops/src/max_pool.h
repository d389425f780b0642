// Max pooling over non-overlapping windows after the activation (docs/op-spec.md, step 10), for
// the engines whose kernels do not pool themselves: one pass from the layer's outputs to Y.
#pragma once

#include <cstdint>
#include <vector>

#include "layer_compute.h"

namespace memcc {

// out[b, n, t] = max of y[b, n, p] over the window t of `window` (one size per spatial axis,
// stride = size, trailing positions dropped). y has shape y_shape ([B, N, D1..Dn], n <= 3), out
// the pooled shape. A window with a NaN gives NaN. Splits the planes across `runner`.
void max_pool(const float* y, const std::vector<int64_t>& y_shape, const std::vector<int64_t>& window, float* out,
              const TaskRunner& runner);

}  // namespace memcc
