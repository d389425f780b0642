// A direct, slow transcription of docs/op-spec.md in double precision: the oracle of the unit
// tests. It shares no code with the library beyond the attribute struct and the shape plan.
#pragma once

#include <cstdint>
#include <vector>

#include "layer_plan.h"
#include "op_attributes.h"

namespace memcc_test {

// The spec's Quant over one read.
std::vector<double> naive_quant(const std::vector<double>& a, int bits, double q);

// Y of the op for X, G ([S, K, N] row-major), optional bias. Shapes as in the plan.
// `execution` is the read-noise counter c, `time` the input T (negative: absent).
std::vector<float> naive_layer(const memcc::OpAttributes& a, const memcc::LayerPlan& p,
                               const std::vector<float>& X, const std::vector<float>& G,
                               const float* bias, uint64_t execution = 0, double time = -1.0);

// G' of the spec's drift section, in double, one device at a time.
std::vector<double> naive_drift(const memcc::OpAttributes& a, const std::vector<float>& G, int64_t S, int64_t K,
                                int64_t N, double time);

// Entry k of the conv input vector of image b, group h, output position pos (flat).
double naive_patch_entry(const memcc::LayerPlan& p, const std::vector<float>& X, int64_t b, int64_t h,
                         int64_t pos, int64_t k);

}  // namespace memcc_test
