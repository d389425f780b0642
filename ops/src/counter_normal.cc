#include "counter_normal.h"

#include <algorithm>
#include <cstring>

#include "float_bits.h"
#include "philox.h"
#include "simd_dispatch.h"

namespace memcc {
namespace {

constexpr double kLn2 = 0.69314718055994530942;
constexpr double kTwoPi = 6.283185307179586476925286766559;
constexpr double kSqrt2 = 1.41421356237309504880;


// uint32 -> double without an unsigned conversion instruction (AVX2 has only the signed one).
inline double u32_to_double(uint32_t x) {
  return static_cast<double>(static_cast<int32_t>(x ^ 0x80000000u)) + 2147483648.0;
}

// ln(y) for y >= 0.5 normal: y = 2^e m, m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s),
// s = (m - 1) / (m + 1), |s| <= 0.172, series to s^11: relative error of ln m < 1e-10 (the
// series' relative truncation error, so also near y = 1), far below the float32 results.
inline double ln_positive(double y) {
  const uint64_t b = bits_of(y);
  // The exponent as a double without an int64 -> double conversion: 2^52 + E, minus 2^52.
  const double biased = double_of(0x4330000000000000ull | (b >> 52)) - 4503599627370496.0;
  double m = double_of((b & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);
  double e = biased - 1023.0;
  const bool big = m > kSqrt2;
  m = big ? 0.5 * m : m;
  e = big ? e + 1.0 : e;
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  const double series = 1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 / 11))));
  return e * kLn2 + 2.0 * s * series;
}

// cos(2 pi u) for u in (0, 1): with w = |u - 1/2| <= 1/2, cos(2 pi u) = -cos(2 pi w), and
// cos(2 pi w) = -cos(2 pi (1/2 - w)) folds w into [0, 1/4]; Taylor in x = 2 pi t to x^14
// (|x| <= pi/2: error < (pi/2)^16 / 16! < 1e-9).
inline double cos_two_pi(double u) {
  const double w = u - 0.5 < 0.0 ? 0.5 - u : u - 0.5;
  const bool fold = w > 0.25;
  const double t = fold ? 0.5 - w : w;
  const double x = kTwoPi * t;
  const double x2 = x * x;
  double p = -1.0 / 87178291200.0;              // -1/14!
  p = 1.0 / 479001600.0 + x2 * p;               // 1/12!
  p = -1.0 / 3628800.0 + x2 * p;                // -1/10!
  p = 1.0 / 40320.0 + x2 * p;                   // 1/8!
  p = -1.0 / 720.0 + x2 * p;                    // -1/6!
  p = 1.0 / 24.0 + x2 * p;                      // 1/4!
  p = -0.5 + x2 * p;
  const double c = 1.0 + x2 * p;  // cos(2 pi t)
  return fold ? c : -c;
}

// sin(2 pi u) = cos(2 pi (u - 1/4)), the argument wrapped back into (0, 1) (exact: u has at most
// 33 significant bits).
inline double sin_two_pi(double u) {
  const double v = u - 0.25;
  return cos_two_pi(v <= 0.0 ? v + 1.0 : v);
}

}  // namespace

// Philox of a block of counters (c0, c1, c2, g0 + i), as separate word arrays so that the
// rounds run as plain vector integer code (16 lanes with AVX-512, 8 with AVX2, picked at load).
// Each counter yields four normals, so a block covers 4 * kBlock values of the last counter word.
constexpr int kBlock = 64;

MEMCC_SIMD_CLONES_WIDE
static void philox_block(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t g0, int n,
                         uint32_t* out0, uint32_t* out1, uint32_t* out2, uint32_t* out3) {
  uint32_t rk0[10], rk1[10];
  for (int round = 0; round < 10; ++round) {
    rk0[round] = k0;
    rk1[round] = k1;
    k0 += philox::kWeyl0;
    k1 += philox::kWeyl1;
  }
  // Lanes outer, rounds inner: every lane's four words stay in registers for all ten rounds,
  // and the lane loop is the one the compiler vectorises.
  for (int i = 0; i < n; ++i) {
    uint32_t w0 = c0, w1 = c1, w2 = c2;
    // The group index is floor(c3 / 4) of a 32-bit c3: it wraps at 2^30.
    uint32_t w3 = (g0 + static_cast<uint32_t>(i)) & 0x3FFFFFFFu;
#pragma GCC unroll 10
    for (int round = 0; round < 10; ++round) {
      const uint64_t p0 = static_cast<uint64_t>(philox::kMul0) * w0;
      const uint64_t p1 = static_cast<uint64_t>(philox::kMul1) * w2;
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ w1 ^ rk0[round];
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ w3 ^ rk1[round];
      w1 = static_cast<uint32_t>(p1);
      w3 = static_cast<uint32_t>(p0);
      w0 = n0;
      w2 = n2;
    }
    out0[i] = w0;
    out1[i] = w1;
    out2[i] = w2;
    out3[i] = w3;
  }
}

// sqrt(-2 ln u), u = (x + 1/2) / 2^32: ln u = ln(x + 1/2) - 32 ln 2, exact in its inputs.
inline double radius(uint32_t x) {
  const double r2 = -2.0 * (ln_positive(u32_to_double(x) + 0.5) - 32.0 * kLn2);
  return __builtin_sqrt(r2 > 0.0 ? r2 : 0.0);
}

// The four normals of each counter, in the spec's order: rho1 cos, rho1 sin, rho2 cos, rho2 sin.
MEMCC_SIMD_CLONES_WIDE
static void box_muller_block(const uint32_t* x0, const uint32_t* x1, const uint32_t* x2, const uint32_t* x3,
                             int n, float* c1, float* s1, float* c2, float* s2) {
  for (int i = 0; i < n; ++i) {
    const double r1 = radius(x0[i]), r2 = radius(x2[i]);
    const double a = (u32_to_double(x1[i]) + 0.5) * 0x1p-32;
    const double b = (u32_to_double(x3[i]) + 0.5) * 0x1p-32;
    c1[i] = static_cast<float>(r1 * cos_two_pi(a));
    s1[i] = static_cast<float>(r1 * sin_two_pi(a));
    c2[i] = static_cast<float>(r2 * cos_two_pi(b));
    s2[i] = static_cast<float>(r2 * sin_two_pi(b));
  }
}

void counter_normals(uint64_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, int64_t count,
                     float* out) {
  if (count <= 0) return;
  const uint32_t k0 = philox::key_lo(key), k1 = philox::key_hi(key);
  uint32_t x0[kBlock], x1[kBlock], x2[kBlock], x3[kBlock];
  float z[4][kBlock];
  // Values c3 + i for i < count: groups floor((c3 + i) / 4), the first one entered at lane c3 mod 4.
  const int lead = static_cast<int>(c3 & 3u);
  const int64_t groups = (lead + count + 3) / 4;
  int64_t done = 0;
  for (int64_t g = 0; g < groups; g += kBlock) {
    const int n = static_cast<int>(std::min<int64_t>(kBlock, groups - g));
    philox_block(k0, k1, c0, c1, c2, (c3 >> 2) + static_cast<uint32_t>(g), n, x0, x1, x2, x3);
    box_muller_block(x0, x1, x2, x3, n, z[0], z[1], z[2], z[3]);
    for (int i = 0; i < n; ++i) {
      for (int l = (g == 0 && i == 0) ? lead : 0; l < 4 && done < count; ++l) out[done++] = z[l][i];
    }
  }
}

}  // namespace memcc
