// The run-time non-idealities: Philox known answers, the batched normal stream, the I-V
// transform, the drift law, read-noise statistics (Monte Carlo over executions vs. the variance
// formula), and whole layers with every effect against the naive transcription of the spec.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "conv_tiles.h"
#include "counter_normal.h"
#include "small_gemm.h"
#include "crossbar_mac.h"
#include "errors.h"
#include "layer_compute.h"
#include "layer_plan.h"
#include "map_attributes.h"
#include "noise_bound.h"
#include "naive_spec.h"
#include "philox.h"
#include "runtime_effects.h"
#include "test_harness.h"
#include "variance_conv.h"
#include "variance_gemm.h"

using namespace memcc;
using V = std::vector<int64_t>;

namespace {

std::mt19937 rng(77);
int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

void check_words(philox::Words ctr, uint32_t k0, uint32_t k1, std::vector<uint32_t> want) {
  const philox::Words got = philox::philox4x32_10(ctr, k0, k1);
  for (int i = 0; i < 4; ++i) CHECK_EQ(got.w[i], want[i]);
}

// The kernel's packing: drift, then D (scaled as the path reads it), then the noise variances.
struct Packed {
  std::vector<float> matrix, variance;
};
Packed pack(const OpAttributes& a, const LayerPlan& p, const std::vector<float>& G, double t) {
  Packed out;
  std::vector<float> drifted(G.size());
  drift_conductances(a, G.data(), p.S, p.K, p.N, t, drifted.data());
  out.matrix.resize(static_cast<size_t>(p.K * p.N));
  effective_matrix(drifted.data(), p.S, p.K, p.N, a.g_ref, matrix_scale(a), out.matrix.data());
  if (a.read_noise()) {
    out.variance.resize(out.matrix.size());
    noise_variance(drifted.data(), p.S, p.K, p.N, variance_sigma(a), out.variance.data());
  }
  return out;
}

std::vector<float> run(const OpAttributes& a, const LayerPlan& p, const Packed& packed, const std::vector<float>& X,
                       const float* bias, uint64_t execution, int threads = 1,
                       const VariancePack* variance_packed = nullptr) {
  int64_t total = 1;
  for (int64_t d : p.y_shape) total *= d;
  std::vector<float> y(static_cast<size_t>(total), NAN);
  ReadNoise noise;
  noise.variance = packed.variance.empty() ? nullptr : packed.variance.data();
  noise.packed = variance_packed;
  noise.key = static_cast<uint64_t>(a.noise_seed);
  noise.execution = execution;
  run_layer(a, p, packed.matrix.data(), X.data(), bias, y.data(), SerialRunner(threads), &noise);
  return y;
}

}  // namespace

TEST(effects_philox_known_answers) {
  // Random123's kat_vectors for philox4x32_10.
  check_words({{0, 0, 0, 0}}, 0, 0, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  check_words({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu,
              {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  check_words({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u,
              {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
  CHECK_EQ(philox::key_lo(0x123456789abcdef0ull), 0x9abcdef0u);
  CHECK_EQ(philox::key_hi(0x123456789abcdef0ull), 0x12345678u);
}

TEST(effects_counter_normals_match_scalar) {
  // Several keys (one above 2^32) and a last counter word that wraps around 2^32.
  for (uint64_t key : {uint64_t{0}, uint64_t{7}, uint64_t{0x1234567890ull}}) {
    // Starts at every lane of a Philox group, counts that end mid-group.
    for (uint32_t start : {0u, 1u, 2u, 3u, 0xfffffff0u, 0xfffffff3u}) {
      const int64_t n = 5001;
      std::vector<float> z(n);
      counter_normals(key, 3u, 11u, 2u, start, n, z.data());
      for (int64_t i = 0; i < n; ++i) {
        const double want = philox::normal(key, 3u, 11u, 2u, start + static_cast<uint32_t>(i));
        CHECK_NEAR(z[i], want, 2e-6 * std::max(1.0, std::fabs(want)));
      }
    }
  }
}

TEST(effects_normal_groups_of_four) {
  // One Philox call per four consecutive last-counter values: cos and sin of two Box-Muller pairs.
  const philox::Words x = philox::philox4x32_10(philox::Words{{1u, 2u, 3u, 10u}}, 9u, 0u);
  const double two_pi = 6.283185307179586476925286766559;
  auto u = [](uint32_t w) { return (static_cast<double>(w) + 0.5) * 0x1p-32; };
  const double r1 = std::sqrt(-2.0 * std::log(u(x.w[0]))), r2 = std::sqrt(-2.0 * std::log(u(x.w[2])));
  const double want[4] = {r1 * std::cos(two_pi * u(x.w[1])), r1 * std::sin(two_pi * u(x.w[1])),
                          r2 * std::cos(two_pi * u(x.w[3])), r2 * std::sin(two_pi * u(x.w[3]))};
  for (uint32_t l = 0; l < 4; ++l) CHECK_NEAR(philox::normal(9u, 1u, 2u, 3u, 40u + l), want[l], 1e-12);
}

TEST(effects_normal_moments) {
  const int64_t n = 1 << 20;
  std::vector<float> z(n);
  counter_normals(99, 0, 0, 0, 0, n, z.data());
  double s1 = 0, s2 = 0, s4 = 0;
  for (float v : z) {
    s1 += v;
    s2 += double(v) * v;
    s4 += double(v) * v * v * v;
  }
  CHECK_NEAR(s1 / n, 0.0, 5.0 / std::sqrt(double(n)));
  CHECK_NEAR(s2 / n, 1.0, 5.0 * std::sqrt(2.0 / n));
  CHECK_NEAR(s4 / n, 3.0, 0.05);  // Gaussian kurtosis
}

TEST(effects_iv_transform) {
  std::vector<float> x, want;
  for (int i = -400; i <= 400; ++i) x.push_back(i * 0.01f);  // |b x| up to 8: both branches
  const float a = 0.32f, b = 2.7f;
  for (float v : x) want.push_back(static_cast<float>(a * std::sinh(double(b) * v)));
  std::vector<float> y = x;
  iv_apply(y.data(), int64_t(y.size()), a, b, 1.0f, 1.0f);
  for (size_t i = 0; i < y.size(); ++i) CHECK_NEAR(y[i], want[i], 2e-6 * std::max(1e-3, double(std::fabs(want[i]))));
  // pre/post factors: post * f(pre * x).
  std::vector<float> pre(x.size(), 0.5f), post(x.size(), 3.0f);
  y = x;
  iv_apply_each(y.data(), int64_t(y.size()), a, b, pre.data(), post.data());
  for (size_t i = 0; i < y.size(); ++i) {
    const double w = 3.0 * a * std::sinh(double(b) * 0.5 * x[i]);
    CHECK_NEAR(y[i], w, 2e-6 * std::max(1e-3, std::fabs(w)));
  }
}

TEST(effects_drift_law) {
  memcc_test::MapAttributes m;
  m.set("weight_scale", 1.0f).set("drift_nu", 0.05f).set("drift_t0", 2.0f);
  OpAttributes a = parse_attributes(m);
  const int64_t S = 2, K = 30, N = 40;
  std::vector<float> G(S * K * N), out(G.size());
  std::uniform_real_distribution<float> cond(1e-6f, 1e-4f);
  for (auto& g : G) g = cond(rng);
  // Uniform exponent: G' = G (t / t0)^-nu; before t0 nothing changes.
  for (double t : {0.0, 1.0, 2.0, 200.0, 2e6}) {
    drift_conductances(a, G.data(), S, K, N, t, out.data());
    const double f = std::pow(std::max(t, 2.0) / 2.0, -0.05);
    for (size_t i = 0; i < G.size(); ++i) CHECK_NEAR(out[i], G[i] * f, 1e-6 * G[i]);
  }
  // Per-device exponents: ln(G / G') / ln tau = max(0, nu + nu_std z), z from the drift stream.
  m.set("drift_nu_std", 0.04f).set("drift_seed", int64_t{12345});
  a = parse_attributes(m);
  const double t = 2e4, log_tau = std::log(t / 2.0);
  drift_conductances(a, G.data(), S, K, N, t, out.data());
  double mean = 0;
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t n = 0; n < N; ++n) {
        const size_t i = static_cast<size_t>((s * K + k) * N + n);
        const double nu = std::log(double(G[i]) / out[i]) / log_tau;
        const double want = std::max(0.0, 0.05 + 0.04 * philox::normal(12345, 0, uint32_t(s), uint32_t(k), uint32_t(n)));
        CHECK_NEAR(nu, want, 1e-5);
        mean += nu;
      }
    }
  }
  mean /= double(G.size());
  CHECK_NEAR(mean, 0.05, 0.006);  // E max(0, nu + sigma z) = 0.0513 for these values
  CHECK_EQ(drift_time(a, nullptr), 2.0);
  const float bad[] = {-1.0f, NAN, INFINITY};
  for (float b : bad) CHECK_THROWS(drift_time(a, &b), "input 'T'");
}

TEST(effects_noise_variance_monte_carlo) {
  // Read noise without an ADC: over many executions each output is Gaussian around the
  // noiseless value with variance (ws s / V)^2 sum_r sum_{k in r} f(v_k)^2 sigma^2 sum_s G^2.
  memcc_test::MapAttributes m;
  const float ws = 4e3f, vmax = 0.25f, sigma = 0.1f;
  m.set("weight_scale", ws).set("max_input_voltage", vmax).set("read_noise_std", sigma)
      .set("noise_seed", int64_t{5}).set("tile_shape", V{16, 0}).set("iv_a", 0.5f).set("iv_b", 3.0f);
  const OpAttributes a = parse_attributes(m);
  const int64_t K = 48, N = 6, R = 3;
  const LayerPlan p = plan_layer(a, {R, K}, {2, K, N}, nullptr);
  std::vector<float> X(R * K), G(2 * K * N);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> cond(1e-6f, 1e-4f);
  for (auto& v : X) v = nd(rng);
  for (auto& g : G) g = cond(rng);
  const Packed packed = pack(a, p, G, 1.0);
  OpAttributes quiet = a;
  quiet.read_noise_std = 0.0f;
  const Packed packed_quiet = pack(quiet, p, G, 1.0);
  const auto y0 = run(quiet, p, packed_quiet, X, nullptr, 0);
  const int runs = 4000;
  std::vector<double> s1(R * N, 0.0), s2(R * N, 0.0);
  for (int c = 0; c < runs; ++c) {
    const auto y = run(a, p, packed, X, nullptr, static_cast<uint64_t>(c));
    for (int64_t i = 0; i < R * N; ++i) {
      const double d = double(y[i]) - y0[i];
      s1[i] += d;
      s2[i] += d * d;
    }
  }
  for (int64_t r = 0; r < R; ++r) {
    double s = 0;
    for (int64_t k = 0; k < K; ++k) s = std::max(s, double(std::fabs(X[r * K + k])));
    for (int64_t j = 0; j < N; ++j) {
      double var = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double f = 0.5 * std::sinh(3.0 * X[r * K + k] / s * vmax);
        const double g0 = G[k * N + j], g1 = G[K * N + k * N + j];
        var += f * f * sigma * sigma * (g0 * g0 + g1 * g1);
      }
      var *= std::pow(ws * s / vmax, 2);
      const int64_t i = r * N + j;
      const double mean = s1[i] / runs, sample_var = s2[i] / runs - mean * mean;
      CHECK_NEAR(mean, 0.0, 5.0 * std::sqrt(var / runs));
      CHECK_NEAR(sample_var / var, 1.0, 5.0 * std::sqrt(2.0 / runs));
    }
  }
  // Same execution, same noise; the next execution, different noise.
  CHECK(run(a, p, packed, X, nullptr, 9) == run(a, p, packed, X, nullptr, 9));
  CHECK(run(a, p, packed, X, nullptr, 9) != run(a, p, packed, X, nullptr, 10));
}

TEST(effects_layers_match_naive) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> cond(1e-6f, 1e-4f);
  for (int trial = 0; trial < 120; ++trial) {
    const bool conv = trial % 2 == 1;
    memcc_test::MapAttributes m;
    m.set("weight_scale", 5e3f).set("max_input_voltage", 0.3f);
    const int effects = pick(1, 7);  // bit 0: noise, bit 1: nonlinearity, bit 2: drift
    if (effects & 1) m.set("read_noise_std", 0.05f).set("noise_seed", int64_t{pick(0, 1000)});
    if (effects & 2) m.set("iv_a", 0.32f).set("iv_b", 2.7f);
    if (effects & 4) m.set("drift_nu", 0.06f).set("drift_nu_std", pick(0, 1) ? 0.02f : 0.0f).set("drift_seed", int64_t{3});
    if (pick(0, 2) == 0) m.set("dac_bits", int64_t{pick(4, 10)});
    if (pick(0, 2) == 0) m.set("adc_bits", int64_t{pick(6, 12)});
    if (pick(0, 1)) m.set("tile_shape", V{pick(0, 9), pick(0, 7)});
    if (pick(0, 3) == 0) m.set("input_range", 1.5f);
    const int64_t S = pick(1, 2);
    if (S == 1) m.set("g_ref", 3e-5f);
    V x_shape, g_shape;
    if (!conv) {
      const int64_t K = pick(1, 40), N = pick(1, 30);
      x_shape = {pick(1, 3), pick(1, 20), K};
      g_shape = {S, K, N};
    } else {
      const int64_t group = pick(1, 2), cg = pick(1, 3), ng = pick(1, 5);
      m.set("kernel_shape", V{3, 2}).set("pads", V{1, 0, 1, 1}).set("group", group);
      x_shape = {pick(1, 2), group * cg, pick(3, 7), pick(2, 6)};
      g_shape = {S, cg * 6, group * ng};
    }
    const OpAttributes a = parse_attributes(m);
    const V bias_shape{g_shape[2]};
    const LayerPlan p = plan_layer(a, x_shape, g_shape, pick(0, 1) ? &bias_shape : nullptr);
    int64_t xs = 1;
    for (auto d : x_shape) xs *= d;
    std::vector<float> X(xs), G(g_shape[0] * g_shape[1] * g_shape[2]), bias(g_shape[2]);
    for (auto& v : X) v = nd(rng);
    for (auto& g : G) g = cond(rng);
    for (auto& b : bias) b = nd(rng);
    const double t = pick(0, 1) ? 3600.0 : -1.0;
    const uint64_t c = static_cast<uint64_t>(pick(0, 5));
    const Packed packed = pack(a, p, G, t < 0 ? a.drift_t0 : t);
    const float* b = p.has_bias ? bias.data() : nullptr;
    const auto y = run(a, p, packed, X, b, c, pick(1, 3));
    const auto want = memcc_test::naive_layer(a, p, X, G, b, c, t);
    double scale = 1e-30;
    for (float v : want) scale = std::max(scale, double(std::fabs(v)));
    int64_t off = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      if (!(std::fabs(double(y[i]) - want[i]) <= 2e-5 * scale)) ++off;
    }
    const bool quantized = a.dac_bits > 0 || a.adc_bits > 0;
    const int64_t allowed = quantized ? std::max<int64_t>(1, int64_t(y.size()) / 50) : 0;
    if (off > allowed) {
      memcc_test::fail(__FILE__, __LINE__,
                       "trial " + std::to_string(trial) + " (effects " + std::to_string(effects) + "): " +
                           std::to_string(off) + " of " + std::to_string(y.size()) + " outputs differ");
    }
  }
}

TEST(effects_attributes_checked) {
  auto parse = [](const char* name, memcc_test::AttrValue v) {
    memcc_test::MapAttributes m;
    m.set("weight_scale", 1.0f).set(name, v);
    return parse_attributes(m);
  };
  CHECK_THROWS(parse("iv_b", -1.0f), "'iv_b' must be >= 0");
  CHECK_THROWS(parse("iv_b", 2.0f), "'iv_a' must be > 0 when iv_b > 0");
  CHECK_THROWS(parse("read_noise_std", -0.1f), "'read_noise_std' must be >= 0");
  CHECK_THROWS(parse("read_noise_std", float(NAN)), "'read_noise_std' must be finite");
  CHECK_THROWS(parse("noise_seed", int64_t{-1}), "'noise_seed' must be >= 0");
  CHECK_THROWS(parse("drift_seed", 1.5f), "'drift_seed' must be an int");
  CHECK_THROWS(parse("drift_nu", -0.1f), "'drift_nu' must be >= 0");
  CHECK_THROWS(parse("drift_nu_std", -0.1f), "'drift_nu_std' must be >= 0");
  CHECK_THROWS(parse("drift_t0", 0.0f), "'drift_t0' must be > 0");
  const OpAttributes a = parse("read_noise_std", 0.1f);
  // Without an ADC read noise is one term per vector and column: the one-product path.
  CHECK(a.read_noise() && !a.reads_tiles() && a.encodes_input() && !a.uses_adc());
  const OpAttributes b = parse("drift_nu", 0.1f);
  CHECK(!b.encodes_input() && !b.reads_tiles() && drift_enabled(b));
}

TEST(effects_packed_variance_within_bound) {
  // The read-noise variance on variance_gemm (AMX-BF16) against the float32 one, through the
  // layer paths that use it: each noise term within the spec's bound (2^-8 of the term, half the
  // variance's 2^-7 + 2^-16, plus float32 sums). With the ADC (24 bits: a level more) the reads
  // span all K rows, so that each output has one noise term (with several row tiles the bound
  // holds per tile read, whose terms an output does not show); column tiles at j0 > 0 included.
  if (!variance_amx_available()) {
    std::printf("  (no AMX-BF16 on this CPU: nothing to compare)\n");
    return;
  }
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> cond(1e-6f, 1e-4f);
  struct Case {
    bool conv;
    V tiles;
    int64_t adc_bits;
  };
  // Matmul only: conv layers keep the float32 variance (layer_compute.cc).
  for (const Case& cs : {Case{false, V{0, 0}, 0}, Case{false, V{0, 32}, 24}}) {
    memcc_test::MapAttributes m;
    m.set("weight_scale", 5e3f).set("max_input_voltage", 0.3f).set("read_noise_std", 0.2f)
        .set("noise_seed", int64_t{4}).set("iv_a", 0.32f).set("iv_b", 2.7f).set("tile_shape", cs.tiles);
    if (cs.adc_bits > 0) m.set("adc_bits", cs.adc_bits).set("dac_bits", int64_t{8});
    V x_shape, g_shape;
    if (cs.conv) {
      m.set("kernel_shape", V{3, 3}).set("pads", V{1, 1, 1, 1});
      x_shape = {2, 16, 7, 6};
      g_shape = {2, 16 * 9, 64};
    } else {
      x_shape = {37, 200};
      g_shape = {2, 200, 96};
    }
    const OpAttributes a = parse_attributes(m);
    const LayerPlan p = plan_layer(a, x_shape, g_shape, nullptr);
    std::vector<float> X(static_cast<size_t>(x_shape[0] * x_shape[1] * (cs.conv ? x_shape[2] * x_shape[3] : 1)));
    std::vector<float> G(static_cast<size_t>(g_shape[0] * g_shape[1] * g_shape[2]));
    for (auto& v : X) v = nd(rng);
    for (auto& g : G) g = cond(rng);
    const Packed packed = pack(a, p, G, 1.0);
    const VariancePack vp = pack_variance(packed.variance.data(), p.K, p.N);
    OpAttributes quiet = a;
    quiet.read_noise_std = 0.0f;
    const auto y0 = run(quiet, p, pack(quiet, p, G, 1.0), X, nullptr, 0);
    const auto exact = run(a, p, packed, X, nullptr, 3);
    const auto fast = run(a, p, packed, X, nullptr, 3, 2, &vp);
    memcc_test::check_bf16_noise_terms(y0, exact, fast, cs.adc_bits > 0);
  }
}

TEST(effects_conv_tile_noise_matches_naive) {
  // The conv ADC path with read noise on the packed tile reads (D and the variance matrix packed
  // by pack_conv_tiles, as the kernel does on AVX-512 CPUs; the plain kernel elsewhere): against
  // the naive spec, and against the OpenBLAS path (same normals: only float32 sums and the odd
  // ADC level may differ). Groups, strides, dilations, row tiles that split K unevenly, column
  // tiles that leave a narrow last one, positions off the 16-vector grid and past one sub-block.
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> cond(1e-6f, 1e-4f);
  for (int trial = 0; trial < 40; ++trial) {
    memcc_test::MapAttributes m;
    const int64_t group = pick(1, 3), cg = pick(1, 12), ng = pick(1, 21), k = pick(1, 3), stride = pick(1, 2);
    m.set("weight_scale", 5e3f).set("max_input_voltage", 0.3f).set("read_noise_std", 0.1f)
        .set("noise_seed", int64_t{pick(0, 100)}).set("adc_bits", int64_t{pick(6, 12)})
        .set("dac_bits", int64_t{8}).set("tile_shape", V{pick(0, 2) ? pick(5, 40) : 0, pick(0, 2) ? pick(1, 9) : 0})
        .set("kernel_shape", V{k, k}).set("pads", V{1, 0, 1, 1}).set("group", group)
        .set("strides", V{stride, 1}).set("dilations", V{1, pick(1, 2)});
    if (trial % 3 == 0) m.set("iv_a", 0.32f).set("iv_b", 2.7f);
    const V x_shape = {pick(1, 2), group * cg, pick(k + 1, trial % 5 == 0 ? 40 : 9), pick(2 * k, trial % 5 == 0 ? 30 : 11)};
    const V g_shape = {2, cg * k * k, group * ng};
    const OpAttributes a = parse_attributes(m);
    const LayerPlan p = plan_layer(a, x_shape, g_shape, nullptr);
    std::vector<float> X(static_cast<size_t>(x_shape[0] * x_shape[1] * x_shape[2] * x_shape[3]));
    std::vector<float> G(static_cast<size_t>(g_shape[0] * g_shape[1] * g_shape[2]));
    for (auto& v : X) v = nd(rng);
    for (auto& g : G) g = cond(rng);
    const Packed packed = pack(a, p, G, a.drift_t0);
    const int64_t tc = a.tile_cols > 0 ? std::min(a.tile_cols, p.group_cols) : p.group_cols;
    const ConvTilePack tiles = pack_conv_tiles(packed.matrix.data(), p.K, p.group, p.group_cols, tc);
    const ConvTilePack vtiles = pack_conv_tiles(packed.variance.data(), p.K, p.group, p.group_cols, tc);
    int64_t total = 1;
    for (int64_t d : p.y_shape) total *= d;
    ReadNoise noise;
    noise.variance = packed.variance.data();
    noise.key = static_cast<uint64_t>(a.noise_seed);
    noise.execution = 2;
    std::vector<float> fast(static_cast<size_t>(total), NAN);
    ReadNoise tiled = noise;
    tiled.conv_tiles = &vtiles;
    run_layer(a, p, packed.matrix.data(), X.data(), nullptr, fast.data(), SerialRunner(static_cast<int>(pick(1, 3))),
              &tiled, nullptr, &tiles);
    const auto blas = run(a, p, packed, X, nullptr, 2);
    const auto want = memcc_test::naive_layer(a, p, X, G, nullptr, 2, -1.0);
    double scale = 1e-30;
    for (double v : want) scale = std::max(scale, std::fabs(v));
    int64_t off_naive = 0, off_blas = 0;
    for (size_t i = 0; i < fast.size(); ++i) {
      if (!(std::fabs(double(fast[i]) - want[i]) <= 2e-5 * scale)) ++off_naive;
      if (!(std::fabs(double(fast[i]) - blas[i]) <= 2e-5 * scale)) ++off_blas;
    }
    const int64_t allowed = std::max<int64_t>(1, static_cast<int64_t>(fast.size()) / 50);
    if (off_naive > allowed || off_blas > allowed) {
      memcc_test::fail(__FILE__, __LINE__,
                       "trial " + std::to_string(trial) + ": " + std::to_string(off_naive) + " (naive), " +
                           std::to_string(off_blas) + " (OpenBLAS path) of " + std::to_string(fast.size()) +
                           " outputs differ");
    }
    // The noise is there: without it the outputs move.
    OpAttributes quiet = a;
    quiet.read_noise_std = 0.0f;
    const auto y0 = run(quiet, p, pack(quiet, p, G, a.drift_t0), X, nullptr, 2);
    int64_t moved = 0;
    for (size_t i = 0; i < fast.size(); ++i) moved += fast[i] != y0[i];
    CHECK(moved > 0);
  }
}

TEST(effects_conv_tile_noise_bf16_within_bound) {
  // The same path with the reads' variances on the tile unit (AMX-BF16), against its float32
  // variances: each noise term within docs/op-spec.md's bound for a bfloat16 variance (2^-8 of
  // the term plus float32 sums). A 24-bit ADC (a level more) and one row tile per output (the
  // bound holds per read); several column tiles, groups, a stride.
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> cond(1e-6f, 1e-4f);
  for (const V& tile : {V{0, 16}, V{0, 0}, V{0, 40}}) {
    memcc_test::MapAttributes m;
    m.set("weight_scale", 5e3f).set("max_input_voltage", 0.3f).set("read_noise_std", 0.2f)
        .set("noise_seed", int64_t{4}).set("adc_bits", int64_t{24}).set("dac_bits", int64_t{8})
        .set("tile_shape", tile).set("kernel_shape", V{3, 3}).set("pads", V{1, 1, 1, 1}).set("group", 2)
        .set("strides", V{1, 2}).set("iv_a", 0.32f).set("iv_b", 2.7f);
    const V x_shape = {2, 2 * 11, 9, 21}, g_shape = {2, 11 * 9, 2 * 45};
    const OpAttributes a = parse_attributes(m);
    const LayerPlan p = plan_layer(a, x_shape, g_shape, nullptr);
    std::vector<float> X(static_cast<size_t>(2 * 22 * 9 * 21)), G(static_cast<size_t>(2 * 99 * 90));
    for (auto& v : X) v = nd(rng);
    for (auto& g : G) g = cond(rng);
    const Packed packed = pack(a, p, G, a.drift_t0);
    const int64_t tc = a.tile_cols > 0 ? std::min(a.tile_cols, p.group_cols) : p.group_cols;
    const ConvTilePack tiles = pack_conv_tiles(packed.matrix.data(), p.K, p.group, p.group_cols, tc);
    const ConvTilePack vtiles = pack_conv_tiles(packed.variance.data(), p.K, p.group, p.group_cols, tc);
    const TileVariancePack tv = pack_tile_variance(packed.variance.data(), p.K, p.group, p.group_cols, tc);
    if (tv.empty()) {
      std::printf("  (no AMX-BF16 on this CPU: nothing to compare)\n");
      return;
    }
    int64_t total = 1;
    for (int64_t d : p.y_shape) total *= d;
    auto run_tiles = [&](const OpAttributes& at, const Packed& pk, const TileVariancePack* t) {
      ReadNoise noise;
      noise.variance = pk.variance.empty() ? nullptr : pk.variance.data();
      noise.key = 4;
      noise.execution = 1;
      noise.conv_tiles = &vtiles;
      noise.tile_variance = t;
      std::vector<float> y(static_cast<size_t>(total), NAN);
      run_layer(at, p, pk.matrix.data(), X.data(), nullptr, y.data(), SerialRunner(2), &noise, nullptr, &tiles);
      return y;
    };
    OpAttributes quiet = a;
    quiet.read_noise_std = 0.0f;
    const auto y0 = run_tiles(quiet, pack(quiet, p, G, a.drift_t0), nullptr);
    const auto exact = run_tiles(a, packed, nullptr);
    const auto fast = run_tiles(a, packed, &tv);
    memcc_test::check_bf16_noise_terms(y0, exact, fast, true);
  }
}
