#include "runtime_effects.h"

#include <limits>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "counter_normal.h"
#include "float_bits.h"
#include "iv_fast.h"
#include "normals_avx512.h"
#include "philox.h"
#include "errors.h"
#include "simd_dispatch.h"

namespace memcc {
namespace {


// exp(x) for x in [-700, 700], branch-free so loops over it vectorise: x = k ln2 + r with
// |r| <= ln2 / 2, Taylor of exp(r) to r^13 (error < 1e-16), 2^k assembled in the exponent field.
inline double exp_bounded(double x) {
  constexpr double kInvLn2 = 1.4426950408889634074;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kShift = 6755399441055744.0;  // 1.5 * 2^52: k lands in the low mantissa bits
  x = x < -700.0 ? -700.0 : (x > 700.0 ? 700.0 : x);
  const double kd = x * kInvLn2 + kShift;
  const double k = kd - kShift;
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = 1.0 / 479001600.0 + r * p;
  p = 1.0 / 39916800.0 + r * p;
  p = 1.0 / 3628800.0 + r * p;
  p = 1.0 / 362880.0 + r * p;
  p = 1.0 / 40320.0 + r * p;
  p = 1.0 / 5040.0 + r * p;
  p = 1.0 / 720.0 + r * p;
  p = 1.0 / 120.0 + r * p;
  p = 1.0 / 24.0 + r * p;
  p = 1.0 / 6.0 + r * p;
  p = 0.5 + r * p;
  p = 1.0 + r * p;
  p = 1.0 + r * p;
  const double scale = double_of((bits_of(kd) + 1023u) << 52);
  return p * scale;
}

// sinh in double: Taylor to x^15 for |x| < 1 (no cancellation), (e^|x| - e^-|x|) / 2 beyond.
inline double sinh_vec(double x) {
  const double ax = x < 0.0 ? -x : x;
  const double x2 = x * x;
  double p = 1.0 / 1307674368000.0;  // 1/15!
  p = 1.0 / 6227020800.0 + x2 * p;
  p = 1.0 / 39916800.0 + x2 * p;
  p = 1.0 / 362880.0 + x2 * p;
  p = 1.0 / 5040.0 + x2 * p;
  p = 1.0 / 120.0 + x2 * p;
  p = 1.0 / 6.0 + x2 * p;
  const double small = x + x * x2 * p;
  const double e = exp_bounded(ax);
  const double big = 0.5 * (e - 1.0 / e);
  return ax < 1.0 ? small : (x < 0.0 ? -big : big);
}

}  // namespace

// The float64 forms, for CPUs without the float32 kernels of iv_fast.cc.
MEMCC_SIMD_CLONES_WIDE
static void iv_apply_double(float* x, int64_t n, float a, float b, float pre, float post) {
  const double bp = static_cast<double>(b) * pre, ap = static_cast<double>(a) * post;
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(ap * sinh_vec(bp * x[i]));
}

MEMCC_SIMD_CLONES_WIDE
static void iv_apply_each_double(float* x, int64_t n, float a, float b, const float* pre, const float* post) {
  for (int64_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(static_cast<double>(a) * post[i] * sinh_vec(static_cast<double>(b) * pre[i] * x[i]));
  }
}

void iv_apply(float* x, int64_t n, float a, float b, float pre, float post) {
#ifdef MEMCC_IV_AVX512
  if (iv_fast_available()) return iv_apply_fast(x, n, a, b, pre, post);
#endif
  iv_apply_double(x, n, a, b, pre, post);
}

void iv_apply_each(float* x, int64_t n, float a, float b, const float* pre, const float* post) {
#ifdef MEMCC_IV_AVX512
  if (iv_fast_available()) return iv_apply_each_fast(x, n, a, b, pre, post);
#endif
  iv_apply_each_double(x, n, a, b, pre, post);
}

bool drift_enabled(const OpAttributes& a) { return a.drift_nu > 0.0f || a.drift_nu_std > 0.0f; }

double drift_time(const OpAttributes& a, const float* t_value) {
  if (!t_value) return a.drift_t0;
  const float t = *t_value;
  if (!std::isfinite(t) || t < 0.0f) {
    throw OpError("input 'T' (time since programming, s) must be finite and >= 0, got " + std::to_string(t));
  }
  return t;
}

MEMCC_SIMD_CLONES_WIDE
static void scale_by_exp(const float* g, const float* z, int64_t n, double nu, double nu_std, double log_tau,
                         float* out) {
  for (int64_t i = 0; i < n; ++i) {
    double v = nu + nu_std * z[i];
    v = v > 0.0 ? v : 0.0;
    out[i] = static_cast<float>(g[i] * exp_bounded(-v * log_tau));
  }
}

void drift_conductances(const OpAttributes& a, const float* G, int64_t S, int64_t K, int64_t N, double t,
                        float* out) {
  const double t0 = a.drift_t0;
  const double log_tau = std::log((t > t0 ? t : t0) / t0);
  const int64_t n = S * K * N;
  if (!drift_enabled(a) || log_tau == 0.0) {
    if (out != G) std::memcpy(out, G, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  if (a.drift_nu_std == 0.0f) {
    const double f = std::exp(-static_cast<double>(a.drift_nu) * log_tau);
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(G[i] * f);
    return;
  }
  std::vector<float> z(static_cast<size_t>(N));
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t k = 0; k < K; ++k) {
      const int64_t row = (s * K + k) * N;
      // nu[s, k, n] = max(0, nu + nu_std * normal(drift_seed; 0, s, k, n)).
      counter_normals(static_cast<uint64_t>(a.drift_seed), 0u, static_cast<uint32_t>(s), static_cast<uint32_t>(k),
                      0u, N, z.data());
      scale_by_exp(G + row, z.data(), N, a.drift_nu, a.drift_nu_std, log_tau, out + row);
    }
  }
}

void noise_variance(const float* G, int64_t S, int64_t K, int64_t N, float sigma, float* out) {
  const int64_t n = K * N;
  const float s2 = sigma * sigma;
  for (int64_t i = 0; i < n; ++i) {
    float sum = G[i] * G[i];
    if (S == 2) sum += G[n + i] * G[n + i];
    out[i] = s2 * sum;
  }
}

MEMCC_SIMD_CLONES_WIDE
static void add_scaled_noise(float* currents, const float* variance, float factor, const float* z, int64_t nc) {
  for (int64_t j = 0; j < nc; ++j) {
    const float v = variance[j] * factor > 0.0f ? variance[j] * factor : 0.0f;
    currents[j] += std::sqrt(v) * z[j];
  }
}

void add_read_noise(float* currents, int64_t ldc, const float* variance, int64_t m, int64_t nc, uint64_t key,
                    uint64_t execution, int64_t q0, int64_t r, int64_t j0, float* z) {
  add_read_noise_strided(currents, ldc, variance, nc, m, nc, key, execution, q0, r, j0, z);
}

void add_read_noise_strided(float* currents, int64_t ldc, const float* variance, int64_t ldv, int64_t m, int64_t nc,
                            uint64_t key, uint64_t execution, int64_t q0, int64_t r, int64_t j0, float* z,
                            const float* row_factor, float* row_max) {
#ifdef MEMCC_NORMALS_AVX512
  if (normals_avx512_available()) {
    // The normals go from registers into the terms, all m reads in one call.
    const uint32_t j = static_cast<uint32_t>(j0);
    add_normal_terms_avx512(philox::key_lo(key), philox::key_hi(key), static_cast<uint32_t>(execution),
                            static_cast<uint32_t>(q0), static_cast<uint32_t>(r), j >> 2, j & 3u, nc, m, variance, ldv,
                            row_factor, currents, ldc, row_max);
    return;
  }
#endif
  if (row_max) std::fill(row_max, row_max + m, std::numeric_limits<float>::quiet_NaN());
  for (int64_t i = 0; i < m; ++i) {
    counter_normals(key, static_cast<uint32_t>(execution), static_cast<uint32_t>(q0 + i), static_cast<uint32_t>(r),
                    static_cast<uint32_t>(j0), nc, z);
    add_scaled_noise(currents + i * ldc, variance + i * ldv, row_factor ? row_factor[i] : 1.0f, z, nc);
  }
}

}  // namespace memcc
