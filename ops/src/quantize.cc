#include "quantize.h"

#include "float_bits.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "iv_fast.h"
#include "runtime_effects.h"
#include "simd_dispatch.h"
#include <emmintrin.h>

namespace memcc {
namespace {

// Round half to even for |x| <= 2^22: adding 1.5 * 2^23 moves x into [2^23, 2^24], where the
// float spacing is 1, so the addition itself rounds to an integer in the IEEE default mode
// (ties to even, as the spec's `round`). Unlike nearbyint this is two additions the compiler can
// vectorise with baseline SSE2. The build uses -ffp-contract=off so nothing is fused here.
constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23
constexpr float kMagicLimit = 4194304.0f;   // 2^22
inline float round_small(float x) { return (x + kRoundMagic) - kRoundMagic; }

inline float clampf(float x, float lo, float hi) { return std::min(std::max(x, lo), hi); }

// Q of one read: its largest magnitude, or the t-th smallest one when overflow is allowed.
float read_full_scale(const float* a, int64_t m, int64_t t, float* scratch) {
  if (t == m - 1) return max_abs(a, m);
  for (int64_t i = 0; i < m; ++i) scratch[i] = std::fabs(a[i]);
  std::nth_element(scratch, scratch + t, scratch + m);
  return scratch[t];
}

// acc[i] += Quant(a)[i] for one read whose step is delta > 0.
MEMCC_SIMD_CLONES
void quantize_accumulate(const float* a, int64_t m, int bits, double delta, float* acc) {
  const float lo = -std::ldexp(1.0f, bits - 1);
  const float hi = std::ldexp(1.0f, bits - 1) - 1.0f;
  const double inv = 1.0 / delta;  // a power of two: exact
  // a * inv is exact scaling (so equal to a / Δ) and level * Δ is exact, as long as Δ and 1/Δ
  // are normal floats; the magic rounding needs |level| <= 2^22, i.e. bits <= 23.
  const bool fast = bits <= 23 && delta >= FLT_MIN && inv >= FLT_MIN && delta <= FLT_MAX &&
                    inv <= FLT_MAX;
  if (fast) {
    const float d = static_cast<float>(delta);
    const float s = static_cast<float>(inv);
    for (int64_t i = 0; i < m; ++i) acc[i] += round_small(clampf(a[i] * s, lo, hi)) * d;
  } else {
    for (int64_t i = 0; i < m; ++i) {
      const double level = std::nearbyint(std::min(std::max(a[i] / delta, double(lo)), double(hi)));
      acc[i] += static_cast<float>(level * delta);
    }
  }
}

// Steps 2-4 for one entry. The divisions of the spec (x / s and round(.) / L) are done as
// multiplications by per-vector reciprocals: that moves a result by at most one rounding, which
// the spec's "Numerical agreement" allows at a quantizer boundary, and it keeps this pass (one
// per input vector entry) far below the cost of the GEMM it feeds.
//   no DAC: out = clamp(x * inv_s) * mult        (mult = V_max, or s for Rescaled)
//   DAC:    out = round(clamp(x * inv_s) * L) * mult / L
inline float unit(float x, float inv_s) { return clampf(x * inv_s, -1.0f, 1.0f); }

template <bool kDac, bool kSmall>
inline float encode_one(float x, float inv_s, float levels, float mult) {
  if (!kDac) return unit(x, inv_s) * mult;
  const float t = unit(x, inv_s) * levels;
  return (kSmall ? round_small(t) : std::nearbyint(t)) * mult;
}

// One row (entry k of `count` vectors) of encode_columns; per-vector inv_s and mult.
template <bool kDac, bool kSmall>
void encode_column_row(float* row, int64_t count, const float* inv_s, const float* mult, float levels) {
  for (int64_t p = 0; p < count; ++p) row[p] = encode_one<kDac, kSmall>(row[p], inv_s[p], levels, mult[p]);
}

template <bool kDac, bool kSmall>
void encode_vector(const float* x, int64_t K, float inv_s, float levels, float mult, float* out) {
  for (int64_t k = 0; k < K; ++k) out[k] = encode_one<kDac, kSmall>(x[k], inv_s, levels, mult);
}

}  // namespace

namespace {
// GCC vector extensions: 8 floats, lowered to two SSE registers in the default clone and one
// ymm register in the AVX2 clone (intrinsics would pin one width for both).
typedef float V8f __attribute__((vector_size(32)));
typedef int32_t V8i __attribute__((vector_size(32)));
}  // namespace

float max_abs(const float* a, int64_t n) {
  int64_t i = 0;
  float m = 0.0f;
  // Independent vector chains (GCC does not vectorise a float max reduction by itself without
  // -ffast-math): four, as the ADC's reads of 128 values waited on the max latency with two.
  const __m128 sign = _mm_set1_ps(-0.0f);
  __m128 m0 = _mm_setzero_ps(), m1 = _mm_setzero_ps(), m2 = _mm_setzero_ps(), m3 = _mm_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    m0 = _mm_max_ps(m0, _mm_andnot_ps(sign, _mm_loadu_ps(a + i)));
    m1 = _mm_max_ps(m1, _mm_andnot_ps(sign, _mm_loadu_ps(a + i + 4)));
    m2 = _mm_max_ps(m2, _mm_andnot_ps(sign, _mm_loadu_ps(a + i + 8)));
    m3 = _mm_max_ps(m3, _mm_andnot_ps(sign, _mm_loadu_ps(a + i + 12)));
  }
  for (; i + 8 <= n; i += 8) {
    m0 = _mm_max_ps(m0, _mm_andnot_ps(sign, _mm_loadu_ps(a + i)));
    m1 = _mm_max_ps(m1, _mm_andnot_ps(sign, _mm_loadu_ps(a + i + 4)));
  }
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, _mm_max_ps(_mm_max_ps(m0, m2), _mm_max_ps(m1, m3)));
  m = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
  for (; i < n; ++i) m = std::max(m, std::fabs(a[i]));
  return m;
}

int64_t quantile_index(int64_t m, double overflow_rate) {
  if (m <= 0) return 0;
  const int64_t t = m - 1 - static_cast<int64_t>(std::floor(overflow_rate * static_cast<double>(m)));
  return std::min(std::max<int64_t>(t, 0), m - 1);
}

double adc_step(float Q, int bits) {
  if (!(Q > 0.0f)) return 0.0;
  int e = 0;
  const double f = std::frexp(static_cast<double>(Q), &e);  // Q = f * 2^e, 0.5 <= f < 1
  const int c = f == 0.5 ? e - 1 : e;                       // smallest c with 2^c >= Q
  return std::ldexp(1.0, c + 1 - bits);
}

void linear_quantize(const float* a, int64_t m, int bits, double overflow_rate, float* out,
                     float* scratch) {
  if (m <= 0) return;
  const int64_t t = quantile_index(m, overflow_rate);
  for (int64_t i = 0; i < m; ++i) scratch[i] = std::fabs(a[i]);
  std::sort(scratch, scratch + m);
  const double delta = adc_step(scratch[t], bits);
  const double lo = -std::ldexp(1.0, bits - 1), hi = std::ldexp(1.0, bits - 1) - 1.0;
  for (int64_t i = 0; i < m; ++i) {
    if (delta == 0.0) {
      out[i] = 0.0f;
    } else {
      const double level = std::min(std::max(std::nearbyint(a[i] / delta), lo), hi);
      out[i] = static_cast<float>(level * delta);
    }
  }
}

namespace {

// adc_step for a normal, finite Q > 0 when Δ and 1/Δ are normal floats and bits <= 23 (the
// conditions of quantize_accumulate's fast path): Δ and 1/Δ from the exponent field alone, so
// the per-read cost is a few integer operations. Returns false otherwise (the caller then uses
// adc_step and the exact loop).
inline bool fast_step(float Q, int bits, float* delta, float* inv) {
  const uint32_t u = float_bits(Q);
  const int32_t e = static_cast<int32_t>((u >> 23) & 0xffu);
  if (e == 0 || e == 0xff || bits > 23) return false;  // zero, subnormal, inf, NaN
  // Q = 1.m * 2^(e - 127): the smallest c with 2^c >= Q is e - 127, or one more when m != 0.
  const int32_t c = e - 127 + ((u & 0x7fffffu) != 0 ? 1 : 0);
  const int32_t p = c + 1 - bits;  // Δ = 2^p
  if (p < -126 || p > 127 || -p < -126 || -p > 127) return false;
  *delta = bits_float(static_cast<uint32_t>(p + 127) << 23);
  *inv = bits_float(static_cast<uint32_t>(-p + 127) << 23);
  return true;
}

}  // namespace

MEMCC_SIMD_CLONES
void adc_accumulate_rows(const float* reads, int64_t rows, int64_t m, int64_t ld_reads, int bits,
                         double overflow_rate, float* acc, int64_t ld_acc, float* scratch, const float* row_max) {
  if (m <= 0) return;
  const int64_t t = quantile_index(m, overflow_rate);
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = reads + r * ld_reads;
    const bool known = row_max && t == m - 1 && !std::isnan(row_max[r]);
    const float Q = known ? row_max[r] : read_full_scale(a, m, t, scratch);
    float d = 0.0f, inv = 0.0f;
    // The step from the exponent field when it is normal (the common case), frexp otherwise.
    const double delta = fast_step(Q, bits, &d, &inv) ? static_cast<double>(d) : adc_step(Q, bits);
    if (delta == 0.0) continue;  // Q = 0: the read contributes zeros
    quantize_accumulate(a, m, bits, delta, acc + r * ld_acc);
  }
}


namespace {

// adc_accumulate_columns for Q = max |read| and bits <= 23, 16 reads at a time with their
// maxima, steps and reciprocals held in registers (the plain loops reload and store them for
// every one of the m entries). Reads whose step is not on the fast path get inv = delta = 0 and
// Q[i] stored, for the caller's exact loop; returns the number of reads handled (a multiple of
// 16). Same arithmetic as the plain loop, so the same results.
__attribute__((always_inline)) inline int64_t adc_columns_blocked(const float* reads, int64_t m,
                                                                  int64_t count, int64_t ld_reads,
                                                                  int bits, float* acc,
                                                                  int64_t ld_acc, float* Q) {
  const V8i mag = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
                   0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
  const float lo_s = -std::ldexp(1.0f, bits - 1);
  const float hi_s = std::ldexp(1.0f, bits - 1) - 1.0f;
  const V8f lo = V8f{} + lo_s, hi = V8f{} + hi_s, magic = V8f{} + kRoundMagic;
  int64_t i = 0;
  bool slow = false;
  for (; i + 16 <= count; i += 16) {
    // Four chains of maxima (two reads each): one chain per 16 reads made the scan wait on the
    // max latency at every row. Max is exact, so the order does not matter.
    V8f q0 = {}, q1 = {}, q2 = {}, q3 = {};
    int64_t j = 0;
    for (; j + 2 <= m; j += 2) {
      V8i u0, u1, u2, u3;
      std::memcpy(&u0, reads + j * ld_reads + i, sizeof u0);
      std::memcpy(&u1, reads + j * ld_reads + i + 8, sizeof u1);
      std::memcpy(&u2, reads + (j + 1) * ld_reads + i, sizeof u2);
      std::memcpy(&u3, reads + (j + 1) * ld_reads + i + 8, sizeof u3);
      const V8f x0 = reinterpret_cast<V8f>(u0 & mag);
      const V8f x1 = reinterpret_cast<V8f>(u1 & mag);
      const V8f x2 = reinterpret_cast<V8f>(u2 & mag);
      const V8f x3 = reinterpret_cast<V8f>(u3 & mag);
      q0 = q0 < x0 ? x0 : q0;  // std::max(q, x): NaN entries are skipped
      q1 = q1 < x1 ? x1 : q1;
      q2 = q2 < x2 ? x2 : q2;
      q3 = q3 < x3 ? x3 : q3;
    }
    for (; j < m; ++j) {
      V8i u0, u1;
      std::memcpy(&u0, reads + j * ld_reads + i, sizeof u0);
      std::memcpy(&u1, reads + j * ld_reads + i + 8, sizeof u1);
      const V8f x0 = reinterpret_cast<V8f>(u0 & mag);
      const V8f x1 = reinterpret_cast<V8f>(u1 & mag);
      q0 = q0 < x0 ? x0 : q0;
      q1 = q1 < x1 ? x1 : q1;
    }
    q0 = q0 < q2 ? q2 : q0;
    q1 = q1 < q3 ? q3 : q1;
    V8f inv[2], delta[2];
    const V8f qs[2] = {q0, q1};
    for (int h = 0; h < 2; ++h) {
      // fast_step, lane-wise.
      const V8i u = reinterpret_cast<V8i>(qs[h]);
      const V8i e = (u >> 23) & 0xff;
      const V8i c = e - 127 - ((u & 0x7fffff) != 0);  // (!= 0) is -1 where true
      const V8i p = c + 1 - bits;
      const V8i ok = (e != 0) & (e != 0xff) & (p >= -126) & (p <= 126);
      delta[h] = reinterpret_cast<V8f>(((p + 127) << 23) & ok);
      inv[h] = reinterpret_cast<V8f>(((127 - p) << 23) & ok);
      const V8i need = ~ok & (qs[h] != 0.0f);
      for (int l = 0; l < 8; ++l) slow = slow || need[l] != 0;
    }
    std::memcpy(Q + i, &q0, sizeof q0);
    std::memcpy(Q + i + 8, &q1, sizeof q1);
    for (int64_t j = 0; j < m; ++j) {
      const float* r = reads + j * ld_reads + i;
      float* a = acc + j * ld_acc + i;
      for (int h = 0; h < 2; ++h) {
        V8f x, y;
        std::memcpy(&x, r + 8 * h, sizeof x);
        std::memcpy(&y, a + 8 * h, sizeof y);
        V8f v = x * inv[h];
        v = v < lo ? lo : v;
        v = hi < v ? hi : v;
        v = (v + magic) - magic;
        y += v * delta[h];
        std::memcpy(a + 8 * h, &y, sizeof y);
      }
    }
  }
  if (slow) {
    // Rare (a read with a zero-exponent or extreme step): redo those reads exactly. The blocked
    // loop added r * 0 for them (inv = delta = 0), exactly as the plain loop does.
    for (int64_t k = 0; k < i; ++k) {
      float d, v;
      if (Q[k] == 0.0f || fast_step(Q[k], bits, &d, &v)) continue;
      const double step = adc_step(Q[k], bits);
      if (step == 0.0) continue;
      for (int64_t j = 0; j < m; ++j) {
        const double level = std::nearbyint(
            std::min(std::max(reads[j * ld_reads + k] / step, double(lo_s)), double(hi_s)));
        acc[j * ld_acc + k] += static_cast<float>(level * step);
      }
    }
  }
  return i;
}

}  // namespace

MEMCC_SIMD_CLONES
void adc_accumulate_columns(const float* reads, int64_t m, int64_t count, int64_t ld_reads, int bits,
                            double overflow_rate, float* acc, int64_t ld_acc, float* scratch) {
  if (m <= 0 || count <= 0) return;
  float* Q = scratch;
  float* inv = scratch + count;
  float* delta = scratch + 2 * count;
  float* column = scratch + 3 * count;
  const int64_t t = quantile_index(m, overflow_rate);
  int64_t done = 0;  // reads handled by the blocked loop below
  if (t == m - 1 && bits <= 23) done = adc_columns_blocked(reads, m, count, ld_reads, bits, acc, ld_acc, Q);
  if (done == count) return;
  reads += done;
  acc += done;
  count -= done;
  if (t == m - 1) {
    std::fill(Q, Q + count, 0.0f);
    for (int64_t j = 0; j < m; ++j) {
      const float* r = reads + j * ld_reads;
      for (int64_t i = 0; i < count; ++i) Q[i] = std::max(Q[i], std::fabs(r[i]));
    }
  } else {
    for (int64_t i = 0; i < count; ++i) {
      for (int64_t j = 0; j < m; ++j) column[j] = std::fabs(reads[j * ld_reads + i]);
      std::nth_element(column, column + t, column + m);
      Q[i] = column[t];
    }
  }
  // Reads whose step is not on the fast path (Q = 0 included) get inv = delta = 0 here, so the
  // vector loop adds zeros for them; the exact loop below then handles those with Q != 0.
  bool any_slow = false;
  for (int64_t i = 0; i < count; ++i) {
    if (!fast_step(Q[i], bits, &delta[i], &inv[i])) {
      delta[i] = inv[i] = 0.0f;
      any_slow = any_slow || Q[i] != 0.0f;
    }
  }
  const float lo = -std::ldexp(1.0f, bits - 1);
  const float hi = std::ldexp(1.0f, bits - 1) - 1.0f;
  for (int64_t j = 0; j < m; ++j) {
    const float* r = reads + j * ld_reads;
    float* a = acc + j * ld_acc;
    for (int64_t i = 0; i < count; ++i) a[i] += round_small(clampf(r[i] * inv[i], lo, hi)) * delta[i];
  }
  if (!any_slow) return;
  for (int64_t i = 0; i < count; ++i) {
    if (inv[i] != 0.0f || Q[i] == 0.0f) continue;
    const double step = adc_step(Q[i], bits);
    if (step == 0.0) continue;
    for (int64_t j = 0; j < m; ++j) {
      const double level =
          std::nearbyint(std::min(std::max(reads[j * ld_reads + i] / step, double(lo)), double(hi)));
      acc[j * ld_acc + i] += static_cast<float>(level * step);
    }
  }
}

// The I-V transform of encoded columns; `scratch` holds 2 * count floats.
static void iv_columns(float* col, int64_t ldc, int64_t K, int64_t count, const InputEncoding& enc, EncodeTarget target,
                const float* scale, float* scratch) {
  if (target == EncodeTarget::Voltages) {
    for (int64_t k = 0; k < K; ++k) iv_apply(col + k * ldc, count, enc.iv_a, enc.iv_b, 1.0f, 1.0f);
    return;
  }
  float* pre = scratch;
  float* post = scratch + count;
  for (int64_t p = 0; p < count; ++p) {
    pre[p] = scale[p] > 0.0f ? enc.v_max / scale[p] : 0.0f;
    post[p] = scale[p] / enc.v_max;
  }
#ifdef MEMCC_IV_AVX512
  if (iv_fast_available()) {
    iv_apply_columns_fast(col, ldc, K, count, enc.iv_a, enc.iv_b, pre, post);
    return;
  }
#endif
  for (int64_t k = 0; k < K; ++k) iv_apply_each(col + k * ldc, count, enc.iv_a, enc.iv_b, pre, post);
}

MEMCC_SIMD_CLONES
void encode_rows(const float* x, int64_t ldx, int64_t rows, int64_t K, const InputEncoding& enc,
                 EncodeTarget target, float* out, int64_t ld_out, float* scale) {
  const bool dac = enc.dac_bits > 0;
  const float levels = dac ? std::ldexp(1.0f, enc.dac_bits - 1) - 1.0f : 1.0f;
  const bool small = levels <= kMagicLimit;
  for (int64_t i = 0; i < rows; ++i) {
    const float* xi = x + i * ldx;
    float* oi = out + i * ld_out;
    const float s = enc.input_range > 0.0f ? enc.input_range : max_abs(xi, K);
    scale[i] = s;
    if (!(s > 0.0f)) {
      std::fill(oi, oi + K, 0.0f);  // s = 0: the crossbar sees no input
      continue;
    }
    if (target == EncodeTarget::Rescaled && !dac) {
      // Only the clamp to the input range is left, and it is exact without the division.
      for (int64_t k = 0; k < K; ++k) oi[k] = clampf(xi[k], -s, s);
      continue;
    }
    const float inv_s = 1.0f / s;
    const float mult = (target == EncodeTarget::Voltages ? enc.v_max : s) / levels;
    if (!dac) {
      encode_vector<false, true>(xi, K, inv_s, levels, mult, oi);
    } else if (small) {
      encode_vector<true, true>(xi, K, inv_s, levels, mult, oi);
    } else {
      encode_vector<true, false>(xi, K, inv_s, levels, mult, oi);
    }
  }
  if (enc.iv_b > 0.0f) {
    for (int64_t i = 0; i < rows; ++i) {
      const float s = scale[i];
      if (target == EncodeTarget::Voltages) {
        iv_apply(out + i * ld_out, K, enc.iv_a, enc.iv_b, 1.0f, 1.0f);
      } else if (s > 0.0f) {
        iv_apply(out + i * ld_out, K, enc.iv_a, enc.iv_b, enc.v_max / s, s / enc.v_max);
      }
    }
  }
}

MEMCC_SIMD_CLONES_WIDE
void encode_columns(float* col, int64_t ldc, int64_t K, int64_t count, const InputEncoding& enc,
                    EncodeTarget target, float* scale, float* scratch, bool scale_given) {
  if (count <= 0) return;
  if (enc.input_range > 0.0f) {
    std::fill(scale, scale + count, enc.input_range);
  } else if (!scale_given) {
    std::fill(scale, scale + count, 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float* row = col + k * ldc;
      for (int64_t p = 0; p < count; ++p) scale[p] = std::max(scale[p], std::fabs(row[p]));
    }
  }
  const bool dac = enc.dac_bits > 0;
  if (target == EncodeTarget::Rescaled && !dac) {
    if (enc.input_range > 0.0f) {
      const float s = enc.input_range;
      for (int64_t k = 0; k < K; ++k) {
        float* row = col + k * ldc;
        for (int64_t p = 0; p < count; ++p) row[p] = clampf(row[p], -s, s);
      }
    }
    // With s = max |x| nothing changes.
    if (enc.iv_b > 0.0f) iv_columns(col, ldc, K, count, enc, target, scale, scratch);
    return;
  }
  // A zero vector has s = 0 and only zeros: inv_s = 0 keeps them 0 without a branch.
  float* inv_s = scratch;
  float* mult = scratch + count;
  const float levels = dac ? std::ldexp(1.0f, enc.dac_bits - 1) - 1.0f : 1.0f;
  for (int64_t p = 0; p < count; ++p) {
    inv_s[p] = scale[p] > 0.0f ? 1.0f / scale[p] : 0.0f;
    mult[p] = (target == EncodeTarget::Voltages ? enc.v_max : scale[p]) / levels;
  }
  const bool small = levels <= kMagicLimit;
  for (int64_t k = 0; k < K; ++k) {
    float* row = col + k * ldc;
    if (!dac) {
      encode_column_row<false, true>(row, count, inv_s, mult, levels);
    } else if (small) {
      encode_column_row<true, true>(row, count, inv_s, mult, levels);
    } else {
      encode_column_row<true, false>(row, count, inv_s, mult, levels);
    }
  }
  if (enc.iv_b > 0.0f) iv_columns(col, ldc, K, count, enc, target, scale, scratch);
}

MagnitudeRange voltage_magnitude_range(const InputEncoding& enc) {
  if (enc.dac_bits <= 0 || !(enc.v_max > 0.0f)) return {};
  const double levels = std::ldexp(1.0, enc.dac_bits - 1) - 1.0;
  double lo = enc.v_max / levels, hi = enc.v_max;
  if (enc.iv_b > 0.0f) {  // f is odd and increasing in |v|
    lo = std::fabs(enc.iv_a * std::sinh(enc.iv_b * lo));
    hi = std::fabs(enc.iv_a * std::sinh(enc.iv_b * hi));
  }
  lo /= 2.0;
  hi *= 2.0;
  if (!(lo >= FLT_MIN) || !(hi <= FLT_MAX)) return {};
  return {lo, hi};
}

}  // namespace memcc
