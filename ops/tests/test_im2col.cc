// Patch extraction against the spec's formula, entry by entry.
#include <random>
#include <vector>

#include "errors.h"
#include "im2col.h"
#include "layer_plan.h"
#include "map_attributes.h"
#include "naive_spec.h"
#include "test_harness.h"

using namespace memcc;
using V = std::vector<int64_t>;

TEST(im2col_matches_spec_formula) {
  std::mt19937 rng(11);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int cases = 0;
  while (cases < 300) {
    const int n = pick(1, 3);
    memcc_test::MapAttributes m;
    m.set("weight_scale", 1.0f);
    V kernel, strides, dil, pads(2 * n), spatial;
    for (int d = 0; d < n; ++d) {
      kernel.push_back(pick(1, 4));
      strides.push_back(pick(1, 3));
      dil.push_back(pick(1, 3));
      pads[d] = pick(0, 2);
      pads[n + d] = pick(0, 2);
      spatial.push_back(pick(1, n == 3 ? 6 : 11));
    }
    const int mode = pick(0, 3);
    m.set("kernel_shape", kernel).set("strides", strides).set("dilations", dil);
    if (mode == 0) m.set("pads", pads);
    if (mode == 1) m.set("auto_pad", std::string("SAME_UPPER"));
    if (mode == 2) m.set("auto_pad", std::string("SAME_LOWER"));
    if (mode == 3) m.set("auto_pad", std::string("VALID"));
    const int64_t group = pick(1, 2), cg = pick(1, 3), B = 2;
    m.set("group", group);
    const OpAttributes a = parse_attributes(m);
    int64_t ks = 1;
    for (auto k : kernel) ks *= k;
    V x_shape{B, group * cg};
    x_shape.insert(x_shape.end(), spatial.begin(), spatial.end());
    LayerPlan p;
    try {
      p = plan_layer(a, x_shape, V{1, cg * ks, group}, nullptr);
    } catch (const OpError&) {
      continue;  // the kernel does not fit: geometry's own test covers that
    }
    ++cases;
    int64_t total = B * group * cg * p.patch.input_size();
    std::vector<float> X(static_cast<size_t>(total));
    for (size_t i = 0; i < X.size(); ++i) X[i] = static_cast<float>(i % 97) + 1.0f;
    const int64_t P = p.patch.positions(), K = p.K;
    // A random window of positions, written into a wider buffer to check the stride.
    const int64_t p0 = pick(0, static_cast<int>(P - 1));
    const int64_t count = pick(1, static_cast<int>(P - p0));
    const int64_t ldc = count + 3;
    const int64_t b = pick(0, 1), h = pick(0, static_cast<int>(group - 1));
    std::vector<float> col(static_cast<size_t>(K * ldc), -1.0f);
    im2col_columns(X.data() + (b * group + h) * cg * p.patch.input_size(), p.patch, p0, count, col.data(), ldc);
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t i = 0; i < count; ++i) {
        CHECK_EQ(double(col[k * ldc + i]), memcc_test::naive_patch_entry(p, X, b, h, p0 + i, k));
      }
      for (int64_t i = count; i < ldc; ++i) CHECK_EQ(col[k * ldc + i], -1.0f);  // untouched
    }
  }
}
