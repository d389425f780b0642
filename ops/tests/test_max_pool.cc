// max_pool (docs/op-spec.md, step 10) against a direct loop over every window in double: 1-D,
// 2-D and 3-D outputs, windows that do not divide the sizes (trailing positions dropped), unit
// windows, and NaN anywhere in a window.
#include <cmath>
#include <random>
#include <vector>

#include "layer_compute.h"
#include "max_pool.h"
#include "test_harness.h"

using namespace memcc;
using V = std::vector<int64_t>;

namespace {

std::mt19937 rng(17);
int64_t pick(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

// The window maximum by definition: every position of the window, NaN if any is NaN.
std::vector<float> naive_pool(const std::vector<float>& y, const V& shape, const V& window) {
  const size_t n = window.size();
  V in(3, 1), w(3, 1), o(3, 1);
  for (size_t d = 0; d < n; ++d) {
    in[3 - n + d] = shape[2 + d];
    w[3 - n + d] = window[d];
    o[3 - n + d] = shape[2 + d] / window[d];
  }
  const int64_t planes = shape[0] * shape[1];
  std::vector<float> out;
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t t0 = 0; t0 < o[0]; ++t0) {
      for (int64_t t1 = 0; t1 < o[1]; ++t1) {
        for (int64_t t2 = 0; t2 < o[2]; ++t2) {
          double m = -INFINITY;
          bool nan = false;
          for (int64_t a0 = 0; a0 < w[0]; ++a0) {
            for (int64_t a1 = 0; a1 < w[1]; ++a1) {
              for (int64_t a2 = 0; a2 < w[2]; ++a2) {
                const int64_t i = (((p * in[0]) + t0 * w[0] + a0) * in[1] + t1 * w[1] + a1) * in[2] + t2 * w[2] + a2;
                const float v = y[static_cast<size_t>(i)];
                nan = nan || std::isnan(v);
                m = std::max(m, double(v));
              }
            }
          }
          out.push_back(nan ? NAN : static_cast<float>(m));
        }
      }
    }
  }
  return out;
}

}  // namespace

TEST(max_pool_matches_windows) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t n = pick(1, 3);
    V shape = {pick(1, 3), pick(1, 5)}, window;
    for (int64_t d = 0; d < n; ++d) {
      window.push_back(pick(1, 4));
      shape.push_back(window.back() * pick(1, 5) + pick(0, window.back() - 1));  // whole windows and a rest
    }
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    std::vector<float> y(static_cast<size_t>(count));
    for (auto& v : y) v = nd(rng);
    if (trial % 4 == 0) {
      for (int k = 0; k < 3; ++k) y[static_cast<size_t>(pick(0, count - 1))] = NAN;
    }
    const std::vector<float> want = naive_pool(y, shape, window);
    std::vector<float> got(want.size(), 12345.0f);
    max_pool(y.data(), shape, window, got.data(), SerialRunner(trial % 3 + 1));
    for (size_t i = 0; i < want.size(); ++i) {
      if (std::isnan(want[i])) {
        CHECK(std::isnan(got[i]));
      } else {
        CHECK_EQ(got[i], want[i]);
      }
    }
  }
  // A unit window copies; a NaN first or last in a window wins either way.
  std::vector<float> y = {NAN, 2, 3, 4, 5, 6, 7, NAN, 9, 10, 11, 12};
  std::vector<float> same(12);
  max_pool(y.data(), V{1, 1, 3, 4}, V{1, 1}, same.data(), SerialRunner());
  for (size_t i = 0; i < 12; ++i) CHECK(same[i] == y[i] || (std::isnan(same[i]) && std::isnan(y[i])));
  std::vector<float> pairs(6);
  max_pool(y.data(), V{1, 1, 3, 4}, V{1, 2}, pairs.data(), SerialRunner());
  CHECK(std::isnan(pairs[0]) && pairs[1] == 4.0f && pairs[2] == 6.0f && std::isnan(pairs[3]));
  CHECK(pairs[4] == 10.0f && pairs[5] == 12.0f);
  std::vector<float> pooled(2);
  max_pool(y.data(), V{1, 1, 3, 4}, V{2, 2}, pooled.data(), SerialRunner());  // row 2 dropped
  CHECK(std::isnan(pooled[0]) && std::isnan(pooled[1]));
}
