// The encoded conv path without an ADC (a DAC or f with input_range = 0: the voltages depend on
// each patch's max |x|) on the packed tile reads, with and without read noise: against the naive
// spec and the OpenBLAS path, and its bfloat16 variances against float32 within the spec's bound.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "conv_tiles.h"
#include "crossbar_mac.h"
#include "layer_compute.h"
#include "layer_plan.h"
#include "map_attributes.h"
#include "naive_spec.h"
#include "noise_bound.h"
#include "runtime_effects.h"
#include "test_harness.h"
#include "variance_conv.h"

using namespace memcc;
using V = std::vector<int64_t>;

namespace {

std::mt19937 rng(515);
int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// What the kernel packs for this path: weight_scale * D and the variance matrix, each as one
// column tile per group.
struct Packs {
  std::vector<float> matrix, variance;
  ConvTilePack tiles, vtiles;
  TileVariancePack tv;
};

Packs make_packs(const OpAttributes& a, const LayerPlan& p, const std::vector<float>& G) {
  Packs k;
  k.matrix.resize(static_cast<size_t>(p.K * p.N));
  effective_matrix(G.data(), p.S, p.K, p.N, a.g_ref, matrix_scale(a), k.matrix.data());
  k.tiles = pack_conv_tiles(k.matrix.data(), p.K, p.group, p.group_cols, p.group_cols);
  if (a.read_noise()) {
    k.variance.resize(k.matrix.size());
    noise_variance(G.data(), p.S, p.K, p.N, variance_sigma(a), k.variance.data());
    k.vtiles = pack_conv_tiles(k.variance.data(), p.K, p.group, p.group_cols, p.group_cols);
    k.tv = pack_tile_variance(k.variance.data(), p.K, p.group, p.group_cols, p.group_cols);
  }
  return k;
}

int64_t y_count(const LayerPlan& p) {
  int64_t total = 1;
  for (int64_t d : p.y_shape) total *= d;
  return total;
}

// tiles: run on the packed reads (else the OpenBLAS path); tv: their variances on the tile unit.
std::vector<float> run(const OpAttributes& a, const LayerPlan& p, const Packs& k, const std::vector<float>& X,
                       const float* bias, bool tiles, bool tv, int split) {
  std::vector<float> y(static_cast<size_t>(y_count(p)), NAN);
  ReadNoise noise;
  noise.variance = k.variance.empty() ? nullptr : k.variance.data();
  noise.conv_tiles = tiles && !k.vtiles.empty() ? &k.vtiles : nullptr;
  noise.tile_variance = tv && !k.tv.empty() ? &k.tv : nullptr;
  noise.key = static_cast<uint64_t>(a.noise_seed);
  noise.execution = 3;
  run_layer(a, p, k.matrix.data(), X.data(), bias, y.data(), SerialRunner(split), &noise, nullptr,
            tiles ? &k.tiles : nullptr);
  return y;
}

}  // namespace

TEST(conv_encoded_tiles_match_naive) {
  // 1-D to 3-D kernels, groups, strides, dilations, asymmetric pads, a DAC and/or f, with and
  // without read noise and bias; images past one sub-block of 256 positions, and tasks that
  // split an image (then s is found from the patches, not from patch_maxima).
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> cond(1e-6f, 1e-4f);
  for (int trial = 0; trial < 60; ++trial) {
    memcc_test::MapAttributes m;
    m.set("weight_scale", 5e3f).set("max_input_voltage", 0.3f);
    const int kind = trial % 3;  // f, a DAC, both
    if (kind != 1) m.set("iv_a", 0.32f).set("iv_b", 2.7f);
    if (kind != 0) m.set("dac_bits", int64_t{pick(4, 9)});
    const bool noisy = trial % 2 == 1;
    if (noisy) m.set("read_noise_std", 0.1f).set("noise_seed", int64_t{pick(0, 100)});
    if (pick(0, 3) == 0) m.set("tile_shape", V{pick(1, 9), pick(1, 5)});  // no ADC: no effect on columns
    const int n = trial % 7 == 0 ? 1 : (trial % 11 == 0 ? 3 : 2);
    const bool big = trial % 5 == 0 && n == 2;
    V kernel, strides, dil, pads(2 * n), spatial;
    for (int d = 0; d < n; ++d) {
      kernel.push_back(pick(1, 3));
      strides.push_back(pick(1, 2));
      dil.push_back(pick(1, 2));
      pads[d] = pick(0, 1);
      pads[n + d] = pick(0, 2);
      spatial.push_back((kernel[d] - 1) * dil[d] + 1 + pick(0, big ? 30 : (n == 3 ? 2 : 8)));
    }
    const int64_t group = pick(1, 3), cg = pick(1, 6), ng = pick(1, 19);
    m.set("kernel_shape", kernel).set("strides", strides).set("dilations", dil).set("group", group).set("pads", pads);
    int64_t ks = 1;
    for (auto kk : kernel) ks *= kk;
    V x_shape = {pick(1, 2), group * cg};
    x_shape.insert(x_shape.end(), spatial.begin(), spatial.end());
    const V g_shape = {2, cg * ks, group * ng};
    const OpAttributes a = parse_attributes(m);
    const V bias_shape{g_shape[2]};
    const LayerPlan p = plan_layer(a, x_shape, g_shape, pick(0, 1) ? &bias_shape : nullptr);
    int64_t xs = 1;
    for (auto d : x_shape) xs *= d;
    std::vector<float> X(static_cast<size_t>(xs)), G(static_cast<size_t>(2 * g_shape[1] * g_shape[2]));
    std::vector<float> bias(static_cast<size_t>(g_shape[2]));
    for (auto& v : X) v = nd(rng);
    for (auto& g : G) g = cond(rng);
    for (auto& v : bias) v = nd(rng);
    const float* b = p.has_bias ? bias.data() : nullptr;
    const Packs k = make_packs(a, p, G);
    const int split = pick(1, 4);
    const auto fast = run(a, p, k, X, b, true, false, split);
    const auto blas = run(a, p, k, X, b, false, false, split);
    const auto want = memcc_test::naive_layer(a, p, X, G, b, 3, -1.0);
    double scale = 1e-30;
    for (double v : want) scale = std::max(scale, std::fabs(v));
    int64_t off_naive = 0, off_blas = 0;
    for (size_t i = 0; i < fast.size(); ++i) {
      if (!(std::fabs(double(fast[i]) - want[i]) <= 2e-5 * scale)) ++off_naive;
      if (!(std::fabs(double(fast[i]) - blas[i]) <= 2e-5 * scale)) ++off_blas;
    }
    // A DAC level may sit on a decision boundary (docs/op-spec.md, "Numerical agreement").
    const int64_t allowed = a.dac_bits > 0 ? std::max<int64_t>(1, static_cast<int64_t>(fast.size()) / 50) : 0;
    if (off_naive > allowed || off_blas > allowed) {
      memcc_test::fail(__FILE__, __LINE__,
                       "trial " + std::to_string(trial) + ": " + std::to_string(off_naive) + " (naive), " +
                           std::to_string(off_blas) + " (OpenBLAS path) of " + std::to_string(fast.size()) +
                           " outputs differ");
    }
    if (noisy) {
      // The noise is there: without it the outputs move.
      OpAttributes quiet = a;
      quiet.read_noise_std = 0.0f;
      const auto y0 = run(quiet, p, make_packs(quiet, p, G), X, b, true, false, split);
      int64_t moved = 0;
      for (size_t i = 0; i < fast.size(); ++i) moved += fast[i] != y0[i];
      CHECK(moved > 0);
    }
  }
}

TEST(conv_encoded_tiles_bf16_within_bound) {
  // The read-noise variances on the tile unit (AMX-BF16) against the same path's float32 ones:
  // each noise term within docs/op-spec.md's bound for a bfloat16 variance (2^-8 of the term
  // plus float32 sums). Groups, a stride, K off the 32-row grid, positions past a sub-block.
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> cond(1e-6f, 1e-4f);
  for (int dac : {0, 8}) {
    memcc_test::MapAttributes m;
    m.set("weight_scale", 5e3f).set("max_input_voltage", 0.3f).set("read_noise_std", 0.2f)
        .set("noise_seed", int64_t{4}).set("kernel_shape", V{3, 3}).set("pads", V{1, 1, 1, 1}).set("group", 2)
        .set("strides", V{1, 2}).set("iv_a", 0.32f).set("iv_b", 2.7f);
    if (dac > 0) m.set("dac_bits", int64_t{dac});
    const V x_shape = {2, 2 * 11, 19, 41}, g_shape = {2, 11 * 9, 2 * 45};
    const OpAttributes a = parse_attributes(m);
    const LayerPlan p = plan_layer(a, x_shape, g_shape, nullptr);
    std::vector<float> X(static_cast<size_t>(2 * 22 * 19 * 41)), G(static_cast<size_t>(2 * 99 * 90));
    for (auto& v : X) v = nd(rng);
    for (auto& g : G) g = cond(rng);
    const Packs k = make_packs(a, p, G);
    if (k.tv.empty()) {
      std::printf("  (no AMX-BF16 on this CPU: nothing to compare)\n");
      return;
    }
    OpAttributes quiet = a;
    quiet.read_noise_std = 0.0f;
    const auto y0 = run(quiet, p, make_packs(quiet, p, G), X, nullptr, true, false, 1);
    const auto exact = run(a, p, k, X, nullptr, true, false, 1);
    const auto fast = run(a, p, k, X, nullptr, true, true, 1);
    memcc_test::check_bf16_noise_terms(y0, exact, fast, false);
  }
}
