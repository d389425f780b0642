#include "variance_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "amx_tile_config.h"
#include "float_bits.h"
#include "simd_dispatch.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && __GNUC__ >= 11
#define MEMCC_HAS_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace memcc {
namespace {

constexpr int64_t kRowBlock = 32;  // K per tile: 16 rows of bfloat16 pairs
constexpr int64_t kColBlock = 16;  // N per tile: 16 float32 accumulators per row
constexpr int64_t kTileElems = 512;

// Round to nearest even, as the spec's bound assumes. The inputs are squares and sums of
// squares: >= 0, and a NaN or inf stays one (its payload bits are kept clear of the rounding).
// Branch-free, so that the conversion loops vectorise.
inline uint16_t to_bf16(float f) {
  const uint32_t b = float_bits(f);
  const uint32_t rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
  const uint32_t special = (b >> 16) | ((b & 0xFFFFu) ? 0x40u : 0u);
  return static_cast<uint16_t>((b & 0x7F800000u) == 0x7F800000u ? special : rounded);
}

// mx[i] = max over k < n of x[k * ld + i], i < m (vectors as columns; squares are >= 0).
MEMCC_SIMD_CLONES_WIDE
void column_max(const float* x, int64_t ld, int64_t n, int64_t m, float* mx) {
  for (int64_t i = 0; i < m; ++i) mx[i] = 0.0f;
  for (int64_t k = 0; k < n; ++k) {
    const float* r = x + k * ld;
    for (int64_t i = 0; i < m; ++i) mx[i] = mx[i] < r[i] ? r[i] : mx[i];
  }
}

// 2^-floor(log2 m) (m in [1, 2) after scaling) for finite m > 0, else 1.
inline float normalising_scale(float m) {
  // Normal m below 2^126: 2^(127 - E) for m's biased exponent E, straight from the bits.
  const uint32_t biased = float_bits(m) >> 23;
  if (biased >= 1 && biased <= 253) return bits_float((254u - biased) << 23);
  if (!(m > 0.0f) || !std::isfinite(m)) return 1.0f;
  int e = 0;
  std::frexp(m, &e);
  return std::ldexp(1.0f, 1 - e);
}

bool amx_env_off() {
  const char* v = std::getenv("MEMCC_OPS_AMX");
  return v && std::strcmp(v, "0") == 0;
}

#ifdef MEMCC_HAS_AMX

bool amx_probe() {
  if (amx_env_off()) return false;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d >> 22) & 1u, amx_tile = (d >> 24) & 1u;
  if (!amx_bf16 || !amx_tile) return false;
  // The conversions around the tile product use AVX-512F (every AMX CPU has it).
  if (!__builtin_cpu_supports("avx512f")) return false;
  // Linux hands out the tile data state only on request (ARCH_REQ_XCOMP_PERM, XTILEDATA).
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
}

// c[i * ldc + j] = the product's row i, column j (i < mp, j < 32 n_pairs).
// tmm0-tmm3: 16 x 16 float32 accumulators (two row blocks of 16 vectors by the pair's two
// column blocks); tmm4, tmm5: the row blocks' 16 vectors x 32 bfloat16 squares; tmm6, tmm7: the
// two column blocks' 16 x (16 pairs) tiles of V. Two row blocks at a time, so that every tile
// loaded feeds two products (one row block: each V tile loaded per 16 vectors, 1.5 loads a product).
__attribute__((target("amx-tile,amx-bf16"))) void amx_product(const uint16_t* a, int64_t lda, int64_t mp,
                                                              int64_t k_tiles, const uint16_t* b0,
                                                              const uint16_t* b1, float* c, int64_t ldc,
                                                              int64_t n_pairs, int64_t pack_stride) {
  load_tile_config(TileConfig::all_16_by_64());
  for (int64_t p = 0; p < n_pairs; ++p) {
    const uint16_t* bp0 = b0 + p * 2 * pack_stride;
    const uint16_t* bp1 = b1 + p * 2 * pack_stride;
    int64_t i0 = 0;
    for (; i0 + 32 <= mp; i0 += 32) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t kt = 0; kt < k_tiles; ++kt) {
        _tile_loadd(4, a + i0 * lda + kt * kRowBlock, lda * 2);
        _tile_loadd(5, a + (i0 + 16) * lda + kt * kRowBlock, lda * 2);
        _tile_loadd(6, bp0 + kt * kTileElems, 64);
        _tile_loadd(7, bp1 + kt * kTileElems, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      float* cp = c + i0 * ldc + p * 32;
      _tile_stored(0, cp, ldc * 4);
      _tile_stored(1, cp + 16, ldc * 4);
      _tile_stored(2, cp + 16 * ldc, ldc * 4);
      _tile_stored(3, cp + 16 * ldc + 16, ldc * 4);
    }
    if (i0 < mp) {
      _tile_zero(0);
      _tile_zero(1);
      for (int64_t kt = 0; kt < k_tiles; ++kt) {
        _tile_loadd(4, a + i0 * lda + kt * kRowBlock, lda * 2);
        _tile_loadd(6, bp0 + kt * kTileElems, 64);
        _tile_loadd(7, bp1 + kt * kTileElems, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
      }
      float* cp = c + i0 * ldc + p * 32;
      _tile_stored(0, cp, ldc * 4);
      _tile_stored(1, cp + 16, ldc * 4);
    }
  }
  _tile_release();
}

// Full-mask (maskz) forms: GCC 12's unmasked ones pass an "undefined" vector that
// -Wmaybe-uninitialized reports.
__attribute__((target("avx512f"))) inline __m512i srl16(__m512i a, unsigned n) {
  return _mm512_maskz_srli_epi32(0xFFFF, a, n);
}

// bf16 of 16 floats >= 0 (or NaN/inf), rounded to nearest even: to_bf16 lane by lane.
__attribute__((target("avx512f"))) inline __m256i to_bf16_16(__m512 x) {
  const __m512i b = _mm512_castps_si512(x);
  const __m512i odd = _mm512_and_si512(srl16(b, 16), _mm512_set1_epi32(1));
  const __m512i rounded = srl16(_mm512_add_epi32(b, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
  const __m512i exp_mask = _mm512_set1_epi32(0x7F800000);
  const __mmask16 special = _mm512_cmpeq_epi32_mask(_mm512_and_si512(b, exp_mask), exp_mask);
  const __mmask16 payload = _mm512_test_epi32_mask(b, _mm512_set1_epi32(0xFFFF));
  const __m512i kept = _mm512_mask_or_epi32(srl16(b, 16), payload, srl16(b, 16),
                                            _mm512_set1_epi32(0x40));
  return _mm512_maskz_cvtepi32_epi16(0xFFFF, _mm512_mask_mov_epi32(rounded, special, kept));
}

// The largest of 16 lanes (in-register halvings).
__attribute__((target("avx512f"))) inline float horizontal_max(__m512 x) {
  x = _mm512_maskz_max_ps(0xFFFF, x, _mm512_maskz_shuffle_f32x4(0xFFFF, x, x, 0x4E));
  x = _mm512_maskz_max_ps(0xFFFF, x, _mm512_maskz_shuffle_f32x4(0xFFFF, x, x, 0xB1));
  x = _mm512_maskz_max_ps(0xFFFF, x, _mm512_maskz_permute_ps(0xFFFF, x, 0x4E));
  x = _mm512_maskz_max_ps(0xFFFF, x, _mm512_maskz_permute_ps(0xFFFF, x, 0xB1));
  return _mm512_cvtss_f32(x);
}

// Vectors as rows, all in one call (per-row calls of the dispatched loops cost more than the
// work at a row tile's 32 to 256 elements): each row's largest square, its scale, and the row
// scaled and rounded into a (lda apart, zero-padded to lda).
__attribute__((target("avx512f"))) void convert_rows(const float* sq, int64_t ldsq, int64_t m, int64_t kc,
                                                      int64_t lda, float* scale, uint16_t* a) {
  for (int64_t i = 0; i < m; ++i) {
    const float* x = sq + i * ldsq;
    __m512 mx = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= kc; k += 16) mx = _mm512_maskz_max_ps(0xFFFF, mx, _mm512_loadu_ps(x + k));
    const __mmask16 tail = static_cast<__mmask16>((1u << (kc - k)) - 1u);
    mx = _mm512_maskz_max_ps(0xFFFF, mx, _mm512_maskz_loadu_ps(tail, x + k));
    scale[i] = normalising_scale(horizontal_max(mx));
    const __m512 s = _mm512_set1_ps(scale[i]);
    uint16_t* ar = a + i * lda;
    for (k = 0; k + 16 <= kc; k += 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ar + k), to_bf16_16(_mm512_mul_ps(_mm512_loadu_ps(x + k), s)));
    }
    for (; k < lda; k += 16) {
      // The tail and the padding (lda is a multiple of 32): lanes past kc convert zeros.
      const int64_t n = std::max<int64_t>(0, std::min<int64_t>(16, kc - k));
      const __mmask16 in = static_cast<__mmask16>((1u << n) - 1u);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ar + k),
                          to_bf16_16(_mm512_mul_ps(_mm512_maskz_loadu_ps(in, x + k), s)));
    }
  }
}

// convert_rows with AVX512-BF16's conversion (32 values, rounded to nearest even, in one
// instruction; its flush of denormal inputs drops only values below 2^-126 of the row's
// largest square, which the spec's bound lets count as 0).
// With Square, sq holds the values and their squares are converted (the largest square is the
// square of the largest magnitude: rounding keeps the order).
template <bool Square>
__attribute__((target("avx512f,avx512bf16"))) void convert_rows_bf16(const float* sq, int64_t ldsq, int64_t m,
                                                                      int64_t kc, int64_t lda, float* scale,
                                                                      uint16_t* a) {
  const __m512i magnitude = _mm512_set1_epi32(Square ? 0x7FFFFFFF : -1);
  // |x| (or x): the sign bit cleared by an integer and (AVX-512F; the float one is AVX512-DQ).
  const auto abs_of = [magnitude](__m512 v) __attribute__((target("avx512f"))) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), magnitude));
  };
  for (int64_t i = 0; i < m; ++i) {
    const float* x = sq + i * ldsq;
    __m512 mx0 = _mm512_setzero_ps(), mx1 = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= kc; k += 32) {
      mx0 = _mm512_maskz_max_ps(0xFFFF, mx0, abs_of(_mm512_loadu_ps(x + k)));
      mx1 = _mm512_maskz_max_ps(0xFFFF, mx1, abs_of(_mm512_loadu_ps(x + k + 16)));
    }
    for (; k < kc; k += 16) {
      const __mmask16 in = static_cast<__mmask16>(kc - k >= 16 ? 0xFFFFu : (1u << (kc - k)) - 1u);
      mx0 = _mm512_maskz_max_ps(0xFFFF, mx0, abs_of(_mm512_maskz_loadu_ps(in, x + k)));
    }
    const float mx = horizontal_max(_mm512_maskz_max_ps(0xFFFF, mx0, mx1));
    scale[i] = normalising_scale(Square ? mx * mx : mx);
    const __m512 s = _mm512_set1_ps(scale[i]);
    uint16_t* ar = a + i * lda;
    // lda is a multiple of 32: lanes past kc convert zeros (the padding).
    for (k = 0; k < lda; k += 32) {
      const int64_t n0 = std::max<int64_t>(0, std::min<int64_t>(16, kc - k));
      const int64_t n1 = std::max<int64_t>(0, std::min<int64_t>(16, kc - k - 16));
      __m512 lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n0) - 1u), x + k);
      __m512 hi = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n1) - 1u), x + k + 16);
      if (Square) {
        lo = _mm512_mul_ps(lo, lo);
        hi = _mm512_mul_ps(hi, hi);
      }
      const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_mul_ps(hi, s), _mm512_mul_ps(lo, s));
      _mm512_storeu_si512(ar + k, reinterpret_cast<__m512i>(h));
    }
  }
}

bool cpu_has_bf16_conversion() {
  static const bool ok = __builtin_cpu_supports("avx512bf16");
  return ok;
}

// out[i * ldo + j] = c[i * ldc + j] * row_unscale[i] for i < m, j < nc (c may be out).
__attribute__((target("avx512f"))) void unscale_rows(const float* c, int64_t ldc, int64_t m, int64_t nc,
                                                      const float* row_unscale, float* out, int64_t ldo) {
  for (int64_t i = 0; i < m; ++i) {
    const __m512 u = _mm512_set1_ps(row_unscale[i]);
    const float* ci = c + i * ldc;
    float* o = out + i * ldo;
    for (int64_t j = 0; j < nc; j += 16) {
      const int64_t n = std::min<int64_t>(16, nc - j);
      const __mmask16 in = static_cast<__mmask16>((1u << n) - 1u);
      _mm512_mask_storeu_ps(o + j, in, _mm512_mul_ps(_mm512_maskz_loadu_ps(in, ci + j), u));
    }
  }
}

#endif

struct Buffers {
  CacheLineVector<uint16_t> a;
  CacheLineVector<float> c;
  std::vector<float> row_unscale;
  std::vector<float> squares;
};

}  // namespace

bool variance_amx_available() {
#ifdef MEMCC_HAS_AMX
  static const bool ok = amx_probe();
  return ok;
#else
  return false;
#endif
}

VariancePack pack_variance(const float* V, int64_t K, int64_t N) {
  VariancePack p;
  if (!variance_amx_available() || K <= 0 || N <= 0) return p;
  p.K = K;
  p.N = N;
  p.k_blocks = (K + kRowBlock - 1) / kRowBlock;
  p.n_blocks = 2 * ((N + 2 * kColBlock - 1) / (2 * kColBlock));  // whole pairs of column blocks
  float mx = 0.0f;
  for (int64_t i = 0; i < K * N; ++i) mx = std::max(mx, V[i]);
  const float scale = normalising_scale(mx);
  p.unscale = 1.0f / scale;
  p.tiles.assign(static_cast<size_t>(p.n_blocks * p.k_blocks * kTileElems), 0);
  for (int64_t nb = 0; nb < p.n_blocks; ++nb) {
    for (int64_t kb = 0; kb < p.k_blocks; ++kb) {
      uint16_t* t = p.tiles.data() + (nb * p.k_blocks + kb) * kTileElems;
      for (int64_t r = 0; r < 16; ++r) {
        for (int64_t c = 0; c < kColBlock; ++c) {
          for (int64_t q = 0; q < 2; ++q) {
            const int64_t k = kb * kRowBlock + 2 * r + q, n = nb * kColBlock + c;
            if (k < K && n < N) t[r * 32 + c * 2 + q] = to_bf16(V[k * N + n] * scale);
          }
        }
      }
    }
  }
  return p;
}

bool variance_gemm(const VariancePack& pack, const float* sq, bool sq_columns, int64_t ldsq, int64_t m,
                   int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* out, int64_t ldo, float* row_factor,
                   bool square_inputs) {
#ifdef MEMCC_HAS_AMX
  if (pack.empty() || k0 % kRowBlock != 0 || j0 % (2 * kColBlock) != 0 || k0 + kc > pack.K || j0 + nc > pack.N) {
    return false;
  }
  if (square_inputs && sq_columns) return false;
  if (m <= 0 || nc <= 0) return true;
  thread_local Buffers buf;
  const int64_t mp = (m + 15) / 16 * 16;
  const int64_t k_tiles = (kc + kRowBlock - 1) / kRowBlock;
  const int64_t lda = k_tiles * kRowBlock;
  const int64_t pairs = (nc + 2 * kColBlock - 1) / (2 * kColBlock);
  buf.a.resize(static_cast<size_t>(mp * lda));
  buf.row_unscale.resize(static_cast<size_t>(m));
  buf.c.resize(static_cast<size_t>(std::max(pairs * mp * 32, 2 * m)));
  // Each vector scaled by a power of two (exact) so its largest square lies in [1, 2).
  float* mx = buf.c.data();
  float* scale = mx + m;
  if (sq_columns) {
    column_max(sq, ldsq, kc, m, mx);
    for (int64_t i = 0; i < m; ++i) scale[i] = normalising_scale(mx[i]);
  } else {
    if (cpu_has_bf16_conversion()) {
      if (square_inputs) {
        convert_rows_bf16<true>(sq, ldsq, m, kc, lda, scale, buf.a.data());
      } else {
        convert_rows_bf16<false>(sq, ldsq, m, kc, lda, scale, buf.a.data());
      }
    } else {
      const float* rows = sq;
      int64_t ld = ldsq;
      if (square_inputs) {
        // Without the one-instruction conversion the squares are formed first.
        buf.squares.resize(static_cast<size_t>(m * kc));
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t k = 0; k < kc; ++k) buf.squares[static_cast<size_t>(i * kc + k)] = sq[i * ldsq + k] * sq[i * ldsq + k];
        }
        rows = buf.squares.data();
        ld = kc;
      }
      convert_rows(rows, ld, m, kc, lda, scale, buf.a.data());
    }
  }
  for (int64_t i = 0; i < m; ++i) buf.row_unscale[i] = pack.unscale / scale[i];
  if (sq_columns) {
    // Transposed 32 rows of squares at a time: the rows a block reads stay in L1.
    for (int64_t kb = 0; kb < lda; kb += kRowBlock) {
      const int64_t kn = std::min(kRowBlock, kc - kb);
      for (int64_t i = 0; i < m; ++i) {
        uint16_t* ar = buf.a.data() + i * lda + kb;
        const float s = scale[i];
        for (int64_t k = 0; k < kn; ++k) ar[k] = to_bf16(sq[(kb + k) * ldsq + i] * s);
        for (int64_t k = std::max<int64_t>(kn, 0); k < kRowBlock; ++k) ar[k] = 0;
      }
    }
  }
  std::fill(buf.a.begin() + m * lda, buf.a.begin() + mp * lda, uint16_t{0});
  const int64_t nb0 = j0 / kColBlock, kb0 = k0 / kRowBlock;
  const int64_t pack_stride = pack.k_blocks * kTileElems;  // one column block
  const uint16_t* b0 = pack.tiles.data() + nb0 * pack_stride + kb0 * kTileElems;
  // The tiles go straight to out where their stores fit it (whole tiles, 64-byte aligned rows:
  // misaligned tile stores cost about three times as much), else through buf.c.
  const bool direct = m == mp && nc == pairs * 32 && ldo % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 64 == 0;
  float* c = direct ? out : buf.c.data();
  const int64_t ldc = direct ? ldo : pairs * 32;
  amx_product(buf.a.data(), lda, mp, k_tiles, b0, b0 + pack_stride, c, ldc, pairs, pack_stride);
  if (row_factor && direct) {
    std::copy(buf.row_unscale.begin(), buf.row_unscale.end(), row_factor);
    return true;
  }
  unscale_rows(c, ldc, m, nc, buf.row_unscale.data(), out, ldo);
  if (row_factor) std::fill(row_factor, row_factor + m, 1.0f);
  return true;
#else
  (void)pack, (void)sq, (void)sq_columns, (void)ldsq, (void)m, (void)k0, (void)kc, (void)j0, (void)nc, (void)out,
      (void)ldo, (void)row_factor, (void)square_inputs;
  return false;
#endif
}

}  // namespace memcc
