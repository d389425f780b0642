#include "counter_normal.h"

#include <algorithm>
#include <cstring>

#include "philox.h"
#include "simd_dispatch.h"

namespace memcc {
namespace {

constexpr double kLn2 = 0.69314718055994530942;
constexpr double kTwoPi = 6.283185307179586476925286766559;
constexpr double kSqrt2 = 1.41421356237309504880;

inline uint64_t bits_of(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}
inline double double_of(uint64_t b) {
  double d;
  std::memcpy(&d, &b, sizeof d);
  return d;
}

// uint32 -> double without an unsigned conversion instruction (AVX2 has only the signed one).
inline double u32_to_double(uint32_t x) {
  return static_cast<double>(static_cast<int32_t>(x ^ 0x80000000u)) + 2147483648.0;
}

// ln(y) for y >= 0.5 normal: y = 2^e m, m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s),
// s = (m - 1) / (m + 1), |s| <= 0.172, series to s^15 (error < 1e-14).
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
  const double series =
      1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (1.0 / 11 + s2 * (1.0 / 13 + s2 / 15))))));
  return e * kLn2 + 2.0 * s * series;
}

// cos(2 pi u) for u in (0, 1): with w = |u - 1/2| <= 1/2, cos(2 pi u) = -cos(2 pi w), and
// cos(2 pi w) = -cos(2 pi (1/2 - w)) folds w into [0, 1/4]; Taylor in x = 2 pi t to x^18.
inline double cos_two_pi(double u) {
  const double w = u - 0.5 < 0.0 ? 0.5 - u : u - 0.5;
  const bool fold = w > 0.25;
  const double t = fold ? 0.5 - w : w;
  const double x = kTwoPi * t;
  const double x2 = x * x;
  double p = -1.0 / 6402373705728000.0;        // -1/18!
  p = 1.0 / 20922789888000.0 + x2 * p;          // 1/16!
  p = -1.0 / 87178291200.0 + x2 * p;            // -1/14!
  p = 1.0 / 479001600.0 + x2 * p;               // 1/12!
  p = -1.0 / 3628800.0 + x2 * p;                // -1/10!
  p = 1.0 / 40320.0 + x2 * p;                   // 1/8!
  p = -1.0 / 720.0 + x2 * p;                    // -1/6!
  p = 1.0 / 24.0 + x2 * p;                      // 1/4!
  p = -0.5 + x2 * p;
  const double c = 1.0 + x2 * p;  // cos(2 pi t)
  return fold ? c : -c;
}

}  // namespace

// Philox of a block of counters (c0, c1, c2, c3 + i), as separate word arrays so that the
// rounds run as plain vector integer code.
constexpr int kBlock = 64;

MEMCC_SIMD_CLONES_WIDE
static void philox_block(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, int n,
                         uint32_t* out0, uint32_t* out1) {
  uint32_t w0[kBlock], w1[kBlock], w2[kBlock], w3[kBlock];
  for (int i = 0; i < n; ++i) {
    w0[i] = c0;
    w1[i] = c1;
    w2[i] = c2;
    w3[i] = c3 + static_cast<uint32_t>(i);
  }
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < n; ++i) {
      const uint64_t p0 = static_cast<uint64_t>(philox::kMul0) * w0[i];
      const uint64_t p1 = static_cast<uint64_t>(philox::kMul1) * w2[i];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ w1[i] ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ w3[i] ^ k1;
      w1[i] = static_cast<uint32_t>(p1);
      w3[i] = static_cast<uint32_t>(p0);
      w0[i] = n0;
      w2[i] = n2;
    }
    k0 += philox::kWeyl0;
    k1 += philox::kWeyl1;
  }
  for (int i = 0; i < n; ++i) {
    out0[i] = w0[i];
    out1[i] = w1[i];
  }
}

MEMCC_SIMD_CLONES_WIDE
static void box_muller_block(const uint32_t* x0, const uint32_t* x1, int n, float* out) {
  for (int i = 0; i < n; ++i) {
    // ln u1 = ln(x0 + 1/2) - 32 ln 2, exact in its inputs (x0 + 1/2 is a double exactly).
    const double ln_u1 = ln_positive(u32_to_double(x0[i]) + 0.5) - 32.0 * kLn2;
    const double r2 = -2.0 * ln_u1;
    const double r = __builtin_sqrt(r2 > 0.0 ? r2 : 0.0);
    const double u2 = (u32_to_double(x1[i]) + 0.5) * 0x1p-32;
    out[i] = static_cast<float>(r * cos_two_pi(u2));
  }
}

void counter_normals(uint64_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, int64_t count,
                     float* out) {
  const uint32_t k0 = philox::key_lo(key), k1 = philox::key_hi(key);
  uint32_t x0[kBlock], x1[kBlock];
  for (int64_t i0 = 0; i0 < count; i0 += kBlock) {
    const int n = static_cast<int>(std::min<int64_t>(kBlock, count - i0));
    philox_block(k0, k1, c0, c1, c2, c3 + static_cast<uint32_t>(i0), n, x0, x1);
    box_muller_block(x0, x1, n, out + i0);
  }
}

}  // namespace memcc
