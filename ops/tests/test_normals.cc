// The counter-based normals against the exact transform (docs/op-spec.md, "The counter-based
// normal": within a few float32 ulps), on both paths: the AVX-512 kernel where the CPU has it and
// the portable loops everywhere, through counter_normals and through the transforms alone on
// words Philox rarely yields (u near 0, 1/2, 3/4 and 1, angles next to every multiple of pi/4).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "counter_normal.h"
#include "normals_avx512.h"
#include "philox.h"
#include "quantize.h"
#include "runtime_effects.h"
#include "test_harness.h"

using namespace memcc;

namespace {

// The C++ runtime's stated bound (docs/op-spec.md).
constexpr double kUlpBound = 5.0;

// Normal `lane` of Philox output x in long double.
long double exact_normal(const uint32_t x[4], int lane) {
  const long double two_pi = 6.283185307179586476925286766559005768L;
  auto u = [](uint32_t w) { return (static_cast<long double>(w) + 0.5L) * 0x1p-32L; };
  const uint32_t rw = lane < 2 ? x[0] : x[2], aw = lane < 2 ? x[1] : x[3];
  const long double rho = std::sqrt(-2.0L * std::log(u(rw)));
  return lane % 2 == 0 ? rho * std::cos(two_pi * u(aw)) : rho * std::sin(two_pi * u(aw));
}

// |got - want| in units of float32's ulp at want (the ulp of the binade want lies in).
double ulps(float got, long double want) {
  int e = 0;
  std::frexp(static_cast<double>(want), &e);
  const double ulp = std::ldexp(1.0, std::max(e - 24, -149));
  return static_cast<double>(std::fabs(static_cast<long double>(got) - want)) / ulp;
}

using Stream = void (*)(uint64_t, uint32_t, uint32_t, uint32_t, uint32_t, int64_t, float*);
using Transform = void (*)(const uint32_t*, int64_t, float*);

struct Path {
  const char* name;
  Stream stream;
  Transform transform;
};

std::vector<Path> paths() {
  std::vector<Path> p = {{"portable", counter_normals_portable, box_muller_portable}};
#ifdef MEMCC_NORMALS_AVX512
  if (normals_avx512_available()) p.push_back({"avx512", counter_normals, box_muller_avx512});
#endif
  return p;
}

// The worst ulps of the transform over the given words (4 per output).
double worst_transform_ulps(Transform t, const std::vector<uint32_t>& words) {
  const int64_t n = static_cast<int64_t>(words.size() / 4);
  std::vector<float> z(words.size());
  t(words.data(), n, z.data());
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    for (int l = 0; l < 4; ++l) worst = std::max(worst, ulps(z[4 * i + l], exact_normal(&words[4 * i], l)));
  }
  return worst;
}

}  // namespace

TEST(effects_normals_within_ulp_bound) {
  bool ok = true;
  for (const Path& path : paths()) {
    double worst = 0.0;
    for (uint64_t key : {uint64_t{1}, uint64_t{0xfedcba9876ull}}) {
      for (uint32_t row = 0; row < 64; ++row) {
        const int64_t n = 4096;
        std::vector<float> z(n);
        path.stream(key, 5u, row, 3u, 0u, n, z.data());
        for (int64_t g = 0; g < n / 4; ++g) {
          const philox::Words w = philox::philox4x32_10(philox::Words{{5u, row, 3u, static_cast<uint32_t>(g)}},
                                                        philox::key_lo(key), philox::key_hi(key));
          for (int l = 0; l < 4; ++l) worst = std::max(worst, ulps(z[4 * g + l], exact_normal(w.w, l)));
        }
      }
    }
    if (!(worst <= kUlpBound)) std::printf("%s: worst %.3f ulps\n", path.name, worst);
    ok = ok && worst <= kUlpBound;
  }
  CHECK(ok);
}

TEST(effects_normals_edge_words) {
  // Radius words: u near 0, 1/2, 3/4 and 1 and across binades; angle words: next to every
  // multiple of pi/4 (quadrant and octant boundaries), and a few arbitrary ones.
  std::vector<uint32_t> radius = {0u, 1u, 2u, 3u, 0x7fffffffu, 0x80000000u, 0x80000001u, 0xbfffffffu, 0xc0000000u,
                                  0xc0000001u, 0xfffffffeu, 0xffffffffu, 0xfffff000u, 0xffffff00u, 0x00ffffffu,
                                  0x01000000u, 0x3fffffffu, 0x40000000u, 0x5a827999u, 0xb504f333u};
  std::vector<uint32_t> angle;
  for (uint32_t k = 0; k < 8; ++k) {
    for (int32_t d : {-2, -1, 0, 1, 2, 1000, -1000}) angle.push_back(k * 0x20000000u + static_cast<uint32_t>(d));
  }
  std::mt19937 rng(3);
  for (int i = 0; i < 40; ++i) {
    radius.push_back(rng());
    angle.push_back(rng());
  }
  std::vector<uint32_t> words;
  for (size_t i = 0; i < radius.size(); ++i) {
    for (size_t j = 0; j < angle.size(); ++j) {
      const uint32_t other = radius[(i + j) % radius.size()];
      words.insert(words.end(), {radius[i], angle[j], other, angle[(j + 7) % angle.size()]});
    }
  }
  bool ok = true;
  for (const Path& path : paths()) {
    const double worst = worst_transform_ulps(path.transform, words);
    if (!(worst <= kUlpBound)) std::printf("%s: worst %.3f ulps\n", path.name, worst);
    ok = ok && worst <= kUlpBound;
  }
  CHECK(ok);
}

TEST(effects_normals_paths_agree_on_ranges) {
  // Every start lane, counts around the kernels' 64-normal steps, and a last counter word that
  // wraps around 2^32 (the group index then wraps at 2^30): both paths give the same values as
  // the scalar definition, element for element.
  for (const Path& path : paths()) {
    for (uint32_t start : {0u, 1u, 2u, 3u, 62u, 63u, 64u, 65u, 0xffffffc1u, 0xfffffffeu}) {
      for (int64_t n : {1, 2, 3, 4, 5, 15, 16, 17, 60, 61, 63, 64, 65, 127, 128, 129, 200}) {
        std::vector<float> z(static_cast<size_t>(n) + 1, 123.0f);
        path.stream(42u, 9u, 8u, 7u, start, n, z.data());
        for (int64_t i = 0; i < n; ++i) {
          const double want = philox::normal(42u, 9u, 8u, 7u, start + static_cast<uint32_t>(i));
          CHECK_NEAR(z[i], want, 2e-6 * std::max(1.0, std::fabs(want)));
        }
        CHECK_EQ(z[n], 123.0f);  // nothing written past the end
      }
    }
  }
}

TEST(effects_read_noise_terms_match_definition) {
  // Several reads at once with strided variances and currents, column starts at every lane of a
  // Philox group, widths around the 64-normal steps; zero, negative and NaN variances add nothing.
  // With row factors (variance_gemm's unscaling folded in) each read's variances scale by its own.
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0.0f, 2.0f);
  const float factors[5] = {0.25f, 2.0f, 1.0f, 0x1p-20f, 0x1p12f};
  for (bool with_factor : {false, true}) {
  for (int64_t j0 : {0, 1, 3, 128, 130}) {
    for (int64_t nc : {1, 5, 63, 64, 100, 128, 129}) {
      const int64_t m = 5, ldc = nc + 7, ldv = nc + 3;
      std::vector<float> cur(static_cast<size_t>(m * ldc)), var(static_cast<size_t>(m * ldv));
      for (auto& c : cur) c = u(rng) - 1.0f;
      for (auto& v : var) v = u(rng);
      var[0] = 0.0f;
      var[static_cast<size_t>(ldv + nc / 2)] = -1.0f;
      var[static_cast<size_t>(2 * ldv + nc - 1)] = NAN;
      const std::vector<float> before = cur;
      std::vector<float> z(static_cast<size_t>(nc));
      add_read_noise_strided(cur.data(), ldc, var.data(), ldv, m, nc, 77u, 4u, 9, 2, j0, z.data(),
                             with_factor ? factors : nullptr);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < ldc; ++j) {
          const size_t at = static_cast<size_t>(i * ldc + j);
          if (j >= nc) {
            CHECK_EQ(cur[at], before[at]);  // nothing past the row's columns
            continue;
          }
          const float v = var[static_cast<size_t>(i * ldv + j)] * (with_factor ? factors[i] : 1.0f);
          const double sd = v > 0.0f ? std::sqrt(double(v)) : 0.0;
          const double want = before[at] + sd * philox::normal(77u, 4u, static_cast<uint32_t>(9 + i), 2u,
                                                               static_cast<uint32_t>(j0 + j));
          CHECK_NEAR(cur[at], want, 4e-6 * std::max(1.0, std::fabs(want)));
        }
      }
    }
  }
  }
}

TEST(effects_read_noise_row_maxima_serve_the_adc) {
  // With row_max, the noise pass hands each read's largest magnitude to the ADC: where it is a
  // number it must be exactly max |current| after the terms (the ADC's full scale), a read holding
  // a NaN must say NaN (the ADC then scans it itself), and the ADC's sums must not change.
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(0.0f, 2.0f);
  for (int64_t j0 : {0, 3, 128}) {
    for (int64_t nc : {1, 5, 64, 100, 129}) {
      const int64_t m = 6, ldc = nc + 4;
      std::vector<float> cur(static_cast<size_t>(m * ldc)), var(static_cast<size_t>(m * nc));
      for (auto& c : cur) c = (u(rng) - 1.0f) * 1e-4f;
      for (auto& v : var) v = u(rng) * 1e-10f;
      var[static_cast<size_t>(nc - 1)] = NAN;                          // a term that adds nothing
      cur[static_cast<size_t>(3 * ldc + nc / 2)] = NAN;                // read 3 holds a NaN
      cur[static_cast<size_t>(4 * ldc + nc - 1)] = 5e-3f;              // read 4's maximum is its last current
      std::vector<float> row_max(static_cast<size_t>(m), -1.0f), z(static_cast<size_t>(nc));
      add_read_noise_strided(cur.data(), ldc, var.data(), nc, m, nc, 5u, 2u, 40, 1, j0, z.data(), nullptr,
                             row_max.data());
      for (int64_t i = 0; i < m; ++i) {
        const float got = row_max[static_cast<size_t>(i)];
        if (i == 3) {
          CHECK(std::isnan(got));
          continue;
        }
        if (std::isnan(got)) continue;  // not found on this path (no AVX-512): allowed
        CHECK_EQ(got, max_abs(cur.data() + i * ldc, nc));
      }
      std::vector<float> with(static_cast<size_t>(m * nc), 0.0f), without(with.size(), 0.0f),
          scratch(static_cast<size_t>(nc));
      adc_accumulate_rows(cur.data(), m, nc, ldc, 6, 0.0, with.data(), nc, scratch.data(), row_max.data());
      adc_accumulate_rows(cur.data(), m, nc, ldc, 6, 0.0, without.data(), nc, scratch.data());
      for (size_t k = 0; k < with.size(); ++k) {
        CHECK((std::isnan(with[k]) && std::isnan(without[k])) || with[k] == without[k]);
      }
    }
  }
}

#ifdef MEMCC_NORMALS_AVX512
TEST(effects_column_terms_exact_per_counter) {
  // add_column_terms_avx512 draws one lane per position: every term must use exactly the normal
  // counter_normals gives for its counter (c, q0 + i, r, j0 + j), bit for bit, with position
  // counts around the 16 lanes, column starts at every lane of a Philox group, a position word
  // that wraps around 2^32, a scale f, and zero, negative and NaN variances adding nothing.
  if (!normals_avx512_available()) return;
  const uint64_t key = 0x123456789abull;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.0f, 2.0f);
  for (uint32_t q0 : {0u, 7u, 0xfffffff9u}) {
    for (int64_t j0 : {0, 1, 2, 3, 128, 131}) {
      for (int64_t nc : {1, 3, 4, 5, 17, 64}) {
        for (int64_t nq : {1, 15, 16, 17, 48}) {
          for (float f : {1.0f, 0.5f}) {
            const int64_t ldv = nq + 2, ldr = nq + 5;
            std::vector<float> var(static_cast<size_t>(nc * ldv)), reads(static_cast<size_t>(nc * ldr));
            for (auto& v : var) v = u(rng);
            for (auto& r : reads) r = u(rng) - 1.0f;
            var[0] = 0.0f;
            var[static_cast<size_t>((nc - 1) * ldv + nq - 1)] = -1.0f;
            var[static_cast<size_t>((nc / 2) * ldv + nq / 2)] = NAN;
            const std::vector<float> before = reads;
            add_column_terms_avx512(philox::key_lo(key), philox::key_hi(key), 6u, q0, 2u, static_cast<uint32_t>(j0), nc,
                                    nq, var.data(), ldv, f, reads.data(), ldr);
            for (int64_t j = 0; j < nc; ++j) {
              for (int64_t i = 0; i < ldr; ++i) {
                const size_t at = static_cast<size_t>(j * ldr + i);
                if (i >= nq) {
                  CHECK_EQ(reads[at], before[at]);  // nothing past the read's positions
                  continue;
                }
                float z = 0.0f;
                counter_normals(key, 6u, q0 + static_cast<uint32_t>(i), 2u, static_cast<uint32_t>(j0 + j), 1, &z);
                const float v = var[static_cast<size_t>(j * ldv + i)];
                float root = std::sqrt(v > 0.0f ? v : 0.0f);
                if (f != 1.0f) root *= f;
                CHECK_EQ(reads[at], std::fma(root, z, before[at]));
              }
            }
          }
        }
      }
    }
  }
}
#endif
