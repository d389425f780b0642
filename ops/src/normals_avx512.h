// The counter-based normals (docs/op-spec.md, "The counter-based normal") with AVX-512F: Philox
// and Box–Muller fused in registers, 16 counters (64 normals) per step. counter_normals
// (counter_normal.h) calls it where the CPU has AVX-512F and takes its portable loops elsewhere.
//
// Philox runs with one counter per 64-bit lane, so vpmuludq gives each lane's whole product in
// place (no even/odd split and blend); the first three rounds, where two of the four words are
// the same for every counter, run partly in scalar code. The transforms are float32 polynomials
// on arguments reduced in integer arithmetic from the words, so every normal stays within the
// spec's ulp bound (the tests measure it):
//  - rho = sqrt(-2 ln u): u = 2^e (1 + f) with vgetexp/vgetmant (1 + f in [3/4, 3/2)), and
//    u >= 3/4 taken as f = -(1 - u) with 1 - u formed from the word's complement, so -ln u stays
//    accurate to its last bits near u = 1; ln(1 + f) by a degree-9 polynomial (relative error
//    below 2^-25, which the square root halves); the square root from vrsqrt14 and one Newton step;
//  - cos and sin of 2 pi u: the quadrant nearest the angle from the word's top bits, the
//    remainder in [-pi/4, pi/4] from the rest (exact in integers), degree-7 and degree-8
//    polynomials and a swap and sign flips per quadrant.
#pragma once

#include <cstdint>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MEMCC_NORMALS_AVX512 1
#endif

namespace memcc {

#ifdef MEMCC_NORMALS_AVX512
// Whether this CPU has AVX-512F.
bool normals_avx512_available();

// Normals number lead .. lead + count - 1 of the stream that starts at the first normal of
// Philox counter (c0, c1, c2, g0) (the groups of four run on through g0 + 1, ... mod 2^30) under
// round keys (k0, k1): out[i] is the normal of group g0 + (lead + i) / 4, lane (lead + i) % 4.
// Only when normals_avx512_available().
void normals_avx512(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t g0, int64_t lead,
                    int64_t count, float* out);

// currents[i * ldc + j] += sqrt(max(variance[i * ldv + j] * f_i, 0)) * z_i[j] for i < rows,
// j < count, where z_i is what normals_avx512 gives for counter word c1 + i and f_i is
// row_factor[i] (1 when row_factor is null): the read-noise terms of several reads at once, the
// normals never stored (each term added with one fused multiply-add). With row_max (rows
// floats), row_max[i] := max_j |currents[i * ldc + j]| after the terms, or NaN where a current is
// NaN: the ADC's full scale, found while the currents are in registers.
void add_normal_terms_avx512(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t g0,
                             int64_t lead, int64_t count, int64_t rows, const float* variance, int64_t ldv,
                             const float* row_factor, float* currents, int64_t ldc, float* row_max = nullptr);

// reads[j * ldr + i] += sqrt(max(variance[j * ldv + i], 0)) * f * normal(key; c0, q0 + i, c2, j0 + j)
// for j < nc, i < nq (counter words mod 2^32), with key = (k0, k1): the read-noise terms of one
// tile read in [column, position] layout. One SIMD lane per position, so each Philox call's four
// normals are four columns' 16-position vectors: no transposes. A NaN variance counts as 0.
void add_column_terms_avx512(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t q0, uint32_t c2, uint32_t j0, int64_t nc,
                             int64_t nq, const float* variance, int64_t ldv, float f, float* reads, int64_t ldr);

// The four normals (rho1 cos, rho1 sin, rho2 cos, rho2 sin) of each given Philox output:
// x[4 i .. 4 i + 3] are the words x0..x3 of output i, out[4 i .. 4 i + 3] its normals. The same
// transforms as normals_avx512, for tests that pick the words (edge cases Philox rarely yields).
void box_muller_avx512(const uint32_t* x, int64_t n, float* out);
#endif

}  // namespace memcc
