// The digital activation after the bias (docs/op-spec.md, step 9), for the engines whose kernels
// do not apply it themselves: one pass over Y.
#pragma once

#include <cstdint>

#include "layer_compute.h"
#include "op_attributes.h"

namespace memcc {

// y[i] = activation(y[i]) for i < count; NaN stays NaN. Splits large outputs across `runner`.
void apply_activation(Activation activation, float* y, int64_t count, const TaskRunner& runner);

}  // namespace memcc
