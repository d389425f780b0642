#include "counter_normal.h"

#include <algorithm>
#include <cstring>

#include "float_bits.h"
#include "normals_avx512.h"
#include "philox.h"
#include "simd_dispatch.h"


namespace memcc {
namespace {

constexpr float kLn2 = 0.693147180559945f;
constexpr float kHalfPi = 1.57079632679489662f;

// -ln u for u = (x + 1/2) / 2^32, relative error a few float ulps for every x. With
// s = (1 - y) / (1 + y), -ln y = 2 atanh(s); the series in s^2 to s^12 truncates below 2^-26 for
// |s| <= 1/3. u < 1/2: y = the mantissa m of x + 1/2 folded into [sqrt(1/2), sqrt(2)) (m - 1
// is exact), plus (32 - e) ln 2 (> ln 2, so no cancellation). u >= 1/2: y = u itself, with
// 1 - u = (~x + 1/2) / 2^32 formed from the integer complement, so the small -ln u near u = 1
// keeps its relative accuracy (1 - u rounded from u would not).
inline float neg_ln_unit(uint32_t x) {
  const bool low = x < 0x80000000u;
  const float t = static_cast<float>(static_cast<int32_t>(x & 0x7FFFFFFFu)) + 0.5f;  // low half only
  const uint32_t b = float_bits(t);
  float m = bits_float((b & 0x007FFFFFu) | 0x3F800000u);
  float e = static_cast<float>(static_cast<int32_t>(b >> 23) - 127);
  const bool big = m > 1.41421356f;
  m = big ? 0.5f * m : m;
  e = big ? e + 1.0f : e;
  const float w = (static_cast<float>(static_cast<int32_t>(~x & 0x7FFFFFFFu)) + 0.5f) * 0x1p-32f;  // 1 - u
  const float num = low ? 1.0f - m : w;
  const float den = low ? 1.0f + m : 2.0f - w;
  const float s = num / den;
  const float s2 = s * s;
  const float series =
      1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9 + s2 * (1.0f / 11 + s2 / 13)))));
  const float atanh2 = 2.0f * s * series;
  return low ? (32.0f - e) * kLn2 + atanh2 : atanh2;
}

// sin and cos of phi in [0, pi/4]: Taylor to phi^9 / phi^10 (truncation < 1e-9 relative).
inline void sincos_octant(float phi, float* sn, float* cs) {
  const float p2 = phi * phi;
  *sn = phi + phi * p2 * (-1.0f / 6 + p2 * (1.0f / 120 + p2 * (-1.0f / 5040 + p2 * (1.0f / 362880))));
  *cs = 1.0f + p2 * (-0.5f + p2 * (1.0f / 24 + p2 * (-1.0f / 720 + p2 * (1.0f / 40320 - p2 / 3628800))));
}

// cos and sin of 2 pi u, u = (x + 1/2) / 2^32, relative error a few float ulps, also near their
// zeros: the quadrant is x's top two bits, the angle within it is reduced to [0, pi/4] in
// integer arithmetic (exact), so no rounding of u ever reaches the argument.
inline void cos_sin_two_pi(uint32_t x, float* c, float* s) {
  const uint32_t quadrant = x >> 30;
  const uint32_t r = x & 0x3FFFFFFFu;  // angle in the quadrant: (r + 1/2) / 2^30 * pi/2
  const bool upper = r >= 0x20000000u;
  const uint32_t rr = upper ? 0x3FFFFFFFu - r : r;  // distance to the nearer end, < 2^29
  const float phi = (static_cast<float>(static_cast<int32_t>(rr)) + 0.5f) * (kHalfPi * 0x1p-30f);
  float sn, cs;
  sincos_octant(phi, &sn, &cs);
  // theta = phi, or pi/2 - phi when upper.
  const float st = upper ? cs : sn;
  const float ct = upper ? sn : cs;
  // cos / sin of quadrant * pi/2 + theta.
  const float cq = (quadrant & 1u) ? st : ct;
  const float sq = (quadrant & 1u) ? ct : st;
  *c = (quadrant == 1u || quadrant == 2u) ? -cq : cq;
  *s = (quadrant >= 2u) ? -sq : sq;
}

}  // namespace

// Philox of a block of counters (c0, c1, c2, g0 + i), as separate word arrays so that the
// rounds run as plain vector integer code (8 lanes with AVX2, picked at load; CPUs with AVX-512F
// take normals_avx512 instead). Each counter yields four normals, so a block covers 4 * kBlock
// values of the last counter word.
constexpr int kBlock = 64;

MEMCC_SIMD_CLONES
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

// The four normals of each counter, in the spec's order: rho1 cos, rho1 sin, rho2 cos, rho2 sin.
MEMCC_SIMD_CLONES
static void box_muller_block(const uint32_t* x0, const uint32_t* x1, const uint32_t* x2, const uint32_t* x3,
                             int n, float* c1, float* s1, float* c2, float* s2) {
  for (int i = 0; i < n; ++i) {
    const float r1 = __builtin_sqrtf(2.0f * neg_ln_unit(x0[i]));
    const float r2 = __builtin_sqrtf(2.0f * neg_ln_unit(x2[i]));
    float ca, sa, cb, sb;
    cos_sin_two_pi(x1[i], &ca, &sa);
    cos_sin_two_pi(x3[i], &cb, &sb);
    c1[i] = r1 * ca;
    s1[i] = r1 * sa;
    c2[i] = r2 * cb;
    s2[i] = r2 * sb;
  }
}

void counter_normals_portable(uint64_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, int64_t count,
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
    const uint32_t g0 = (c3 >> 2) + static_cast<uint32_t>(g);
    philox_block(k0, k1, c0, c1, c2, g0, n, x0, x1, x2, x3);
    box_muller_block(x0, x1, x2, x3, n, z[0], z[1], z[2], z[3]);
    if (lead == 0 && done + 4 * n <= count) {
      // Whole groups: a plain interleave.
      for (int i = 0; i < n; ++i) {
        for (int l = 0; l < 4; ++l) out[done + 4 * i + l] = z[l][i];
      }
      done += 4 * n;
      continue;
    }
    for (int i = 0; i < n; ++i) {
      for (int l = (g == 0 && i == 0) ? lead : 0; l < 4 && done < count; ++l) out[done++] = z[l][i];
    }
  }
}

void box_muller_portable(const uint32_t* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t* w = x + 4 * i;
    box_muller_block(w, w + 1, w + 2, w + 3, 1, out + 4 * i, out + 4 * i + 1, out + 4 * i + 2, out + 4 * i + 3);
  }
}

void counter_normals(uint64_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, int64_t count,
                     float* out) {
#ifdef MEMCC_NORMALS_AVX512
  if (normals_avx512_available()) {
    normals_avx512(philox::key_lo(key), philox::key_hi(key), c0, c1, c2, c3 >> 2, c3 & 3u, count, out);
    return;
  }
#endif
  counter_normals_portable(key, c0, c1, c2, c3, count, out);
}

}  // namespace memcc
