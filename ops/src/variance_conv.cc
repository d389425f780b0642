#include "variance_conv.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "amx_tile_config.h"
#include "layer_compute.h"
#include "simd_dispatch.h"
#include "variance_gemm.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && __GNUC__ >= 11
#define MEMCC_VCONV_AMX 1
#include <immintrin.h>
#endif

namespace memcc {
namespace {

constexpr int64_t kChannels = 32;  // K per tile: 16 rows of bfloat16 pairs
constexpr int64_t kCols = 16;      // output channels per tile
constexpr int64_t kTile = 512;     // bfloat16 per packed tile
// Sums of at most K products of factors below 2^x_exp and 2^v_exp stay below 2^124 (no float32
// overflow, and the unscaled result is what float32 would give).
constexpr int kExpBudget = 124;

int ceil_log2(int64_t n) {
  int e = 0;
  while ((int64_t{1} << e) < n) ++e;
  return e;
}

// The power-of-two split of kExpBudget between a pack's two factors: the squares get x_exp, and
// V scaled by 2^scale_exp gets its maximum into [2^(v_exp - 1), 2^v_exp) (scale_exp = 0 for an
// all-zero V). False when V has a non-finite entry.
bool split_exponents(const float* V, int64_t count, int64_t K, int* x_exp, int* scale_exp) {
  float mx = 0.0f;
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(V[i])) return false;
    mx = std::max(mx, V[i]);
  }
  const int budget = kExpBudget - ceil_log2(K);
  *x_exp = budget / 2;
  const int v_exp = budget - *x_exp;
  *scale_exp = 0;
  if (mx > 0.0f) {
    int e = 0;
    std::frexp(mx, &e);  // mx in [2^(e-1), 2^e)
    *scale_exp = v_exp - e;
  }
  return true;
}

// Round to nearest even (finite, >= 0 inputs: the variances).
uint16_t to_bf16(float f) {
  uint32_t b = 0;
  std::memcpy(&b, &f, sizeof b);
  return static_cast<uint16_t>((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

struct Geometry {
  int64_t H, W, Ho, Wo, Hp, Wp, pt, pl, dh, dw, kh, kw;
  // Positions go in blocks of 16, each starting at a flattened padded-image index (its input at
  // kernel offset o starts there plus the offset); block b's results sit at b * 16 in the
  // variance buffer, so output (oy, ox) is at oy * R + ox. Either the blocks run through the
  // flattened rows (R = Wp: the padding columns computed and dropped) or each output row gets
  // its own blocks (R = Wo rounded up to 16: the ends of rows computed and dropped), whichever
  // computes fewer positions (16 x 16 outputs, 3 x 3: 256, not 288).
  std::vector<int64_t> starts;  // an even count (a pair of blocks per step)
  int64_t R;
  int64_t Qp;  // positions in the variance buffer: 16 per block
  int64_t FL;  // pairs per channel pair in the converted input
};

#ifdef MEMCC_VCONV_AMX

bool cpu_has_bf16_vectors() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
}

// The bits of max |x[i]|, i < n: for floats >= 0 the integer order of the bits is the numeric
// order, and a NaN or inf gives bits >= 0x7F800000 (integer max vectorises; float max does not,
// with NaN to keep).
MEMCC_SIMD_CLONES_WIDE
uint32_t abs_max_bits(const float* x, int64_t n) {
  uint32_t mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b = 0;
    std::memcpy(&b, x + i, sizeof b);
    b &= 0x7FFFFFFFu;
    mx = mx < b ? b : mx;
  }
  return mx;
}

// One image and group: the squares of x * 2^t (x: Cg planes of H * W) in bfloat16 channel pairs
// over the zero-padded, flattened image; pm[pixel] = the pixel's largest scaled square.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void convert_input(const float* x, int64_t Cg,
                                                                          const Geometry& g, float two_t,
                                                                          int64_t pairs, uint32_t* xb,
                                                                          float* pm) {
  std::memset(xb, 0, static_cast<size_t>(pairs * g.FL) * sizeof(uint32_t));
  std::fill(pm, pm + g.H * g.W, 0.0f);
  const __m512 s = _mm512_set1_ps(two_t);
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                              22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const int64_t plane = g.H * g.W;
  for (int64_t cp = 0; cp < (Cg + 1) / 2; ++cp) {
    const float* a = x + 2 * cp * plane;
    const float* b = 2 * cp + 1 < Cg ? a + plane : nullptr;
    uint32_t* dst_c = xb + cp * g.FL + g.pt * g.Wp + g.pl;
    for (int64_t iy = 0; iy < g.H; ++iy) {
      uint32_t* dst = dst_c + iy * g.Wp;
      for (int64_t ix = 0; ix < g.W; ix += 16) {
        const int64_t n = std::min<int64_t>(16, g.W - ix);
        const __mmask16 k = static_cast<__mmask16>(n == 16 ? 0xFFFFu : (1u << n) - 1u);
        const int64_t at = iy * g.W + ix;
        __m512 va = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, a + at), s);
        va = _mm512_mul_ps(va, va);
        __m512 vb = _mm512_setzero_ps();
        if (b) {
          vb = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, b + at), s);
          vb = _mm512_mul_ps(vb, vb);
        }
        // (maskz_max: GCC 12's plain _mm512_max_ps warns of its undefined pass-through.)
        const __m512 mx = _mm512_maskz_max_ps(k, _mm512_maskz_loadu_ps(k, pm + at), _mm512_maskz_max_ps(k, va, vb));
        _mm512_mask_storeu_ps(pm + at, k, mx);
        const __m512i h = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(vb, va));  // a low, b high
        _mm512_mask_storeu_epi32(dst + ix, k, _mm512_permutexvar_epi16(interleave, h));
      }
    }
  }
}

// Tiles 0-3: C (two column blocks x two position blocks), 4-5: V, 6-7: inputs.
__attribute__((target("amx-tile,amx-bf16"))) void amx_conv(const VarianceConvPack& pk, int64_t h,
                                                           const Geometry& g, const int64_t* offsets,
                                                           const uint32_t* xb, float* out) {
  load_tile_config(TileConfig::all_16_by_64());
  const int64_t per_offset = pk.c_tiles * kTile;
  const int64_t per_ntile = pk.ks * per_offset;
  const uint16_t* group = pk.tiles.data() + h * pk.n_tiles * per_ntile;
  const int64_t xstride = g.FL * 4, ostride = g.Qp * 4;
  // Channel blocks outermost: one block's inputs and the two column blocks' filter tiles
  // (22 + 18 KiB for 32 channels, 3 x 3) stay in L1 while the positions go by; the partial sums
  // go through `out` between blocks.
  for (int64_t ct = 0; ct < pk.c_tiles; ++ct) {
    const uint32_t* xc = xb + ct * 16 * g.FL;
    for (int64_t nt = 0; nt < pk.n_tiles; nt += 2) {
      const uint16_t* a0 = group + nt * per_ntile + ct * kTile;
      const uint16_t* a1 = a0 + per_ntile;
      for (size_t b = 0; b < g.starts.size(); b += 2) {
        const int64_t s0 = g.starts[b], s1 = g.starts[b + 1];
        float* c = out + nt * kCols * g.Qp + static_cast<int64_t>(b) * 16;
        if (ct == 0) {
          _tile_zero(0);
          _tile_zero(1);
          _tile_zero(2);
          _tile_zero(3);
        } else {
          _tile_loadd(0, c, ostride);
          _tile_loadd(1, c + 16, ostride);
          _tile_loadd(2, c + kCols * g.Qp, ostride);
          _tile_loadd(3, c + kCols * g.Qp + 16, ostride);
        }
        for (int64_t o = 0; o < pk.ks; ++o) {
          _tile_loadd(4, a0 + o * per_offset, 64);
          _tile_loadd(5, a1 + o * per_offset, 64);
            _tile_loadd(6, xc + s0 + offsets[o], xstride);
          _tile_loadd(7, xc + s1 + offsets[o], xstride);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
        _tile_stored(0, c, ostride);
        _tile_stored(1, c + 16, ostride);
        _tile_stored(2, c + kCols * g.Qp, ostride);
        _tile_stored(3, c + kCols * g.Qp + 16, ostride);
      }
    }
  }
  _tile_release();
}

// out[j * Ho * Wo + oy * Wo + ox] = c[j * Qp + oy * R + ox] * u1 * u2 for j < cols (two
// power-of-two factors: their product may lie outside float32's range when the result does not).
__attribute__((target("avx512f"))) void compact(const float* c, const Geometry& g, int64_t cols, float u1,
                                                float u2, float* out) {
  const __m512 vu = _mm512_set1_ps(u1), vu2 = _mm512_set1_ps(u2);
  for (int64_t j = 0; j < cols; ++j) {
    for (int64_t oy = 0; oy < g.Ho; ++oy) {
      const float* src = c + j * g.Qp + oy * g.R;
      float* dst = out + (j * g.Ho + oy) * g.Wo;
      for (int64_t ox = 0; ox < g.Wo; ox += 16) {
        const int64_t n = std::min<int64_t>(16, g.Wo - ox);
        const __mmask16 k = static_cast<__mmask16>(n == 16 ? 0xFFFFu : (1u << n) - 1u);
        _mm512_mask_storeu_ps(dst + ox, k, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, src + ox), vu), vu2));
      }
    }
  }
}


// The squares of one pair of voltage rows (b may be null: zeros) as bfloat16 pairs for positions
// < m16 (masked at m). kScaled: the voltages times two_t first (the squares times 2^2t), and
// min_nz tracks the smallest nonzero scaled square; otherwise both are left alone.
template <bool kScaled>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void square_pair(const float* a, const float* b,
                                                                        int64_t m, float two_t, uint32_t* dst,
                                                                        __m512* min_nz) {
  const __m512 s = _mm512_set1_ps(two_t), zero = _mm512_setzero_ps();
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                              22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int64_t i = 0; i < m; i += 16) {
    const int64_t n = std::min<int64_t>(16, m - i);
    const __mmask16 k = static_cast<__mmask16>(n == 16 ? 0xFFFFu : (1u << n) - 1u);
    __m512 va = _mm512_maskz_loadu_ps(k, a + i);
    if (kScaled) va = _mm512_mul_ps(va, s);
    va = _mm512_mul_ps(va, va);
    __m512 vb = zero;
    if (b) {
      vb = _mm512_maskz_loadu_ps(k, b + i);
      if (kScaled) vb = _mm512_mul_ps(vb, s);
      vb = _mm512_mul_ps(vb, vb);
    }
    if (kScaled) {
      *min_nz = _mm512_mask_min_ps(*min_nz, _mm512_cmp_ps_mask(va, zero, _CMP_GT_OQ), *min_nz, va);
      *min_nz = _mm512_mask_min_ps(*min_nz, _mm512_cmp_ps_mask(vb, zero, _CMP_GT_OQ), *min_nz, vb);
    }
    const __m512i h = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(vb, va));
    _mm512_storeu_si512(dst + i, _mm512_permutexvar_epi16(interleave, h));
  }
}

// square_pair over the K rows of v (pairs of rows to sq's rows, ldq apart); returns the smallest
// nonzero scaled square when kScaled (inf when none), else inf.
template <bool kScaled>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) float square_rows_bf16(const float* v, int64_t ldv,
                                                                              int64_t K, int64_t m, float two_t,
                                                                              uint32_t* sq, int64_t ldq) {
  __m512 min_nz = _mm512_set1_ps(INFINITY);
  for (int64_t r = 0; r < (K + 1) / 2; ++r) {
    const float* a = v + 2 * r * ldv;
    square_pair<kScaled>(a, 2 * r + 1 < K ? a + ldv : nullptr, m, two_t, sq + r * ldq, &min_nz);
  }
  alignas(64) float l[16];
  _mm512_store_ps(l, min_nz);
  float mn = l[0];
  for (int i = 1; i < 16; ++i) mn = std::min(mn, l[i]);
  return mn;
}

// One 16-position block against NC (1-4) 16-column blocks: C in tiles 0..NC-1. The squares
// are loaded once per 32 rows (the filter tiles of a read, a few KiB, stay in L1); operand tiles
// alternate (V in 4 / 6, squares in 5 / 7) so that a load need not wait for the product still
// reading the previous one.
template <int NC>
__attribute__((target("amx-tile,amx-bf16"))) void tile_block(const uint16_t* a, int64_t k_blocks, int64_t kbn,
                                                              const uint32_t* sq, int64_t ldq, float* out,
                                                              int64_t ldo) {
  const int64_t cstride = k_blocks * kTile;
  _tile_zero(0);
  if (NC > 1) _tile_zero(1);
  if (NC > 2) _tile_zero(2);
  if (NC > 3) _tile_zero(3);
  int64_t kb = 0;
  for (; kb + 2 <= kbn; kb += 2) {
    const uint16_t* ak = a + kb * kTile;
    _tile_loadd(5, sq + kb * 16 * ldq, ldq * 4);
    _tile_loadd(7, sq + (kb + 1) * 16 * ldq, ldq * 4);
    _tile_loadd(4, ak, 64);
    _tile_dpbf16ps(0, 4, 5);
    _tile_loadd(6, ak + kTile, 64);
    _tile_dpbf16ps(0, 6, 7);
    if (NC > 1) {
      _tile_loadd(4, ak + cstride, 64);
      _tile_dpbf16ps(1, 4, 5);
      _tile_loadd(6, ak + cstride + kTile, 64);
      _tile_dpbf16ps(1, 6, 7);
    }
    if (NC > 2) {
      _tile_loadd(4, ak + 2 * cstride, 64);
      _tile_dpbf16ps(2, 4, 5);
      _tile_loadd(6, ak + 2 * cstride + kTile, 64);
      _tile_dpbf16ps(2, 6, 7);
    }
    if (NC > 3) {
      _tile_loadd(4, ak + 3 * cstride, 64);
      _tile_dpbf16ps(3, 4, 5);
      _tile_loadd(6, ak + 3 * cstride + kTile, 64);
      _tile_dpbf16ps(3, 6, 7);
    }
  }
  if (kb < kbn) {
    const uint16_t* ak = a + kb * kTile;
    _tile_loadd(5, sq + kb * 16 * ldq, ldq * 4);
    _tile_loadd(4, ak, 64);
    _tile_dpbf16ps(0, 4, 5);
    if (NC > 1) {
      _tile_loadd(6, ak + cstride, 64);
      _tile_dpbf16ps(1, 6, 5);
    }
    if (NC > 2) {
      _tile_loadd(4, ak + 2 * cstride, 64);
      _tile_dpbf16ps(2, 4, 5);
    }
    if (NC > 3) {
      _tile_loadd(6, ak + 3 * cstride, 64);
      _tile_dpbf16ps(3, 6, 5);
    }
  }
  _tile_stored(0, out, ldo * 4);
  if (NC > 1) _tile_stored(1, out + 16 * ldo, ldo * 4);
  if (NC > 2) _tile_stored(2, out + 32 * ldo, ldo * 4);
  if (NC > 3) _tile_stored(3, out + 48 * ldo, ldo * 4);
}

__attribute__((target("amx-tile,amx-bf16"))) void tile_reads(const uint16_t* a, int64_t k_blocks, int64_t kbn,
                                                              int64_t nb, const uint32_t* sq, int64_t ldq,
                                                              int64_t pbs, float* out, int64_t ldo) {
  load_tile_config(TileConfig::all_16_by_64());
  for (int64_t cb = 0; cb < nb; cb += 4) {
    const uint16_t* ab = a + cb * k_blocks * kTile;
    for (int64_t pb = 0; pb < pbs; ++pb) {
      float* o = out + cb * 16 * ldo + pb * 16;
      const uint32_t* b = sq + pb * 16;
      switch (std::min<int64_t>(4, nb - cb)) {
        case 1: tile_block<1>(ab, k_blocks, kbn, b, ldq, o, ldo); break;
        case 2: tile_block<2>(ab, k_blocks, kbn, b, ldq, o, ldo); break;
        case 3: tile_block<3>(ab, k_blocks, kbn, b, ldq, o, ldo); break;
        default: tile_block<4>(ab, k_blocks, kbn, b, ldq, o, ldo); break;
      }
    }
  }
  _tile_release();
}

#endif

}  // namespace

VarianceConvPack pack_variance_conv(const float* V, int64_t K, int64_t N, int64_t groups, int64_t Cg) {
  VarianceConvPack p;
#ifdef MEMCC_VCONV_AMX
  if (!variance_amx_available() || !cpu_has_bf16_vectors() || K <= 0 || N <= 0 || groups <= 0 || Cg <= 0 ||
      K % Cg != 0 || N % groups != 0) {
    return p;
  }
  p.groups = groups;
  p.Cg = Cg;
  p.Ng = N / groups;
  p.ks = K / Cg;
  p.c_tiles = (Cg + kChannels - 1) / kChannels;
  p.n_tiles = 2 * ((p.Ng + 2 * kCols - 1) / (2 * kCols));
  int sexp = 0;
  if (!split_exponents(V, K * N, K, &p.x_exp, &sexp)) return VarianceConvPack{};
  if (sexp > 126 || sexp < -126) return p;  // the scale must be a float32 normal
  const float scale = std::ldexp(1.0f, sexp);
  p.v_unscale = std::ldexp(1.0f, -(std::ilogb(scale)));
  p.tiles.assign(static_cast<size_t>(groups * p.n_tiles * p.ks * p.c_tiles * kTile), 0);
  for (int64_t h = 0; h < groups; ++h) {
    for (int64_t nt = 0; nt < p.n_tiles; ++nt) {
      for (int64_t o = 0; o < p.ks; ++o) {
        for (int64_t ct = 0; ct < p.c_tiles; ++ct) {
          uint16_t* t = p.tiles.data() + (((h * p.n_tiles + nt) * p.ks + o) * p.c_tiles + ct) * kTile;
          for (int64_t j = 0; j < kCols; ++j) {
            const int64_t col = nt * kCols + j;
            if (col >= p.Ng) break;
            for (int64_t c = 0; c < kChannels; ++c) {
              const int64_t ch = ct * kChannels + c;
              if (ch >= Cg) break;
              t[j * kChannels + c] = to_bf16(V[(ch * p.ks + o) * N + h * p.Ng + col] * scale);
            }
          }
        }
      }
    }
  }
#else
  (void)V, (void)K, (void)N, (void)groups, (void)Cg;
#endif
  return p;
}

bool variance_conv(const VarianceConvPack& pk, const LayerPlan& plan, const float* x, float* var,
                   const TaskRunner& runner) {
#ifdef MEMCC_VCONV_AMX
  const Im2colShape& s = plan.patch;
  if (pk.empty() || pk.groups != plan.group || pk.Cg != s.channels || pk.Ng != plan.group_cols ||
      pk.ks != s.kernel_size() || s.in[0] != 1 || s.kernel[0] != 1 || s.out[0] != 1) {
    return false;
  }
  for (int d = 0; d < 3; ++d) {
    if (s.stride[d] != 1) return false;
  }
  Geometry g;
  g.H = s.in[1];
  g.W = s.in[2];
  g.Ho = s.out[1];
  g.Wo = s.out[2];
  g.kh = s.kernel[1];
  g.kw = s.kernel[2];
  g.dh = s.dilation[1];
  g.dw = s.dilation[2];
  g.pt = s.pad_begin[1];
  g.pl = s.pad_begin[2];
  // Stride 1: the padded image is exactly as large as the outputs plus the kernel's extent.
  g.Hp = g.Ho + (g.kh - 1) * g.dh;
  g.Wp = g.Wo + (g.kw - 1) * g.dw;
  if (g.Ho <= 0 || g.Wo <= 0 || g.pt < 0 || g.pl < 0 || g.pt + g.H > g.Hp || g.pl + g.W > g.Wp) return false;
  const int64_t row_blocks = (g.Wo + 15) / 16;
  if (g.Ho * row_blocks * 16 < g.Ho * g.Wp) {
    g.R = row_blocks * 16;
    for (int64_t oy = 0; oy < g.Ho; ++oy) {
      for (int64_t bx = 0; bx < row_blocks; ++bx) g.starts.push_back(oy * g.Wp + bx * 16);
    }
  } else {
    g.R = g.Wp;
    for (int64_t q = 0; q < g.Ho * g.Wp; q += 16) g.starts.push_back(q);
  }
  if (g.starts.size() % 2 != 0) g.starts.push_back(g.starts.back());  // computed twice, one kept
  g.Qp = static_cast<int64_t>(g.starts.size()) * 16;
  const int64_t max_off = (g.kh - 1) * g.dh * g.Wp + (g.kw - 1) * g.dw;
  // Rows of a tile load are FL pairs apart: an odd number of cache lines, so that they spread
  // over the L1 sets.
  g.FL = (std::max(g.Hp * g.Wp, g.starts.back() + 16 + max_off) + 15) / 16 * 16;
  if (g.FL / 16 % 2 == 0) g.FL += 16;
  std::vector<int64_t> offsets(static_cast<size_t>(pk.ks));
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    for (int64_t kx = 0; kx < g.kw; ++kx) offsets[static_cast<size_t>(ky * g.kw + kx)] = ky * g.dh * g.Wp + kx * g.dw;
  }
  const int64_t B = plan.batch, G = plan.group, N = plan.N, Ng = plan.group_cols, P = g.Ho * g.Wo;
  const int64_t plane = g.H * g.W, pairs = pk.c_tiles * 16;
  std::atomic<bool> ok{true};
  run_tasks(runner, B * G, [&](size_t t) {
    if (!ok.load(std::memory_order_relaxed)) return;
    const int64_t b = static_cast<int64_t>(t) / G, h = static_cast<int64_t>(t) % G;
    const float* xg = x + (b * plan.channels + h * pk.Cg) * plane;
    const uint32_t mx_bits = abs_max_bits(xg, pk.Cg * plane);
    float mx = 0.0f;
    std::memcpy(&mx, &mx_bits, sizeof mx);
    float* out = var + (b * N + h * Ng) * P;
    if (mx_bits >= 0x7F800000u) {
      ok = false;
      return;
    }
    if (mx == 0.0f) {
      std::fill(out, out + Ng * P, 0.0f);
      return;
    }
    // x * 2^t: the largest square below 2^x_exp (and at least 2^(x_exp - 4)).
    int e = 0;
    std::frexp(mx, &e);  // mx in [2^(e-1), 2^e): mx^2 < 2^(2e)
    const int tx = static_cast<int>(std::floor((pk.x_exp - 2 * e) / 2.0));
    if (tx > 63 || tx < -63) {  // 2^t and 2^-2t must be float32 normals
      ok = false;
      return;
    }
    thread_local CacheLineVector<uint32_t> xb;
    thread_local CacheLineVector<float> cbuf;
    thread_local std::vector<float> pm;
    xb.resize(static_cast<size_t>(pairs * g.FL));
    pm.resize(static_cast<size_t>(plane));
    cbuf.resize(static_cast<size_t>(pk.n_tiles * kCols * g.Qp));
    convert_input(xg, pk.Cg, g, std::ldexp(1.0f, tx), pairs, xb.data(), pm.data());
    // A nonzero pixel whose largest square is below 1/4 could hold a patch's largest term:
    // bfloat16 denormals (flushed) would then drop terms the bound keeps.
    for (int64_t i = 0; i < plane; ++i) {
      if (pm[static_cast<size_t>(i)] > 0.0f && pm[static_cast<size_t>(i)] < 0.25f) {
        ok = false;
        return;
      }
    }
    amx_conv(pk, h, g, offsets.data(), xb.data(), cbuf.data());
    compact(cbuf.data(), g, Ng, std::ldexp(1.0f, -2 * tx), pk.v_unscale, out);
  });
  return ok.load();
#else
  (void)pk, (void)plan, (void)x, (void)var, (void)runner;
  return false;
#endif
}

// ---- Conv ADC path ----------------------------------------------------------------------------

namespace {
int64_t blocks16(int64_t n) { return (n + 15) / 16; }
}  // namespace

TileVariancePack pack_tile_variance(const float* V, int64_t K, int64_t groups, int64_t Ng, int64_t tc) {
  TileVariancePack p;
#ifdef MEMCC_VCONV_AMX
  if (!variance_amx_available() || !cpu_has_bf16_vectors() || K <= 0 || groups <= 0 || Ng <= 0 || tc <= 0) return p;
  const int64_t N = groups * Ng;
  int sexp = 0;
  if (!split_exponents(V, K * N, K, &p.x_exp, &sexp)) return TileVariancePack{};
  sexp -= sexp & 1;  // even: the square root of the unscaling factor is exact
  if (sexp > 126 || sexp < -126) return p;
  p.v_root_unscale = std::ldexp(1.0f, -sexp / 2);
  const float scale = std::ldexp(1.0f, sexp);
  p.K = K;
  p.groups = groups;
  p.Ng = Ng;
  p.tc = std::min(tc, Ng);
  p.k_blocks = (K + kChannels - 1) / kChannels;
  for (int64_t c0 = 0; c0 < Ng; c0 += p.tc) p.col_blocks += blocks16(std::min(p.tc, Ng - c0));
  p.tiles.assign(static_cast<size_t>(groups * p.col_blocks * p.k_blocks * kTile), 0);
  for (int64_t h = 0; h < groups; ++h) {
    int64_t cb = 0;
    for (int64_t c0 = 0; c0 < Ng; c0 += p.tc) {
      const int64_t nc = std::min(p.tc, Ng - c0);
      for (int64_t b = 0; b < blocks16(nc); ++b, ++cb) {
        for (int64_t kb = 0; kb < p.k_blocks; ++kb) {
          uint16_t* t = p.tiles.data() + ((h * p.col_blocks + cb) * p.k_blocks + kb) * kTile;
          for (int64_t j = 0; j < 16 && b * 16 + j < nc; ++j) {
            for (int64_t c = 0; c < kChannels && kb * kChannels + c < K; ++c) {
              t[j * kChannels + c] = to_bf16(V[(kb * kChannels + c) * N + h * Ng + c0 + b * 16 + j] * scale);
            }
          }
        }
      }
    }
  }
#else
  (void)V, (void)K, (void)groups, (void)Ng, (void)tc;
#endif
  return p;
}

bool tile_squares(const TileVariancePack& pk, const float* v, int64_t ldv, int64_t m, uint32_t* sq, int64_t ldq,
                  float* root_unscale, const SquareBounds& known) {
#ifdef MEMCC_VCONV_AMX
  if (pk.empty()) return false;
  const int64_t m16 = blocks16(m) * 16, rows = pk.k_blocks * 16;
  // V's scaled maximum lies in [2^(v_exp - 2), 2^v_exp) (its scale exponent is even), so a term
  // below 2^-126 (flushed) is within the spec's 2^-124 max_k v_k^2 max V of a read whose largest
  // square is at least lo when lo >= 2^-v_exp.
  const int v_exp = kExpBudget - ceil_log2(pk.K) - pk.x_exp;
  if (known.hi > 0.0 && known.hi < std::ldexp(1.0, pk.x_exp - 1) && known.lo >= std::ldexp(1.0, -v_exp)) {
    square_rows_bf16<false>(v, ldv, pk.K, m, 1.0f, sq, ldq);
    for (int64_t r = (pk.K + 1) / 2; r < rows; ++r) std::fill(sq + r * ldq, sq + r * ldq + m16, 0u);
    *root_unscale = pk.v_root_unscale;
    return true;
  }
  uint32_t mx_bits = 0;
  for (int64_t k = 0; k < pk.K; ++k) mx_bits = std::max(mx_bits, abs_max_bits(v + k * ldv, m));
  if (mx_bits >= 0x7F800000u) return false;
  if (mx_bits == 0) {
    for (int64_t r = 0; r < rows; ++r) std::fill(sq + r * ldq, sq + r * ldq + m16, 0u);
    *root_unscale = 0.0f;
    return true;
  }
  float mx = 0.0f;
  std::memcpy(&mx, &mx_bits, sizeof mx);
  int e = 0;
  std::frexp(mx, &e);  // |v| < 2^e: v^2 2^2t < 2^(2e + 2t) <= 2^x_exp
  const int t = static_cast<int>(std::floor((pk.x_exp - 2 * e) / 2.0));
  if (t > 63 || t < -63) return false;
  const float min_nz = square_rows_bf16<true>(v, ldv, pk.K, m, std::ldexp(1.0f, t), sq, ldq);
  for (int64_t r = (pk.K + 1) / 2; r < rows; ++r) std::fill(sq + r * ldq, sq + r * ldq + m16, 0u);
  // A nonzero square below 1/4 could be a read's largest: bfloat16's flushed denormals could
  // then drop terms the bound keeps (variance_conv.h).
  if (min_nz < 0.25f) return false;
  *root_unscale = std::ldexp(pk.v_root_unscale, -t);
  return true;
#else
  (void)pk, (void)v, (void)ldv, (void)m, (void)sq, (void)ldq, (void)root_unscale, (void)known;
  return false;
#endif
}

bool tile_variance_read(const TileVariancePack& pk, int64_t h, int64_t c0, int64_t k0, int64_t kc, const uint32_t* sq,
                        int64_t ldq, int64_t m, float* out, int64_t ldo) {
#ifdef MEMCC_VCONV_AMX
  if (pk.empty() || k0 % kChannels != 0 || (kc % kChannels != 0 && k0 + kc != pk.K) || k0 + kc > pk.K) return false;
  const int64_t nc = std::min(pk.tc, pk.Ng - c0);
  if (m <= 0 || nc <= 0) return true;
  const int64_t first = c0 / pk.tc * blocks16(pk.tc);
  const uint16_t* a = pk.tiles.data() + ((h * pk.col_blocks + first) * pk.k_blocks + k0 / kChannels) * kTile;
  tile_reads(a, pk.k_blocks, (kc + kChannels - 1) / kChannels, blocks16(nc), sq + k0 / 2 * ldq, ldq, blocks16(m), out,
             ldo);
  return true;
#else
  (void)pk, (void)h, (void)c0, (void)k0, (void)kc, (void)sq, (void)ldq, (void)m, (void)out, (void)ldo;
  return false;
#endif
}

}  // namespace memcc
