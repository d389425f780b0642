#include "normals_avx512.h"

#ifdef MEMCC_NORMALS_AVX512

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "philox.h"

#define MEMCC_AVX512 __attribute__((target("avx512f")))

namespace memcc {
namespace {

// vpternlog truth tables: a ^ b ^ c, and a ^ (b & c).
constexpr int kXor3 = 0x96;
constexpr int kXorAnd = 0x78;

// Four Philox words of 8 counters, one per 64-bit lane in its low half (the high halves carry
// whatever the last product or shuffle left there: vpmuludq reads only the low halves, and the last round
// takes only them).
struct Lanes8 {
  __m512i w0, w1, w2, w3;
};

// Round keys and the scalar part of rounds 1-4 for counters (c0, c1, c2, *): the words that do
// not depend on the last counter word (the same for all lanes) are computed once per call. The
// keys are 64-bit so that the rounds take them as broadcast memory operands.
struct PhiloxPrefix {
  const uint64_t* rk0;  // RoundKeys', shared by every prefix of a call
  const uint64_t* rk1;
  uint64_t r1_x2;   // round 1: w2 = w3_in ^ r1_x2
  uint64_t r2_x0;   // round 2: w0 = hi(p1) ^ r2_x0, w1 = p1
  uint64_t r3_x0;   // round 3: w0 = w1 ^ r3_x0
  uint64_t r3_x2;   // round 3: w2 = hi(p0) ^ r3_x2, w3 = p0
  uint64_t r4_x0;   // round 4: w0 = hi(p1) ^ r4_x0, w1 = p1 (w2, w3 as in the full rounds)
};

uint32_t hi32(uint64_t p) { return static_cast<uint32_t>(p >> 32); }
uint32_t lo32(uint64_t p) { return static_cast<uint32_t>(p); }

// The ten round keys (the key bumped by the Weyl constants after each round), as the 64-bit
// lanes the vector rounds broadcast (their low halves are the scalar rounds' 32-bit keys). Once
// per call: a call's prefixes (one per row or column group) all use the same key.
struct RoundKeys {
  uint64_t rk0[10], rk1[10];
  uint32_t key0(int r) const { return static_cast<uint32_t>(rk0[r]); }
  uint32_t key1(int r) const { return static_cast<uint32_t>(rk1[r]); }
};

MEMCC_AVX512 inline RoundKeys round_keys(uint32_t k0, uint32_t k1) {
  RoundKeys k;
  for (int r = 0; r < 10; ++r) {
    k.rk0[r] = static_cast<uint32_t>(k0 + static_cast<uint32_t>(r) * philox::kWeyl0);
    k.rk1[r] = static_cast<uint32_t>(k1 + static_cast<uint32_t>(r) * philox::kWeyl1);
  }
  return k;
}

MEMCC_AVX512 inline PhiloxPrefix philox_prefix(const RoundKeys& k, uint32_t c0, uint32_t c1, uint32_t c2) {
  PhiloxPrefix q{};
  q.rk0 = k.rk0;
  q.rk1 = k.rk1;
  // Round 1: words 0 and 2 are c0 and c2 for every counter.
  const uint64_t a_p0 = static_cast<uint64_t>(philox::kMul0) * c0;
  const uint64_t a_p1 = static_cast<uint64_t>(philox::kMul1) * c2;
  const uint32_t a0 = hi32(a_p1) ^ c1 ^ k.key0(0), a1 = lo32(a_p1), a3 = lo32(a_p0);
  q.r1_x2 = hi32(a_p0) ^ k.key1(0);
  // Round 2: word 0 (a0) is shared, word 2 is not.
  const uint64_t b_p0 = static_cast<uint64_t>(philox::kMul0) * a0;
  q.r2_x0 = a1 ^ k.key0(1);
  const uint32_t b2 = hi32(b_p0) ^ a3 ^ k.key1(1), b3 = lo32(b_p0);
  // Round 3: word 2 (b2) is shared.
  const uint64_t c_p1 = static_cast<uint64_t>(philox::kMul1) * b2;
  q.r3_x0 = hi32(c_p1) ^ k.key0(2);
  q.r3_x2 = b3 ^ k.key1(2);
  // Round 4: word 1 (lo of round 3's p1) is shared.
  q.r4_x0 = lo32(c_p1) ^ k.key0(3);
  return q;
}

MEMCC_AVX512 inline __m512i bcast(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
MEMCC_AVX512 inline __m512i bcast64(uint64_t v) { return _mm512_set1_epi64(static_cast<long long>(v)); }
// Full-mask (maskz) forms: GCC 12's unmasked ones pass an "undefined" vector that
// -Wmaybe-uninitialized reports.
// The high half of each 64-bit lane moved to its low half by a shuffle (vpshufd), not a shift:
// shifts share port 0 with vpmuludq, which the rounds keep busy; the shuffle runs on port 5. The
// high half then holds the old low half, which nothing reads (vpmuludq and the packs take the
// low halves only).
MEMCC_AVX512 inline __m512i hi_half(__m512i p) { return _mm512_maskz_shuffle_epi32(0xFFFF, p, _MM_PERM_CDAB); }
MEMCC_AVX512 inline __m512i mul_lo(__m512i a, __m512i b) { return _mm512_maskz_mul_epu32(0xFF, a, b); }

// Rounds 1-9 of Philox4x32-10 for the 8 counters (c0, c1, c2, g .. g + 7 mod 2^30).
// Rounds First..8 on counters whose four words all vary by lane (round 9 packs the results,
// philox_last_round). A template so that the loop stays fully unrolled with constant key indices.
template <int First>
MEMCC_AVX512 inline Lanes8 full_rounds(Lanes8 s, const uint64_t* rk0, const uint64_t* rk1, __m512i m0, __m512i m1) {
#pragma GCC unroll 6
  for (int r = First; r < 9; ++r) {
    const __m512i p0 = mul_lo(s.w0, m0), p1 = mul_lo(s.w2, m1);
    s.w0 = _mm512_ternarylogic_epi64(hi_half(p1), s.w1, bcast64(rk0[r]), kXor3);
    s.w2 = _mm512_ternarylogic_epi64(hi_half(p0), s.w3, bcast64(rk1[r]), kXor3);
    s.w1 = p1;
    s.w3 = p0;
  }
  return s;
}

MEMCC_AVX512 inline Lanes8 philox8_nine_rounds(const PhiloxPrefix& q, uint32_t g) {
  const __m512i m0 = bcast(philox::kMul0), m1 = bcast(philox::kMul1);
  const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i w3_in = _mm512_add_epi64(_mm512_set1_epi64(g), lane);
  // Round 1: w2 = (w3_in mod 2^30) ^ x; the other words are scalars.
  const __m512i a2 = _mm512_ternarylogic_epi64(bcast64(q.r1_x2), w3_in, _mm512_set1_epi64(0x3FFFFFFF), kXorAnd);
  // Round 2: only word 2 is per lane.
  const __m512i b_p1 = mul_lo(a2, m1);
  const __m512i b0 = _mm512_xor_si512(hi_half(b_p1), bcast64(q.r2_x0));
  // Round 3: only word 0 is per lane.
  const __m512i c_p0 = mul_lo(b0, m0);
  Lanes8 s;
  s.w0 = _mm512_xor_si512(b_p1, bcast64(q.r3_x0));
  s.w2 = _mm512_xor_si512(hi_half(c_p0), bcast64(q.r3_x2));
  s.w3 = c_p0;
  // Round 4: word 1 is shared.
  {
    const __m512i p0 = mul_lo(s.w0, m0), p1 = mul_lo(s.w2, m1);
    s.w0 = _mm512_xor_si512(hi_half(p1), bcast64(q.r4_x0));
    s.w2 = _mm512_ternarylogic_epi64(hi_half(p0), s.w3, bcast64(q.rk1[3]), kXor3);
    s.w1 = p1;
    s.w3 = p0;
  }
  return full_rounds<4>(s, q.rk0, q.rk1, m0, m1);
}

// Two 8-lane vectors as one 16-lane vector (a's first) of their low or high 32-bit halves.
MEMCC_AVX512 inline __m512i pack_low(__m512i a, __m512i b) {
  const __m512i idx = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  return _mm512_permutex2var_epi32(a, idx, b);
}
MEMCC_AVX512 inline __m512i pack_high(__m512i a, __m512i b) {
  const __m512i idx = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  return _mm512_permutex2var_epi32(a, idx, b);
}

// Philox words of 16 counters as 16-lane vectors.
struct Words16 {
  __m512i x0, x1, x2, x3;
};

// Round keys and the scalar part of rounds 1-3 for counters (c0, *, c2, g): the counters of
// add_column_terms_avx512, whose lanes differ in word 1 (the position) only.
struct PhiloxPrefixW1 {
  const uint64_t* rk0;  // RoundKeys', shared by every prefix of a call
  const uint64_t* rk1;
  uint64_t r1_x0;   // round 1: w0 = w1_in ^ r1_x0 (w1, w2, w3 shared)
  uint64_t r2_x2;   // round 2: w2 = hi(p0) ^ r2_x2, w3 = p0 (w0, w1 shared)
  uint64_t r3_x0;   // round 3: w0 = hi(p1) ^ r3_x0, w1 = p1
  uint64_t r3_p0;   // round 3: w2 = hi(p0) ^ w3 ^ rk1[2] with the shared product p0 = r3_p0
};

MEMCC_AVX512 inline PhiloxPrefixW1 philox_prefix_w1(const RoundKeys& k, uint32_t c0, uint32_t c2, uint32_t g) {
  PhiloxPrefixW1 q{};
  q.rk0 = k.rk0;
  q.rk1 = k.rk1;
  // Round 1: words 0 and 2 are c0 and c2 for every counter; word 0 out takes the lane's c1.
  const uint64_t a_p0 = static_cast<uint64_t>(philox::kMul0) * c0;
  const uint64_t a_p1 = static_cast<uint64_t>(philox::kMul1) * c2;
  q.r1_x0 = hi32(a_p1) ^ k.key0(0);
  const uint32_t a1 = lo32(a_p1), a2 = hi32(a_p0) ^ g ^ k.key1(0), a3 = lo32(a_p0);
  q.r2_x2 = a3 ^ k.key1(1);
  // Round 2: word 2 (a2) is shared, so are words 0 and 1 out.
  const uint64_t b_p1 = static_cast<uint64_t>(philox::kMul1) * a2;
  const uint32_t b0 = hi32(b_p1) ^ a1 ^ k.key0(1), b1 = lo32(b_p1);
  q.r3_x0 = b1 ^ k.key0(2);
  // Round 3: word 0 (b0) is shared.
  q.r3_p0 = static_cast<uint64_t>(philox::kMul0) * b0;
  return q;
}

// Rounds 1-9 of Philox4x32-10 for the 8 counters (c0, c1 .. c1 + 7, c2, g).
MEMCC_AVX512 inline Lanes8 philox8_nine_rounds_w1(const PhiloxPrefixW1& q, uint32_t c1) {
  const __m512i m0 = bcast(philox::kMul0), m1 = bcast(philox::kMul1);
  const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i w1_in = _mm512_add_epi32(_mm512_set1_epi64(c1), lane);  // low halves wrap mod 2^32
  // Round 1: only word 0 is per lane.
  const __m512i a0 = _mm512_xor_si512(w1_in, bcast64(q.r1_x0));
  // Round 2: words 2 and 3 are per lane.
  const __m512i b_p0 = mul_lo(a0, m0);
  const __m512i b2 = _mm512_xor_si512(hi_half(b_p0), bcast64(q.r2_x2));
  // Round 3: word 0 is shared.
  Lanes8 s;
  {
    const __m512i p1 = mul_lo(b2, m1);
    s.w0 = _mm512_xor_si512(hi_half(p1), bcast64(q.r3_x0));
    s.w1 = p1;
    s.w2 = _mm512_ternarylogic_epi64(b_p0, bcast64(q.r3_p0 >> 32), bcast64(q.rk1[2]), kXor3);
    s.w3 = bcast64(q.r3_p0 & 0xFFFFFFFFu);
  }
  return full_rounds<3>(s, q.rk0, q.rk1, m0, m1);
}

// The last round of 16 counters from two 8-lane halves, run on the packed lanes (a's first):
// the high halves of its products are packed straight from where vpmuludq leaves them.
MEMCC_AVX512 inline Words16 philox_last_round(const Lanes8& a, const Lanes8& b, uint32_t rk0, uint32_t rk1) {
  const __m512i m0 = bcast(philox::kMul0), m1 = bcast(philox::kMul1);
  const __m512i pa0 = mul_lo(a.w0, m0), pa1 = mul_lo(a.w2, m1);
  const __m512i pb0 = mul_lo(b.w0, m0), pb1 = mul_lo(b.w2, m1);
  Words16 x;
  x.x0 = _mm512_ternarylogic_epi32(pack_high(pa1, pb1), pack_low(a.w1, b.w1), bcast(rk0), kXor3);
  x.x1 = pack_low(pa1, pb1);
  x.x2 = _mm512_ternarylogic_epi32(pack_high(pa0, pb0), pack_low(a.w3, b.w3), bcast(rk1), kXor3);
  x.x3 = pack_low(pa0, pb0);
  return x;
}

// Philox4x32-10 of the 16 counters (c0, c1, c2, g .. g + 15 mod 2^30).
MEMCC_AVX512 inline Words16 philox16(const PhiloxPrefix& q, uint32_t g) {
  const Lanes8 a = philox8_nine_rounds(q, g), b = philox8_nine_rounds(q, g + 8u);
  return philox_last_round(a, b, static_cast<uint32_t>(q.rk0[9]), static_cast<uint32_t>(q.rk1[9]));
}

// ln(1 + f) = f + f^2 R(f) on [-1/2, 0], R of degree 7 (least maximum relative error, fitted
// for this interval: below 2^-25). Listed here as -2 R, for -2 ln(1 + f).
constexpr float kLnR[8] = {
    static_cast<float>(-2 * -0.4999952172055126), static_cast<float>(-2 * 0.3336321208211613),
    static_cast<float>(-2 * -0.24368260504531852), static_cast<float>(-2 * 0.2636909633534882),
    static_cast<float>(-2 * 0.1809523876441205),  static_cast<float>(-2 * 1.2087141377272188),
    static_cast<float>(-2 * 1.6395897616087587),  static_cast<float>(-2 * 1.4145477229557366)};

// -2 ln u for u = (x + 1/2) / 2^32. The word converted as a signed integer gives s = u for
// u < 1/2 and s = u - 1 (exact: no bits of 1 - u lost) for u >= 1/2. Then u = 2^e (1 + f) with
// f in [-1/2, 0): for s >= 0 from vgetexp/vgetmant of s (mantissa in [1/2, 1)), for s < 0 e = 0
// and f = s. Every term of -2 e ln 2 - 2 ln(1 + f) is >= 0: no cancellation.
MEMCC_AVX512 inline __m512 minus_two_ln_unit(__m512i x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 s = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, x), _mm512_set1_ps(0x1p-32f),
                                   _mm512_set1_ps(0x1p-33f));
  const __mmask16 low = _mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_GE_OQ);
  const __m512 m = _mm512_maskz_getmant_ps(0xFFFF, s, _MM_MANT_NORM_p5_1, _MM_MANT_SIGN_src);
  // -2 e ln 2 with e = getexp(s) + 1 in one fused step (e + 1 is exact, so the product is
  // rounded once as before); 0 where s < 0.
  const __m512 minus_two_ln2 = _mm512_set1_ps(-1.38629436111989061f);
  const __m512 e_term = _mm512_maskz_fmadd_ps(low, _mm512_maskz_getexp_ps(0xFFFF, s), minus_two_ln2, minus_two_ln2);
  const __m512 f = _mm512_mask_sub_ps(s, low, m, one);
  // -2 ln u = -2 e ln 2 + f (-2 + f (-2 R(f))): Horner all the way, the product with f last,
  // so the small-f result keeps f's relative accuracy.
  __m512 r = _mm512_set1_ps(kLnR[7]);
  for (int i = 6; i >= 0; --i) r = _mm512_fmadd_ps(r, f, _mm512_set1_ps(kLnR[i]));
  r = _mm512_fmadd_ps(r, f, _mm512_set1_ps(-2.0f));
  return _mm512_fmadd_ps(r, f, e_term);
}

// sqrt(a) for a > 0: vrsqrt14 (relative error < 2^-14) and one Newton step on a * rsqrt(a).
MEMCC_AVX512 inline __m512 sqrt_positive(__m512 a) {
  const __m512 r = _mm512_maskz_rsqrt14_ps(0xFFFF, a);
  const __m512 g = _mm512_mul_ps(a, r);
  const __m512 h = _mm512_mul_ps(r, _mm512_set1_ps(0.5f));
  const __m512 residual = _mm512_fnmadd_ps(g, h, _mm512_set1_ps(0.5f));  // 1/2 - g h
  return _mm512_fmadd_ps(g, residual, g);
}

// sin(p) = p + p^3 S(p^2), cos(p) = 1 - p^2 / 2 + p^4 C(p^2) on [-pi/4, pi/4] (fitted for least
// maximum relative error: below 2^-28 and 2^-33).
constexpr float kSin[3] = {-0.16666654609558768f, 0.008332160762371931f, -0.0001951528325034973f};
constexpr float kCos[3] = {0.04166664568295474f, -0.0013887316253519083f, 2.4433156975909e-05f};

// cos and sin of 2 pi u, u = (x + 1/2) / 2^32. With q the quadrant nearest the angle (x's top
// two bits after adding 2^29) and r the signed rest of x's low 30 bits (x << 2 as a signed
// integer is 4 r), the angle is q pi/2 + p, p = (4 r + 2) pi / 2^33 in (-pi/4, pi/4): rounded
// only by the conversion of 4 r and the one fused multiply-add.
MEMCC_AVX512 inline void cos_sin_two_pi(__m512i x, __m512* c, __m512* s) {
  const __m512i sign_bit = bcast(0x80000000u);
  const __m512 four_r = _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_slli_epi32(0xFFFF, x, 2));
  const __m512 p = _mm512_fmadd_ps(four_r, _mm512_set1_ps(0x1.921fb54442d18p-32f), _mm512_set1_ps(0x1.921fb54442d18p-31f));
  const __m512 p2 = _mm512_mul_ps(p, p);
  __m512 sp = _mm512_fmadd_ps(_mm512_set1_ps(kSin[2]), p2, _mm512_set1_ps(kSin[1]));
  sp = _mm512_fmadd_ps(sp, p2, _mm512_set1_ps(kSin[0]));
  const __m512 sn = _mm512_fmadd_ps(_mm512_mul_ps(p, p2), sp, p);
  __m512 cp = _mm512_fmadd_ps(_mm512_set1_ps(kCos[2]), p2, _mm512_set1_ps(kCos[1]));
  cp = _mm512_fmadd_ps(cp, p2, _mm512_set1_ps(kCos[0]));
  cp = _mm512_fmadd_ps(cp, p2, _mm512_set1_ps(-0.5f));
  const __m512 cs = _mm512_fmadd_ps(cp, p2, _mm512_set1_ps(1.0f));
  // Quadrant q: cos = (cos p, -sin p, -cos p, sin p), sin = (sin p, cos p, -sin p, -cos p).
  const __m512i qs = _mm512_add_epi32(x, bcast(1u << 29));          // q in the top two bits
  const __m512i qc = _mm512_add_epi32(x, bcast(3u << 29));          // q + 1 in the top two bits
  const __mmask16 swap = _mm512_test_epi32_mask(qs, bcast(1u << 30));  // q odd
  const __m512 c_abs = _mm512_mask_blend_ps(swap, cs, sn);
  const __m512 s_abs = _mm512_mask_blend_ps(swap, sn, cs);
  *c = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(c_abs), qc, sign_bit, kXorAnd));
  *s = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(s_abs), qs, sign_bit, kXorAnd));
}

// 64 normals as four vectors.
struct Normals64 {
  __m512 z[4];
};

// The four normals of each of 16 Philox outputs (words as 16-lane vectors), one vector per
// normal number: z[l] lane i is normal l of output i.
MEMCC_AVX512 inline Normals64 box_muller16_planar(__m512i x0, __m512i x1, __m512i x2, __m512i x3) {
  const __m512 rho1 = sqrt_positive(minus_two_ln_unit(x0));
  const __m512 rho2 = sqrt_positive(minus_two_ln_unit(x2));
  __m512 c1, s1, c2, s2;
  cos_sin_two_pi(x1, &c1, &s1);
  cos_sin_two_pi(x3, &c2, &s2);
  Normals64 n;
  n.z[0] = _mm512_mul_ps(rho1, c1);
  n.z[1] = _mm512_mul_ps(rho1, s1);
  n.z[2] = _mm512_mul_ps(rho2, c2);
  n.z[3] = _mm512_mul_ps(rho2, s2);
  return n;
}

// The 64 normals of 16 Philox outputs (words as 16-lane vectors), in the spec's order: normal l
// of output i is element 4 i + l.
MEMCC_AVX512 inline Normals64 box_muller16(__m512i x0, __m512i x1, __m512i x2, __m512i x3) {
  const Normals64 planar = box_muller16_planar(x0, x1, x2, x3);
  const __m512 c1 = planar.z[0], s1 = planar.z[1], c2 = planar.z[2], s2 = planar.z[3];
  // Interleave: (c1 s1) pairs of outputs 0-7 and 8-15, likewise (c2 s2), then the pairs of the
  // two as 64-bit elements.
  const __m512i pair_lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i pair_hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  const __m512d a_lo = _mm512_castps_pd(_mm512_permutex2var_ps(c1, pair_lo, s1));
  const __m512d a_hi = _mm512_castps_pd(_mm512_permutex2var_ps(c1, pair_hi, s1));
  const __m512d b_lo = _mm512_castps_pd(_mm512_permutex2var_ps(c2, pair_lo, s2));
  const __m512d b_hi = _mm512_castps_pd(_mm512_permutex2var_ps(c2, pair_hi, s2));
  const __m512i quad_lo = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
  const __m512i quad_hi = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
  Normals64 n;
  n.z[0] = _mm512_castpd_ps(_mm512_permutex2var_pd(a_lo, quad_lo, b_lo));
  n.z[1] = _mm512_castpd_ps(_mm512_permutex2var_pd(a_lo, quad_hi, b_lo));
  n.z[2] = _mm512_castpd_ps(_mm512_permutex2var_pd(a_hi, quad_lo, b_hi));
  n.z[3] = _mm512_castpd_ps(_mm512_permutex2var_pd(a_hi, quad_hi, b_hi));
  return n;
}

MEMCC_AVX512 inline void store64(const Normals64& n, float* out) {
  for (int v = 0; v < 4; ++v) _mm512_storeu_ps(out + 16 * v, n.z[v]);
}

// Normals lead .. lead + count - 1 of the stream from counter (c0, c1, c2, g0) (see
// normals_avx512), handed to sink(normals, first, n, whole): the 64 normals of one step, the
// index (from lead) of the first one the range takes, how many it takes, and whether it takes
// all 64 (else they start at element first + lead - 64 b of the step).
template <class Sink>
MEMCC_AVX512 inline void for_each_step(const PhiloxPrefix& q, uint32_t g0, int64_t lead, int64_t count, Sink&& sink) {
  const int64_t end = lead + count;
  for (int64_t b = lead / 64; 64 * b < end; ++b) {
    const Words16 w = philox16(q, g0 + static_cast<uint32_t>(16 * b));
    const int64_t first = 64 * b;
    const int64_t from = std::max(first, lead), to = std::min(first + 64, end);
    sink(box_muller16(w.x0, w.x1, w.x2, w.x3), from - first, from - lead, to - from);
  }
}

}  // namespace

bool normals_avx512_available() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

MEMCC_AVX512 void normals_avx512(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t g0,
                                 int64_t lead, int64_t count, float* out) {
  if (count <= 0) return;
  const RoundKeys keys = round_keys(k0, k1);
  for_each_step(philox_prefix(keys, c0, c1, c2), g0, lead, count,
                [&](const Normals64& n, int64_t skip, int64_t at, int64_t take) MEMCC_AVX512 {
                  if (take == 64) {
                    store64(n, out + at);
                    return;
                  }
                  alignas(64) float edge[64];
                  store64(n, edge);
                  std::copy(edge + skip, edge + skip + take, out + at);
                });
}

MEMCC_AVX512 void add_normal_terms_avx512(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t c1, uint32_t c2,
                                          uint32_t g0, int64_t lead, int64_t count, int64_t rows,
                                          const float* variance, int64_t ldv, const float* row_factor,
                                          float* currents, int64_t ldc, float* row_max) {
  if (count <= 0) {
    if (row_max) std::fill(row_max, row_max + rows, 0.0f);
    return;
  }
  const __m512 zero = _mm512_setzero_ps();
  // Magnitudes compared as integers: the same order as the floats', with a NaN above infinity
  // (a float maximum would drop or keep a NaN depending on the operand order).
  const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  const RoundKeys keys = round_keys(k0, k1);
  for (int64_t i = 0; i < rows; ++i) {
    const float* var = variance + i * ldv;
    float* cur = currents + i * ldc;
    const float factor = row_factor ? row_factor[i] : 1.0f;
    const __m512 vf = _mm512_set1_ps(factor);
    __m512i mx = _mm512_setzero_si512();
    for_each_step(philox_prefix(keys, c0, c1 + static_cast<uint32_t>(i), c2), g0, lead, count,
                  [&](const Normals64& n, int64_t skip, int64_t at, int64_t take) MEMCC_AVX512 {
                    if (take == 64) {
                      for (int v = 0; v < 4; ++v) {
                        // max(var, 0) with var first: a NaN variance counts as 0, as in the
                        // portable loop.
                        const __m512 sd =
                            _mm512_maskz_sqrt_ps(0xFFFF, _mm512_maskz_max_ps(0xFFFF, _mm512_mul_ps(_mm512_loadu_ps(var + at + 16 * v), vf), zero));
                        float* y = cur + at + 16 * v;
                        const __m512 sum = _mm512_fmadd_ps(sd, n.z[v], _mm512_loadu_ps(y));
                        _mm512_storeu_ps(y, sum);
                        if (row_max) {
                          mx = _mm512_maskz_max_epu32(0xFFFF, mx, _mm512_and_si512(_mm512_castps_si512(sum), magnitude));
                        }
                      }
                      return;
                    }
                    alignas(64) float edge[64];
                    store64(n, edge);
                    uint32_t edge_max = 0;
                    for (int64_t j = 0; j < take; ++j) {
                      const float v = var[at + j] * factor > 0.0f ? var[at + j] * factor : 0.0f;
                      cur[at + j] = std::fma(std::sqrt(v), edge[skip + j], cur[at + j]);
                      uint32_t b = 0;
                      std::memcpy(&b, cur + at + j, sizeof b);
                      edge_max = std::max(edge_max, b & 0x7FFFFFFFu);
                    }
                    mx = _mm512_maskz_max_epu32(0xFFFF, mx, _mm512_set1_epi32(static_cast<int>(edge_max)));
                  });
    if (row_max) {
      alignas(64) uint32_t lanes[16];
      _mm512_store_si512(lanes, mx);
      const uint32_t bits = *std::max_element(lanes, lanes + 16);
      float m = std::numeric_limits<float>::quiet_NaN();
      if (bits <= 0x7F800000u) std::memcpy(&m, &bits, sizeof m);
      row_max[i] = m;
    }
  }
}

MEMCC_AVX512 void add_column_terms_avx512(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t q0, uint32_t c2,
                                          uint32_t j0, int64_t nc, int64_t nq, const float* variance, int64_t ldv,
                                          float f, float* reads, int64_t ldr) {
  const __m512 zero = _mm512_setzero_ps(), vf = _mm512_set1_ps(f);
  const RoundKeys keys = round_keys(k0, k1);
  const int64_t g_end = (static_cast<int64_t>(j0) + nc + 3) / 4;
  // Column groups outer: one prefix per group serves all positions; each Philox call's four
  // normals are the group's four columns at 16 positions, in the layout of var and reads.
  for (int64_t g = j0 / 4; g < g_end; ++g) {
    const PhiloxPrefixW1 pre = philox_prefix_w1(keys, c0, c2, static_cast<uint32_t>(g));
    for (int64_t i0 = 0; i0 < nq; i0 += 16) {
      const int64_t m = std::min<int64_t>(16, nq - i0);
      const __mmask16 k = static_cast<__mmask16>(m >= 16 ? 0xFFFFu : (1u << m) - 1u);
      const uint32_t q = q0 + static_cast<uint32_t>(i0);
      const Lanes8 a = philox8_nine_rounds_w1(pre, q), b = philox8_nine_rounds_w1(pre, q + 8u);
      const Words16 w = philox_last_round(a, b, static_cast<uint32_t>(pre.rk0[9]), static_cast<uint32_t>(pre.rk1[9]));
      const Normals64 n = box_muller16_planar(w.x0, w.x1, w.x2, w.x3);
      for (int l = 0; l < 4; ++l) {
        const int64_t j = 4 * g + l - j0;
        if (j < 0 || j >= nc) continue;
        // max(v, 0), its second operand returned for a NaN: a NaN variance gives 0, as the
        // portable loop's comparison does.
        const __m512 pos = _mm512_maskz_max_ps(0xFFFF, _mm512_maskz_loadu_ps(k, variance + j * ldv + i0), zero);
        __m512 root = _mm512_maskz_sqrt_ps(0xFFFF, pos);
        if (f != 1.0f) root = _mm512_mul_ps(root, vf);
        float* y = reads + j * ldr + i0;
        _mm512_mask_storeu_ps(y, k, _mm512_fmadd_ps(root, n.z[l], _mm512_maskz_loadu_ps(k, y)));
      }
    }
  }
}

MEMCC_AVX512 void box_muller_avx512(const uint32_t* x, int64_t n, float* out) {
  alignas(64) uint32_t words[4][16];
  alignas(64) float z[64];
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    const int64_t m = std::min<int64_t>(16, n - i0);
    for (int64_t i = 0; i < 16; ++i) {
      for (int l = 0; l < 4; ++l) words[l][i] = i < m ? x[4 * (i0 + i) + l] : 0u;
    }
    store64(box_muller16(_mm512_load_si512(words[0]), _mm512_load_si512(words[1]), _mm512_load_si512(words[2]),
                         _mm512_load_si512(words[3])),
            z);
    std::copy(z, z + 4 * m, out + 4 * i0);
  }
}

}  // namespace memcc

#endif  // MEMCC_NORMALS_AVX512
