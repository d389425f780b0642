// conv_tile_read (the conv ADC path's tile reads on D packed by pack_conv_tiles) against a naive
// double-precision product, for every kernel this CPU has: partial 8-column blocks, narrow last
// column tiles, groups, row slices of D, position counts off the 16 / 32 grid, accumulation.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "conv_tiles.h"
#include "test_harness.h"

using namespace memcc;

namespace {

std::vector<GemmIsa> isas() {
  std::vector<GemmIsa> out = {GemmIsa::Generic};
  if (small_gemm_best_isa() == GemmIsa::Avx512) out.push_back(GemmIsa::Avx512);
  return out;
}

}  // namespace

TEST(conv_tiles_read_matches_naive) {
  std::mt19937 rng(5);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (GemmIsa isa : isas()) {
    for (int trial = 0; trial < 120; ++trial) {
      const int64_t K = pick(1, 70), groups = pick(1, 3), Ng = pick(1, 40), tc = pick(1, Ng + 3);
      const int64_t N = groups * Ng, m = pick(1, 75), ldv = m + pick(0, 5);
      std::vector<float> D(static_cast<size_t>(K * N)), v(static_cast<size_t>(K * ldv));
      for (auto& x : D) x = u(rng);
      for (auto& x : v) x = u(rng);
      const ConvTilePack pack = pack_conv_tiles(D.data(), K, groups, Ng, tc);
      const int64_t h = pick(0, groups - 1), tcc = std::min(tc, Ng);
      const int64_t c0 = pick(0, (Ng - 1) / tcc) * tcc, nc = std::min(tcc, Ng - c0);
      const int64_t k0 = pick(0, K - 1), kc = pick(0, K - k0);
      const int64_t ldo = m + pick(0, 3);
      const bool accumulate = trial % 2 == 1;
      const float guard = -777.0f;
      std::vector<float> out(static_cast<size_t>(nc * ldo + 8), guard);
      for (int64_t j = 0; j < nc; ++j) {
        for (int64_t i = 0; i < m; ++i) out[static_cast<size_t>(j * ldo + i)] = accumulate ? u(rng) : guard;
      }
      const std::vector<float> before = out;
      conv_tile_read(pack, h, c0, k0, kc, v.data() + k0 * ldv, ldv, m, out.data(), ldo, accumulate, isa);
      for (int64_t j = 0; j < nc; ++j) {
        for (int64_t i = 0; i < m; ++i) {
          double ref = accumulate ? before[static_cast<size_t>(j * ldo + i)] : 0.0, mag = std::fabs(ref);
          for (int64_t k = k0; k < k0 + kc; ++k) {
            const double p = double(D[static_cast<size_t>(k * N + h * Ng + c0 + j)]) * v[static_cast<size_t>(k * ldv + i)];
            ref += p;
            mag += std::fabs(p);
          }
          CHECK_NEAR(out[static_cast<size_t>(j * ldo + i)], ref, 1e-6 * (mag + 1.0) * 4.0);
        }
        // Nothing written between the rows or past the last one.
        for (int64_t i = m; i < ldo && j + 1 < nc; ++i) CHECK_EQ(out[static_cast<size_t>(j * ldo + i)], before[static_cast<size_t>(j * ldo + i)]);
      }
      for (size_t i = static_cast<size_t>((nc - 1) * ldo + m); i < out.size(); ++i) CHECK_EQ(out[i], before[i]);
    }
  }
}
