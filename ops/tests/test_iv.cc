// The I-V function against exact math: iv_apply / iv_apply_each (the float32 kernels of
// iv_fast.cc where the CPU has AVX-512F) within the bound docs/op-spec.md states.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "iv_fast.h"
#include "runtime_effects.h"
#include "test_harness.h"

using namespace memcc;

namespace {

// docs/op-spec.md, "Numerical agreement": f within this many float32 ulps of the result.
constexpr double kUlpBound = 6.0;

// post * a * sinh(b * pre * x) in long double from the float32 inputs.
long double exact_iv(float x, float a, float b, float pre, float post) {
  return static_cast<long double>(post) * a * std::sinh(static_cast<long double>(b) * pre * x);
}

// |got - want| in units of float32's ulp at want (the ulp of the binade want lies in).
// Beyond float32's range the result must be the infinity of its sign.
double ulps(float got, long double want) {
  if (std::fabs(want) > std::numeric_limits<float>::max()) {
    return std::isinf(got) && (got > 0) == (want > 0) ? 0.0 : std::numeric_limits<double>::infinity();
  }
  if (want == 0.0L) return got == 0.0f ? 0.0 : std::numeric_limits<double>::infinity();
  int e = 0;
  std::frexp(static_cast<double>(want), &e);
  const double ulp = std::ldexp(1.0, std::max(e - 24, -149));
  return static_cast<double>(std::fabs(static_cast<long double>(got) - want)) / ulp;
}

}  // namespace

TEST(iv_float32_within_ulp_bound) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f), log_mag(-12.0f, 4.4f);
  double worst = 0.0;
  // |b pre x| from 2^-12 to e^4.4 * 2 (both branches), b pre and a post ranging over decades.
  for (int trial = 0; trial < 200; ++trial) {
    const float a = std::exp(log_mag(rng)), b = std::exp(0.5f * log_mag(rng));
    const float pre = std::exp(0.3f * log_mag(rng)), post = std::exp(0.3f * log_mag(rng));
    const int64_t n = 1000 + trial % 17;  // tails of every length
    std::vector<float> x(n);
    const float scale = std::exp(log_mag(rng) + 0.5f) / (b * pre);
    for (auto& v : x) v = unit(rng) * scale;
    std::vector<float> y = x;
    iv_apply(y.data(), n, a, b, pre, post);
    std::vector<float> pv(n), qv(n), z = x;
    for (int64_t i = 0; i < n; ++i) {
      pv[i] = pre * std::exp(0.1f * unit(rng));
      qv[i] = post * std::exp(0.1f * unit(rng));
    }
    iv_apply_each(z.data(), n, a, b, pv.data(), qv.data());
    for (int64_t i = 0; i < n; ++i) {
      worst = std::max(worst, ulps(y[i], exact_iv(x[i], a, b, pre, post)));
      worst = std::max(worst, ulps(z[i], exact_iv(x[i], a, b, pv[i], qv[i])));
    }
  }
  // Near the branch point |arg| = 1 and over the whole fast range up to 80.
  std::vector<float> x;
  for (float v = 0.98f; v < 1.02f; v = std::nextafter(v, 2.0f)) x.push_back(v);
  for (int i = 0; i <= 80000; ++i) x.push_back(-80.0f + 0.002f * i);
  std::vector<float> y = x;
  iv_apply(y.data(), int64_t(y.size()), 1.0f, 1.0f, 1.0f, 1.0f);
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, ulps(y[i], exact_iv(x[i], 1.0f, 1.0f, 1.0f, 1.0f)));
  if (!(worst <= kUlpBound)) std::printf("worst %.3f ulps\n", worst);
  CHECK(worst <= kUlpBound);
}

TEST(iv_float32_edges) {
  // Lanes beyond the fast range (float64 there), NaN, zero, and an overflowing sinh.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = {0.0f, -0.0f, 1e-30f, 79.9f, 80.5f, -95.0f, nan, 0.5f, 120.0f, -200.0f, 3.0f};
  std::vector<float> y = x;
  iv_apply(y.data(), int64_t(y.size()), 1e-20f, 1.0f, 1.0f, 1.0f);
  for (size_t i = 0; i < x.size(); ++i) {
    const long double w = exact_iv(x[i], 1e-20f, 1.0f, 1.0f, 1.0f);
    if (std::isnan(x[i])) {
      CHECK(std::isnan(y[i]));
    } else {
      CHECK(ulps(y[i], w) <= kUlpBound);
    }
  }
  CHECK(std::signbit(y[1]));  // sinh(-0) = -0
}

TEST(iv_columns_match_rows) {
#ifdef MEMCC_IV_AVX512
  if (!iv_fast_available()) {
    std::printf("  (no AVX-512F: nothing to compare)\n");
    return;
  }
  // iv_apply_columns_fast (im2col columns, one factor pair per position) against
  // iv_apply_each_fast row by row: bit for bit, signed zeros, NaN, large arguments (float64
  // lanes), overflow and partial vectors included.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::mt19937 gen(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const float edge[] = {0.0f, -0.0f, 1e-30f, -1e-38f, nan, 30.0f, -45.0f, 200.0f, 0.999f, -1.001f};
  for (int64_t count : {1, 15, 16, 17, 40, 64}) {
    const int64_t K = 13, ldc = count + 5;
    std::vector<float> col(static_cast<size_t>(K * ldc)), pre(static_cast<size_t>(count)), post(pre.size());
    for (auto& v : col) v = nd(gen);
    for (int64_t k = 0; k < K; ++k) {
      if (k % 4 == 1) col[static_cast<size_t>(k * ldc + (k * 7) % count)] = edge[k % 10];
    }
    for (int64_t i = 0; i < count; ++i) {
      pre[i] = i % 9 == 0 ? 0.0f : 0.05f + 0.3f * std::fabs(nd(gen));
      post[i] = 0.5f + std::fabs(nd(gen));
    }
    if (count > 16) pre[16] = 30.0f;  // a whole vector of positions beyond |arg| < 1 in some rows
    std::vector<float> want = col, got = col;
    for (int64_t k = 0; k < K; ++k) iv_apply_each_fast(want.data() + k * ldc, count, 0.32f, 2.7f, pre.data(), post.data());
    iv_apply_columns_fast(got.data(), ldc, K, count, 0.32f, 2.7f, pre.data(), post.data());
    for (size_t q = 0; q < got.size(); ++q) {
      uint32_t gb, wb;
      std::memcpy(&gb, &got[q], 4);
      std::memcpy(&wb, &want[q], 4);
      CHECK(gb == wb || (std::isnan(got[q]) && std::isnan(want[q])));
    }
  }
#endif
}
