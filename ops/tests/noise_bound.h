// The check the read-noise tests share: noise terms whose variances have bfloat16 factors (the
// tile unit's) against the same layer's float32 variances, within docs/op-spec.md's bound.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "test_harness.h"

namespace memcc_test {

// y0: the layer without read noise; exact: with it, float32 variances; fast: with it, bfloat16
// variances. Each term (exact - y0) may move by 2^-8 of itself plus float32 sums, and by one ADC
// level more (2^-17 of the outputs' scale, a 24-bit ADC) with adc_level. Some term must differ
// by more than 2^-16 of itself, or the bfloat16 path did not run.
inline void check_bf16_noise_terms(const std::vector<float>& y0, const std::vector<float>& exact,
                                   const std::vector<float>& fast, bool adc_level) {
  double scale = 1e-30;
  for (float v : exact) scale = std::max(scale, double(std::fabs(v)));
  const double level = adc_level ? std::ldexp(scale, -17) : 0.0;
  double worst = 0.0;
  for (size_t i = 0; i < exact.size(); ++i) {
    const double term = double(exact[i]) - y0[i];
    const double err = std::fabs(double(fast[i]) - exact[i]);
    CHECK(err <= (std::ldexp(1.0, -8) + std::ldexp(1.0, -12)) * std::fabs(term) + 1e-6 * scale + level);
    worst = std::max(worst, err / (std::fabs(term) + 1e-30));
  }
  CHECK(worst > std::ldexp(1.0, -16));
}

}  // namespace memcc_test
