// variance_gemm (AMX-BF16) against the exact double product: the relative error bound that
// docs/op-spec.md states (bfloat16 factors: 2^-7 + 2^-16, plus float32 summation), rows and
// columns layouts, row tiles at k0 > 0, shapes off the tile sizes, values spanning many decades
// (the power-of-two scaling keeps them normal numbers), and the refusal of unaligned bounds.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "test_harness.h"
#include "variance_gemm.h"

using namespace memcc;

namespace {

void check_case(int64_t m, int64_t K, int64_t N, int64_t k0, int64_t kc, int64_t j0, int64_t nc, bool columns,
                float decades, std::mt19937& rng, int64_t pad = 3, bool factors = false) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> V(static_cast<size_t>(K * N)), sq(static_cast<size_t>(m * K));
  // Squares and variances are >= 0; spread them over `decades` powers of ten, scaled far from 1.
  for (auto& v : V) v = 3e-12f * std::pow(10.0f, -decades * u(rng)) * u(rng);
  for (auto& v : sq) v = 7e5f * std::pow(10.0f, -decades * u(rng)) * u(rng);
  const VariancePack pack = pack_variance(V.data(), K, N);
  CHECK(!pack.empty());
  const int64_t ldsq = columns ? m : K;
  const float* base = columns ? sq.data() + k0 * ldsq : sq.data() + k0;
  const float guard = -1.0f;
  // 64-byte aligned, so that a pad making ldo a multiple of 16 takes the direct tile stores.
  const int64_t ldo = nc + pad;
  CacheLineVector<float> out(static_cast<size_t>(m * ldo), guard);
  // With factors: the rows may come back scaled, row_factor undoing it (powers of two).
  std::vector<float> row_factor(static_cast<size_t>(m), -1.0f);
  CHECK(variance_gemm(pack, base, columns, ldsq, m, k0, kc, j0, nc, out.data(), ldo,
                      factors ? row_factor.data() : nullptr));
  // bfloat16 factors: 2^-7 + 2^-16 relative per term; float32 sums: kc * 2^-24 more.
  const double bound = std::ldexp(1.0, -7) + std::ldexp(1.0, -16) + double(kc) * std::ldexp(1.0, -24);
  double worst = 0.0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < nc; ++j) {
      double ref = 0.0;
      for (int64_t k = k0; k < k0 + kc; ++k) {
        const float s = columns ? sq[static_cast<size_t>(k * ldsq + i)] : sq[static_cast<size_t>(i * ldsq + k)];
        ref += double(s) * V[static_cast<size_t>(k * N + j0 + j)];
      }
      const double got = double(out[static_cast<size_t>(i * ldo + j)]) * (factors ? row_factor[static_cast<size_t>(i)] : 1.0);
      CHECK(ref > 0.0);
      worst = std::max(worst, std::fabs(got - ref) / ref);
      CHECK_NEAR(got, ref, bound * ref);
    }
    for (int64_t j = nc; j < ldo; ++j) CHECK_EQ(out[static_cast<size_t>(i * ldo + j)], guard);
    if (factors) {
      const float f = row_factor[static_cast<size_t>(i)];
      int e = 0;
      CHECK(f > 0.0f && std::frexp(f, &e) == 0.5f);  // a power of two: exact unscaling
    }
  }
  // The bound must not be vacuous: bfloat16 rounding is visible.
  CHECK(worst > std::ldexp(1.0, -12));
}

}  // namespace

TEST(variance_gemm_bf16_bound) {
  if (!variance_amx_available()) {
    std::printf("  (no AMX-BF16 on this CPU: variance_gemm unused, nothing to check)\n");
    CHECK(pack_variance(nullptr, 4, 4).empty());
    return;
  }
  std::mt19937 rng(5);
  check_case(64, 512, 512, 0, 512, 0, 512, false, 2.0f, rng);
  check_case(37, 300, 70, 0, 300, 0, 70, false, 6.0f, rng);       // edges: rows, K and N off the tiles
  check_case(20, 384, 256, 128, 128, 128, 100, false, 3.0f, rng);  // a row tile and column tile inside
  check_case(45, 576, 64, 0, 576, 32, 32, true, 4.0f, rng);        // conv: vectors as columns
  check_case(33, 200, 96, 96, 104, 64, 32, true, 1.0f, rng);       // last row tile, partial
  check_case(48, 256, 160, 32, 128, 32, 96, false, 3.0f, rng, 16);  // tiles stored straight into out
  check_case(64, 512, 512, 128, 128, 0, 512, false, 6.0f, rng, 0, true);  // direct, factors left to the caller
  check_case(37, 300, 70, 0, 300, 0, 70, false, 6.0f, rng, 3, true);      // through the buffer: factors 1
}

TEST(variance_gemm_refuses_unaligned) {
  if (!variance_amx_available()) return;
  std::vector<float> V(64 * 64, 1.0f), sq(8 * 64, 1.0f), out(8 * 64, -1.0f);
  const VariancePack pack = pack_variance(V.data(), 64, 64);
  CHECK(!variance_gemm(pack, sq.data(), false, 64, 8, 16, 48, 0, 64, out.data(), 64));  // k0 % 32
  CHECK(!variance_gemm(pack, sq.data(), false, 64, 8, 0, 64, 16, 48, out.data(), 64));  // j0 % 32
  CHECK(!variance_gemm(VariancePack{}, sq.data(), false, 64, 8, 0, 64, 0, 64, out.data(), 64));
  for (float v : out) CHECK_EQ(v, -1.0f);
}

TEST(variance_gemm_squares_its_inputs_as_given_squares) {
  // square_inputs: the values themselves (signed, and a NaN-free spread over decades) give,
  // bit for bit, what their float32 squares give; the columns layout is refused.
  if (!variance_amx_available()) return;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t m : {1, 17, 64}) {
    for (int64_t kc : {32, 100, 128}) {
      const int64_t K = 256, N = 96, k0 = 128, ld = K + 5, ldo = N + 3;
      std::vector<float> V(static_cast<size_t>(K * N)), x(static_cast<size_t>(m * ld)), sq(x.size());
      for (auto& v : V) v = 1e-9f * std::fabs(u(rng));
      for (size_t i = 0; i < x.size(); ++i) {
        x[i] = u(rng) * std::pow(10.0f, 3.0f * u(rng));
        sq[i] = x[i] * x[i];
      }
      x[3] = 0.0f;
      sq[3] = 0.0f;
      const VariancePack pack = pack_variance(V.data(), K, N);
      std::vector<float> a(static_cast<size_t>(m * ldo), -1.0f), b(a.size(), -1.0f), fa(static_cast<size_t>(m)),
          fb(static_cast<size_t>(m));
      CHECK(variance_gemm(pack, sq.data() + k0, false, ld, m, k0, kc, 32, 64, a.data(), ldo, fa.data()));
      CHECK(variance_gemm(pack, x.data() + k0, false, ld, m, k0, kc, 32, 64, b.data(), ldo, fb.data(), true));
      for (size_t i = 0; i < a.size(); ++i) CHECK_EQ(a[i], b[i]);
      for (int64_t i = 0; i < m; ++i) CHECK_EQ(fa[static_cast<size_t>(i)], fb[static_cast<size_t>(i)]);
    }
  }
  std::vector<float> V(64 * 64, 1.0f), x(64 * 8, 1.0f), out(64 * 8, -1.0f);
  const VariancePack pack = pack_variance(V.data(), 64, 64);
  CHECK(!variance_gemm(pack, x.data(), true, 8, 8, 0, 64, 0, 64, out.data(), 64, nullptr, true));
  for (float v : out) CHECK_EQ(v, -1.0f);
}
