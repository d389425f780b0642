// variance_conv (the no-ADC conv read-noise variance on AMX-BF16) against a float64 direct
// convolution of the squares: each variance within the bound docs/op-spec.md allows a bfloat16
// variance (2^-7 + 2^-16, plus float32 sums), over groups, dilations, asymmetric and missing
// pads, channel and column counts off the 32 / 16 grid and output rows off the 16 grid; the
// cases it must decline (strides, a pixel below the flush margin, non-finite inputs).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "layer_compute.h"
#include "layer_plan.h"
#include "map_attributes.h"
#include "test_harness.h"
#include "variance_conv.h"
#include "variance_gemm.h"

using namespace memcc;
using V = std::vector<int64_t>;

namespace {

std::mt19937 rng(31);
int64_t pick(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

struct Layer {
  OpAttributes attrs;
  LayerPlan plan;
  std::vector<float> x, V;
};

Layer make_layer(int64_t B, int64_t C, int64_t H, int64_t W, int64_t N, int64_t group, V kernel, V pads, V dil,
                 V strides) {
  memcc_test::MapAttributes m;
  m.set("weight_scale", 1.0f).set("kernel_shape", kernel).set("pads", pads).set("group", group)
      .set("dilations", dil).set("strides", strides);
  Layer l;
  l.attrs = parse_attributes(m);
  const int64_t K = C / group * kernel[0] * kernel[1];
  l.plan = plan_layer(l.attrs, {B, C, H, W}, {1, K, N}, nullptr);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> var(1e-11f, 1e-8f);
  l.x.resize(static_cast<size_t>(B * C * H * W));
  for (auto& v : l.x) v = nd(rng);
  l.V.resize(static_cast<size_t>(K * N));
  for (auto& v : l.V) v = var(rng);
  return l;
}

// var[b, n, p] = sum over the patch of x^2 V, in float64.
std::vector<double> naive_variance(const Layer& l) {
  const LayerPlan& p = l.plan;
  const Im2colShape& s = p.patch;
  const int64_t H = s.in[1], W = s.in[2], Ho = s.out[1], Wo = s.out[2], kh = s.kernel[1], kw = s.kernel[2];
  std::vector<double> out(static_cast<size_t>(p.batch * p.N * Ho * Wo), 0.0);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t n = 0; n < p.N; ++n) {
      const int64_t h = n / p.group_cols;
      for (int64_t oy = 0; oy < Ho; ++oy) {
        for (int64_t ox = 0; ox < Wo; ++ox) {
          double sum = 0.0;
          for (int64_t c = 0; c < s.channels; ++c) {
            for (int64_t ky = 0; ky < kh; ++ky) {
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = oy * s.stride[1] - s.pad_begin[1] + ky * s.dilation[1];
                const int64_t ix = ox * s.stride[2] - s.pad_begin[2] + kx * s.dilation[2];
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                const double xv = l.x[static_cast<size_t>(((b * p.channels + h * s.channels + c) * H + iy) * W + ix)];
                sum += xv * xv * l.V[static_cast<size_t>(((c * kh + ky) * kw + kx) * p.N + n)];
              }
            }
          }
          out[static_cast<size_t>((b * p.N + n) * Ho * Wo + oy * Wo + ox)] = sum;
        }
      }
    }
  }
  return out;
}

bool run(const Layer& l, std::vector<float>& var, int threads = 1) {
  const VarianceConvPack pk = pack_variance_conv(l.V.data(), l.plan.K, l.plan.N, l.plan.group, l.plan.patch.channels);
  var.assign(static_cast<size_t>(l.plan.batch * l.plan.N * l.plan.patch.positions()), NAN);
  return variance_conv(pk, l.plan, l.x.data(), var.data(), SerialRunner(threads));
}

}  // namespace

TEST(variance_conv_within_bound) {
  if (pack_variance_conv(std::vector<float>(9, 1.0f).data(), 9, 1, 1, 1).empty()) {
    std::printf("  (no AMX-BF16 / AVX512-BF16 on this CPU: nothing to compare)\n");
    return;
  }
  double worst = 0.0;
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t group = pick(1, 3), cg = trial % 4 == 0 ? pick(32, 70) : pick(1, 40), ng = pick(1, 40);
    const V kernel = {pick(1, 4), pick(1, 4)}, dil = {pick(1, 2), pick(1, 2)};
    const V pads = {pick(0, 2), pick(0, 2), pick(0, 2), pick(0, 2)};
    const int64_t H = pick(kernel[0] * dil[0], 12), W = pick(kernel[1] * dil[1], 37);
    const Layer l = make_layer(pick(1, 3), group * cg, H, W, group * ng, group, kernel, pads, dil, V{1, 1});
    std::vector<float> var;
    CHECK(run(l, var, static_cast<int>(pick(1, 3))));
    const auto want = naive_variance(l);
    for (size_t i = 0; i < want.size(); ++i) {
      const double err = std::fabs(double(var[i]) - want[i]);
      CHECK(err <= (std::ldexp(1.0, -7) + std::ldexp(1.0, -16) + 1e-5) * want[i]);
      if (want[i] > 0.0) worst = std::max(worst, err / want[i]);
    }
  }
  // The bfloat16 rounding shows: the test compares the fast path, not a float32 one.
  CHECK(worst > std::ldexp(1.0, -16));
}

TEST(variance_conv_row_and_flat_blocks) {
  // Widths around the 16-position grid: output rows of 16 or 32 with a 3-wide kernel get blocks
  // of their own (fewer positions than running through the padding columns), other widths run
  // through the flattened rows; odd block counts (odd heights) pad the last pair.
  if (pack_variance_conv(std::vector<float>(9, 1.0f).data(), 9, 1, 1, 1).empty()) return;
  for (const int64_t W : {14, 15, 16, 17, 31, 32, 33}) {
    for (const int64_t H : {1, 3, 4}) {
      const Layer l = make_layer(2, 40, H, W, 20, 1, V{3, 3}, V{1, 1, 1, 1}, V{1, 1}, V{1, 1});
      std::vector<float> var;
      CHECK(run(l, var));
      const auto want = naive_variance(l);
      CHECK_EQ(var.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        CHECK(std::fabs(double(var[i]) - want[i]) <= (std::ldexp(1.0, -7) + std::ldexp(1.0, -16) + 1e-5) * want[i]);
      }
    }
  }
}

TEST(variance_conv_declines) {
  if (pack_variance_conv(std::vector<float>(9, 1.0f).data(), 9, 1, 1, 1).empty()) return;
  std::vector<float> var;
  // Strides other than 1 are not covered.
  const Layer strided = make_layer(1, 8, 9, 9, 8, 1, V{3, 3}, V{1, 1, 1, 1}, V{1, 1}, V{2, 2});
  CHECK(!run(strided, var));
  // A pixel whose largest square lies far below the image's (2^-70): its patches' terms could
  // fall into bfloat16's flushed range, so the float32 path must take it.
  Layer tiny = make_layer(2, 8, 6, 6, 8, 1, V{3, 3}, V{1, 1, 1, 1}, V{1, 1}, V{1, 1});
  for (int64_t c = 0; c < 8; ++c) tiny.x[static_cast<size_t>((8 + c) * 36 + 14)] = std::ldexp(1.0f, -40);
  CHECK(!run(tiny, var));
  // Zero pixels are fine (their terms are 0).
  Layer zeros = tiny;
  for (int64_t c = 0; c < 8; ++c) zeros.x[static_cast<size_t>((8 + c) * 36 + 14)] = 0.0f;
  CHECK(run(zeros, var));
  // Non-finite inputs go to the float32 path (which defines what a NaN variance does).
  Layer nan = zeros;
  nan.x[5] = NAN;
  CHECK(!run(nan, var));
  Layer inf = zeros;
  inf.x[7] = INFINITY;
  CHECK(!run(inf, var));
  // An all-zero image: variances 0.
  Layer quiet = zeros;
  std::fill(quiet.x.begin(), quiet.x.end(), 0.0f);
  CHECK(run(quiet, var));
  for (float v : var) CHECK_EQ(v, 0.0f);
}

TEST(variance_conv_tile_reads_within_bound) {
  // tile_squares + tile_variance_read (the conv ADC path's per-read variances on AMX-BF16)
  // against float64: partial 16-column blocks, narrow last column tiles, groups, row tiles at
  // multiples of 32 (and the last one ending at K off that grid), positions off the 16 grid,
  // reads over many 32-row blocks.
  const TileVariancePack probe = pack_tile_variance(std::vector<float>(4, 1.0f).data(), 2, 1, 2, 2);
  if (probe.empty()) return;
  std::uniform_real_distribution<float> u(-0.3f, 0.3f), var(1e-11f, 1e-8f);
  double worst = 0.0;
  for (int trial = 0; trial < 150; ++trial) {
    // Every fifth trial reads over hundreds of rows, as the encoded conv (576 rows for 3 x 3 x 64).
    const int64_t K = trial % 5 == 0 ? pick(193, 600) : pick(1, 150), groups = pick(1, 3), Ng = pick(1, 50), tc = pick(1, Ng + 3);
    const int64_t N = groups * Ng, m = pick(1, 70), ldv = m + pick(0, 5), ldq = (m + 15) / 16 * 16 + pick(0, 1) * 16;
    std::vector<float> Vm(static_cast<size_t>(K * N)), v(static_cast<size_t>(K * ldv));
    for (auto& x : Vm) x = var(rng);
    for (auto& x : v) x = trial % 7 == 0 && pick(0, 3) == 0 ? 0.0f : u(rng);
    const TileVariancePack pk = pack_tile_variance(Vm.data(), K, groups, Ng, tc);
    std::vector<uint32_t> sq(static_cast<size_t>((K + 31) / 32 * 16 * ldq));
    float root = 0.0f;
    CHECK(tile_squares(pk, v.data(), ldv, m, sq.data(), ldq, &root));
    const int64_t tcc = std::min(tc, Ng), h = pick(0, groups - 1);
    const int64_t c0 = pick(0, (Ng - 1) / tcc) * tcc, nc = std::min(tcc, Ng - c0);
    const int64_t k0 = pick(0, (K - 1) / 32) * 32, kc = pick(0, 1) ? K - k0 : std::min<int64_t>(32 * pick(1, 3), K - k0);
    const int64_t i0 = pick(0, m - 1) / 16 * 16, mi = pick(1, m - i0);
    const int64_t ldo = (mi + 15) / 16 * 16 + pick(0, 2);
    std::vector<float> out(static_cast<size_t>((nc + 15) / 16 * 16 * ldo), NAN);
    if (kc % 32 != 0 && k0 + kc != K) {
      CHECK(!tile_variance_read(pk, h, c0, k0, kc, sq.data() + i0, ldq, mi, out.data(), ldo));
      continue;
    }
    CHECK(tile_variance_read(pk, h, c0, k0, kc, sq.data() + i0, ldq, mi, out.data(), ldo));
    for (int64_t j = 0; j < nc; ++j) {
      for (int64_t i = 0; i < mi; ++i) {
        double want = 0.0;
        for (int64_t k = k0; k < k0 + kc; ++k) {
          const double x = v[static_cast<size_t>(k * ldv + i0 + i)];
          want += x * x * Vm[static_cast<size_t>(k * N + h * Ng + c0 + j)];
        }
        const double got = double(out[static_cast<size_t>(j * ldo + i)]) * root * root;
        const double err = std::fabs(got - want);
        CHECK(err <= (std::ldexp(1.0, -7) + std::ldexp(1.0, -16) + 1e-5) * want);
        if (want > 0.0) worst = std::max(worst, err / want);
      }
    }
  }
  CHECK(worst > std::ldexp(1.0, -16));
  {
    // Bounds on the squares (a DAC's): no scans, squares unscaled, and the same variances as the
    // scanning path, bit for bit (the two differ by powers of two only). A NaN voltage then gives
    // its position NaN variances (which the terms count as 0) instead of declining.
    const int64_t K = 300, Ng = 40, m = 45, ldq = 48;
    std::vector<float> Vm(static_cast<size_t>(K * Ng)), v(static_cast<size_t>(K * m));
    for (auto& x : Vm) x = var(rng);
    const float step = 0.3f / 127;
    for (auto& x : v) x = step * static_cast<float>(pick(-127, 127));
    const TileVariancePack pk = pack_tile_variance(Vm.data(), K, 1, Ng, Ng);
    const SquareBounds dac{std::pow(step / 2.0, 2), std::pow(0.6, 2)};
    std::vector<uint32_t> sq_scan(static_cast<size_t>((K + 31) / 32 * 16 * ldq)), sq_known(sq_scan.size());
    float root_scan = 0.0f, root_known = 0.0f;
    CHECK(tile_squares(pk, v.data(), m, m, sq_scan.data(), ldq, &root_scan));
    CHECK(tile_squares(pk, v.data(), m, m, sq_known.data(), ldq, &root_known, dac));
    CHECK(root_known != root_scan);  // the scan scaled the squares; the bounded pass did not
    const int64_t ldo = 48;
    std::vector<float> out_scan(static_cast<size_t>(48 * ldo)), out_known(out_scan.size());
    for (int64_t k0 = 0; k0 < K; k0 += 128) {
      const int64_t kc = std::min<int64_t>(128, K - k0);
      CHECK(tile_variance_read(pk, 0, 0, k0, kc, sq_scan.data(), ldq, m, out_scan.data(), ldo));
      CHECK(tile_variance_read(pk, 0, 0, k0, kc, sq_known.data(), ldq, m, out_known.data(), ldo));
      for (int64_t j = 0; j < Ng; ++j) {
        for (int64_t i = 0; i < m; ++i) {
          const size_t at = static_cast<size_t>(j * ldo + i);
          CHECK(out_known[at] > 0.0f);
          CHECK_EQ(double(out_scan[at]) * root_scan * root_scan, double(out_known[at]) * root_known * root_known);
        }
      }
    }
    // Bounds outside the pack's budget fall back to the scan.
    float root_far = 0.0f;
    CHECK(tile_squares(pk, v.data(), m, m, sq_known.data(), ldq, &root_far, SquareBounds{1e-30, 0.36}));
    CHECK_EQ(root_far, root_scan);
    CHECK(tile_squares(pk, v.data(), m, m, sq_known.data(), ldq, &root_far, SquareBounds{1e-6, 1e30}));
    CHECK_EQ(root_far, root_scan);
    v[static_cast<size_t>(7 * m + 3)] = NAN;
    CHECK(!tile_squares(pk, v.data(), m, m, sq_scan.data(), ldq, &root_scan));
    CHECK(tile_squares(pk, v.data(), m, m, sq_known.data(), ldq, &root_known, dac));
    CHECK(tile_variance_read(pk, 0, 0, 0, 128, sq_known.data(), ldq, m, out_known.data(), ldo));
    CHECK(std::isnan(out_known[3]) && !std::isnan(out_known[4]));
  }
  // Declined: a voltage far below the largest (its square near bfloat16's flushed range), and
  // non-finite voltages.
  std::vector<float> Vm(64, 1e-9f), v(32 * 20, 0.1f);
  const TileVariancePack pk = pack_tile_variance(Vm.data(), 32, 1, 2, 2);
  std::vector<uint32_t> sq(static_cast<size_t>(16 * 32));
  float root = 0.0f;
  CHECK(tile_squares(pk, v.data(), 20, 20, sq.data(), 32, &root));
  v[45] = std::ldexp(0.1f, -40);
  CHECK(!tile_squares(pk, v.data(), 20, 20, sq.data(), 32, &root));
  v[45] = NAN;
  CHECK(!tile_squares(pk, v.data(), 20, 20, sq.data(), 32, &root));
}

TEST(variance_packs_start_on_cache_lines) {
  // The tile unit reads the packs in 64-byte rows: from storage 16 bytes off a line (where
  // std::vector's large blocks start) the variance reads ran 2.5x slower in a micro benchmark.
  for (const int64_t C : {8, 64, 128}) {  // packs of 9, 74 and 295 KiB
    const int64_t K = 9 * C;
    const std::vector<float> V(static_cast<size_t>(K * C), 1e-9f);
    const TileVariancePack tiles = pack_tile_variance(V.data(), K, 1, C, C);
    const VarianceConvPack conv = pack_variance_conv(V.data(), K, C, 1, C);
    if (tiles.empty() || conv.empty()) return;  // no AMX-BF16 here
    CHECK_EQ(reinterpret_cast<uintptr_t>(tiles.tiles.data()) % 64, uintptr_t{0});
    CHECK_EQ(reinterpret_cast<uintptr_t>(conv.tiles.data()) % 64, uintptr_t{0});
  }
}
