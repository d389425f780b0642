#include "iv_fast.h"

#include <cmath>

#ifdef MEMCC_IV_AVX512
#include <immintrin.h>
#endif

namespace memcc {

#ifdef MEMCC_IV_AVX512
namespace {

// Beyond this |b pre x| (or for NaN) a lane goes to float64: e^80 is still far from float32's
// overflow, so the exponential below never overflows, and a sinh that does is float64's call.
constexpr float kFastLimit = 80.0f;

// Bitwise float ops in AVX-512F alone (the _ps forms need AVX-512DQ). Full-mask (maskz) forms
// where GCC 12's unmasked ones pass an "undefined" vector that -Wmaybe-uninitialized reports.
__attribute__((target("avx512f"))) inline __m512 xor_bits(__m512 a, __m512 b) {
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}
__attribute__((target("avx512f"))) inline __m512 and_bits(__m512 a, __m512 b) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}
__attribute__((target("avx512f"))) inline __m512 andnot_bits(__m512 a, __m512 b) {
  return _mm512_castsi512_ps(_mm512_maskz_andnot_epi32(0xFFFF, _mm512_castps_si512(a), _mm512_castps_si512(b)));
}

// The rare lanes outside the fast range, exactly as the float64 path computes them.
inline float iv_double(float x, float a, float b, float pre, float post) {
  return static_cast<float>(static_cast<double>(a) * post * std::sinh(static_cast<double>(b) * pre * x));
}

// ah * sinh(x (bh + bl)) for 16 lanes, where bh + bl is the factor b * pre to twice float32's
// precision (the argument's rounding would otherwise be amplified |arg| times). `bad` gets the
// lanes with |x bh| > kFastLimit or NaN, whose results are not valid.
//  - |arg| < 1: arg + arg^3 (1/3! + ... + arg^8/11!) (truncation < 2e-10 relative) on the
//    rounded argument alone: there its rounding is amplified at most |arg| coth|arg| < 1.32
//    times, so the low part would buy under an ulp for three of the branch's eleven operations;
//  - else (e^|arg| - e^-|arg|) / 2 (cancellation at most coth(1) = 1.31 times), with
//    e^|arg| = 2^k e^r, |r| <= ln2/2 (+ the low part), e^r and e^-r by Taylor to r^7
//    (< 6e-9 relative) and 2^k applied by vscalefps.
__attribute__((target("avx512f"))) inline __m512 sinh_lanes(__m512 x, __m512 bh, __m512 bl, __m512 ah,
                                                            __mmask16* bad) {
  const __m512 sign_bit = _mm512_set1_ps(-0.0f);
  const __m512 t = _mm512_mul_ps(x, bh);
  const __m512 tl = _mm512_fmadd_ps(x, bl, _mm512_fmsub_ps(x, bh, t));
  const __m512 ax = andnot_bits(sign_bit, t);
  const __m512 sgn = and_bits(sign_bit, t);
  *bad = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(kFastLimit), _CMP_NLE_UQ);

  const __m512 t2 = _mm512_mul_ps(t, t);
  __m512 p = _mm512_fmadd_ps(t2, _mm512_set1_ps(1.0f / 39916800.0f), _mm512_set1_ps(1.0f / 362880.0f));
  p = _mm512_fmadd_ps(t2, p, _mm512_set1_ps(1.0f / 5040.0f));
  p = _mm512_fmadd_ps(t2, p, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(t2, p, _mm512_set1_ps(1.0f / 6.0f));
  // On magnitudes, the sign put back last: sinh(-0) stays -0.
  const __m512 small = xor_bits(_mm512_fmadd_ps(_mm512_mul_ps(ax, t2), p, ax), sgn);

  const __mmask16 is_small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(1.0f), _CMP_LT_OQ);
  if (is_small == 0xFFFF) return _mm512_mul_ps(small, ah);  // typical voltages: |b v| < 1 throughout

  const __m512 kf = _mm512_maskz_roundscale_ps(0xFFFF, _mm512_mul_ps(ax, _mm512_set1_ps(1.44269504088896341f)),
                                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(0.693145751953125f), ax);
  r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(1.42860676533018570e-06f), r);
  r = _mm512_add_ps(r, xor_bits(tl, sgn));  // the low part of |arg|
  // e^r and e^-r from one even and one odd part: e^{+-r} = even +- odd (no division).
  const __m512 r2 = _mm512_mul_ps(r, r);
  __m512 even = _mm512_fmadd_ps(r2, _mm512_set1_ps(1.0f / 720.0f), _mm512_set1_ps(1.0f / 24.0f));
  even = _mm512_fmadd_ps(r2, even, _mm512_set1_ps(0.5f));
  even = _mm512_fmadd_ps(r2, even, _mm512_set1_ps(1.0f));
  __m512 odd = _mm512_fmadd_ps(r2, _mm512_set1_ps(1.0f / 5040.0f), _mm512_set1_ps(1.0f / 120.0f));
  odd = _mm512_fmadd_ps(r2, odd, _mm512_set1_ps(1.0f / 6.0f));
  odd = _mm512_fmadd_ps(r2, odd, _mm512_set1_ps(1.0f));
  odd = _mm512_mul_ps(r, odd);
  // sinh = even (2^(k-1) - 2^(-k-1)) + odd (2^(k-1) + 2^(-k-1)): both factors exact for k <= 12,
  // and beyond that the 2^(-k-1) parts are below float32's resolution anyway.
  const __m512 up = _mm512_maskz_scalef_ps(0xFFFF, _mm512_set1_ps(0.5f), kf);
  const __m512 down = _mm512_maskz_scalef_ps(0xFFFF, _mm512_set1_ps(0.5f), _mm512_sub_ps(_mm512_setzero_ps(), kf));
  const __m512 big =
      xor_bits(_mm512_fmadd_ps(even, _mm512_sub_ps(up, down), _mm512_mul_ps(odd, _mm512_add_ps(up, down))), sgn);
  return _mm512_mul_ps(_mm512_mask_blend_ps(is_small, big, small), ah);
}

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

}  // namespace

bool iv_fast_available() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

__attribute__((target("avx512f"))) void iv_apply_fast(float* x, int64_t n, float a, float b, float pre,
                                                      float post) {
  const float bh_s = b * pre;
  const float bl_s = static_cast<float>(static_cast<double>(b) * pre - bh_s);  // exact
  const __m512 bh = _mm512_set1_ps(bh_s), bl = _mm512_set1_ps(bl_s), ah = _mm512_set1_ps(a * post);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    __mmask16 bad = 0;
    const __m512 y = sinh_lanes(v, bh, bl, ah, &bad);
    _mm512_mask_storeu_ps(x + i, m & static_cast<__mmask16>(~bad), y);
    for (int l = 0; (bad & m) && l < 16; ++l) {
      if ((bad & m) >> l & 1u) x[i + l] = iv_double(x[i + l], a, b, pre, post);
    }
  }
}

__attribute__((target("avx512f"))) void iv_apply_each_fast(float* x, int64_t n, float a, float b,
                                                           const float* pre, const float* post) {
  const __m512 bv = _mm512_set1_ps(b), av = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 pr = _mm512_maskz_loadu_ps(m, pre + i);
    const __m512 bh = _mm512_mul_ps(bv, pr);
    const __m512 bl = _mm512_fmsub_ps(bv, pr, bh);  // exact: b pre = bh + bl
    const __m512 ah = _mm512_mul_ps(av, _mm512_maskz_loadu_ps(m, post + i));
    __mmask16 bad = 0;
    const __m512 y = sinh_lanes(v, bh, bl, ah, &bad);
    _mm512_mask_storeu_ps(x + i, m & static_cast<__mmask16>(~bad), y);
    for (int l = 0; (bad & m) && l < 16; ++l) {
      if ((bad & m) >> l & 1u) x[i + l] = iv_double(x[i + l], a, b, pre[i + l], post[i + l]);
    }
  }
}

__attribute__((target("avx512f"))) void iv_apply_columns_fast(float* col, int64_t ldc, int64_t K, int64_t count,
                                                              float a, float b, const float* pre, const float* post) {
  const __m512 sign_bit = _mm512_set1_ps(-0.0f), one = _mm512_set1_ps(1.0f);
  const __m512 bv = _mm512_set1_ps(b), av = _mm512_set1_ps(a);
  // A position's factors are the same down its column: formed once per 16 positions, and the
  // rows then take sinh_lanes' |arg| < 1 branch on signed values (rounding is symmetric, so
  // only the sign of a zero differs, which the sign copy puts back) with one range test.
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 m = tail_mask(count - i);
    const __m512 pr = _mm512_maskz_loadu_ps(m, pre + i);
    const __m512 bh = _mm512_mul_ps(bv, pr);
    const __m512 bl = _mm512_fmsub_ps(bv, pr, bh);  // exact: b pre = bh + bl
    const __m512 ah = _mm512_mul_ps(av, _mm512_maskz_loadu_ps(m, post + i));
    float* x = col + i;
    for (int64_t k = 0; k < K; ++k, x += ldc) {
      const __m512 v = _mm512_maskz_loadu_ps(m, x);
      const __m512 t = _mm512_mul_ps(v, bh);
      const __m512 t2 = _mm512_mul_ps(t, t);
      __m512 y;
      if (_mm512_cmp_ps_mask(t2, one, _CMP_LT_OQ) == 0xFFFF) {
        __m512 p = _mm512_fmadd_ps(t2, _mm512_set1_ps(1.0f / 39916800.0f), _mm512_set1_ps(1.0f / 362880.0f));
        p = _mm512_fmadd_ps(t2, p, _mm512_set1_ps(1.0f / 5040.0f));
        p = _mm512_fmadd_ps(t2, p, _mm512_set1_ps(1.0f / 120.0f));
        p = _mm512_fmadd_ps(t2, p, _mm512_set1_ps(1.0f / 6.0f));
        const __m512 sm = _mm512_fmadd_ps(_mm512_mul_ps(t, t2), p, t);
        // The sign bit of t, the rest of sm (0xD8: C ? B : A).
        const __m512 signed_sm = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
            _mm512_castps_si512(sm), _mm512_castps_si512(t), _mm512_castps_si512(sign_bit), 0xD8));
        y = _mm512_mul_ps(signed_sm, ah);
      } else {
        // Some lane is large (or NaN): the whole function, float64 where it says so.
        __mmask16 bad = 0;
        y = sinh_lanes(v, bh, bl, ah, &bad);
        bad &= m;
        for (int l = 0; bad && l < 16; ++l) {
          if (bad >> l & 1u) x[l] = iv_double(x[l], a, b, pre[i + l], post[i + l]);
        }
        _mm512_mask_storeu_ps(x, m & static_cast<__mmask16>(~bad), y);
        continue;
      }
      _mm512_mask_storeu_ps(x, m, y);
    }
  }
}

#else

bool iv_fast_available() { return false; }

#endif

}  // namespace memcc
