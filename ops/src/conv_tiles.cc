#include "conv_tiles.h"

#include <algorithm>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MEMCC_CONV_TILES_X86 1
#else
#define MEMCC_CONV_TILES_X86 0
#endif

namespace memcc {
namespace {

constexpr int64_t B = kConvTileBlock;
// Positions per micro-tile: three 16-float vectors (the AVX-512 kernel; the plain one matches).
constexpr int64_t kTilePositions = 48;

// Blocks of a column tile of nc columns, and where tile c0's blocks start within a group.
int64_t blocks_of(int64_t nc) { return (nc + B - 1) / B; }
int64_t first_block(const ConvTilePack& p, int64_t c0) { return c0 / p.tc * blocks_of(p.tc); }

// rows (<= 8) columns of one block against `count` (<= 32) positions.
struct Micro {
  const float* panel;  // the block at row k0
  int64_t kc;
  const float* v;
  int64_t ldv;
  int64_t count;
  float* out;
  int64_t ldo;
  bool accumulate;
};

void micro_generic(const Micro& t, int64_t rows) {
  float acc[B][kTilePositions] = {};
  for (int64_t k = 0; k < t.kc; ++k) {
    const float* vk = t.v + k * t.ldv;
    const float* w = t.panel + k * B;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < t.count; ++i) acc[r][i] += w[r] * vk[i];
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* o = t.out + r * t.ldo;
    for (int64_t i = 0; i < t.count; ++i) o[i] = t.accumulate ? o[i] + acc[r][i] : acc[r][i];
  }
}

#if MEMCC_CONV_TILES_X86
// R columns x NV (1 to 3) vectors of positions in R NV zmm accumulators; the last vector masked.
// (The loops over R are unrolled by pragma: GCC otherwise leaves the accumulator arrays in memory
// and stores them on every k.)
template <int R, int NV>
__attribute__((target("avx512f"))) void kernel_avx512(const Micro& t) {
  const int64_t tail = t.count - 16 * (NV - 1);
  const __mmask16 last = static_cast<__mmask16>(tail >= 16 ? 0xFFFFu : (1u << tail) - 1u);
  const __mmask16 full = static_cast<__mmask16>(0xFFFF);
  __m512 a0[R], a1[R], a2[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = a2[r] = _mm512_setzero_ps();
  const float* vk = t.v;
  const float* w = t.panel;
  const int64_t kc = t.kc, ldv = t.ldv;
  for (int64_t k = 0; k < kc; ++k, vk += ldv, w += B) {
    // Masked: no read past the row.
    const __m512 x0 = _mm512_maskz_loadu_ps(NV == 1 ? last : full, vk);
    const __m512 x1 = NV >= 2 ? _mm512_maskz_loadu_ps(NV == 2 ? last : full, vk + 16) : _mm512_setzero_ps();
    const __m512 x2 = NV == 3 ? _mm512_maskz_loadu_ps(last, vk + 32) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 wr = _mm512_set1_ps(w[r]);
      a0[r] = _mm512_fmadd_ps(wr, x0, a0[r]);
      if (NV >= 2) a1[r] = _mm512_fmadd_ps(wr, x1, a1[r]);
      if (NV == 3) a2[r] = _mm512_fmadd_ps(wr, x2, a2[r]);
    }
  }
  const __mmask16 m0 = NV == 1 ? last : full, m1 = NV == 2 ? last : full;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* o = t.out + r * t.ldo;
    __m512 v0 = a0[r], v1 = a1[r], v2 = a2[r];
    if (t.accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, o));
      if (NV >= 2) v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, o + 16));
      if (NV == 3) v2 = _mm512_add_ps(v2, _mm512_maskz_loadu_ps(last, o + 32));
    }
    _mm512_mask_storeu_ps(o, m0, v0);
    if (NV >= 2) _mm512_mask_storeu_ps(o + 16, m1, v1);
    if (NV == 3) _mm512_mask_storeu_ps(o + 32, last, v2);
  }
}

template <int R>
__attribute__((target("avx512f"))) void rows_avx512(const Micro& t) {
  if (t.count > 32) {
    kernel_avx512<R, 3>(t);
  } else if (t.count > 16) {
    kernel_avx512<R, 2>(t);
  } else {
    kernel_avx512<R, 1>(t);
  }
}

__attribute__((target("avx512f"))) void micro_avx512(const Micro& t, int64_t rows) {
  switch (rows) {
    case 1: rows_avx512<1>(t); break;
    case 2: rows_avx512<2>(t); break;
    case 3: rows_avx512<3>(t); break;
    case 4: rows_avx512<4>(t); break;
    case 5: rows_avx512<5>(t); break;
    case 6: rows_avx512<6>(t); break;
    case 7: rows_avx512<7>(t); break;
    default: rows_avx512<8>(t); break;
  }
}
#endif

}  // namespace

ConvTilePack pack_conv_tiles(const float* D, int64_t K, int64_t groups, int64_t Ng, int64_t tc) {
  ConvTilePack p;
  p.K = K;
  p.groups = groups;
  p.Ng = Ng;
  p.tc = std::max<int64_t>(1, std::min(tc, Ng));
  for (int64_t c0 = 0; c0 < Ng; c0 += p.tc) p.blocks += blocks_of(std::min(p.tc, Ng - c0));
  p.data.assign(static_cast<size_t>(groups * p.blocks * K * B), 0.0f);
  const int64_t N = groups * Ng;
  for (int64_t h = 0; h < groups; ++h) {
    for (int64_t c0 = 0; c0 < Ng; c0 += p.tc) {
      const int64_t nc = std::min(p.tc, Ng - c0);
      for (int64_t b = 0; b < blocks_of(nc); ++b) {
        float* dst = p.data.data() + ((h * p.blocks + first_block(p, c0) + b) * K) * B;
        const int64_t cols = std::min(B, nc - b * B);
        for (int64_t k = 0; k < K; ++k) {
          const float* src = D + k * N + h * Ng + c0 + b * B;
          std::copy(src, src + cols, dst + k * B);
        }
      }
    }
  }
  return p;
}

void conv_tile_read(const ConvTilePack& pack, int64_t h, int64_t c0, int64_t k0, int64_t kc, const float* v,
                    int64_t ldv, int64_t m, float* out, int64_t ldo, bool accumulate, GemmIsa isa) {
  const int64_t nc = std::min(pack.tc, pack.Ng - c0);
  if (m <= 0 || nc <= 0) return;
  void (*micro)(const Micro&, int64_t) = &micro_generic;
#if MEMCC_CONV_TILES_X86
  if ((isa == GemmIsa::Auto || isa == GemmIsa::Avx512) && small_gemm_best_isa() == GemmIsa::Avx512) {
    micro = &micro_avx512;
  }
#endif
  const float* tile = pack.data.data() + ((h * pack.blocks + first_block(pack, c0)) * pack.K + k0) * B;
  // Positions outer: a micro-tile's slice of the vectors stays in L1 across the column blocks.
  // Micro-tiles of three 16-position vectors, and two where one would be left alone (a
  // one-vector micro-tile runs at a third of the rate): 256 positions as 4 x 48 + 2 x 32.
  for (int64_t i0 = 0, mi = 0; i0 < m; i0 += mi) {
    const int64_t vectors = (m - i0 + 15) / 16;
    mi = std::min(m - i0, (vectors <= 3 || vectors % 3 == 0 ? 3 : 2) * int64_t{16});
    Micro t{nullptr, kc, v + i0, ldv, mi, nullptr, ldo, accumulate};
    for (int64_t b = 0; b * B < nc; ++b) {
      t.panel = tile + b * pack.K * B;
      t.out = out + b * B * ldo + i0;
      micro(t, std::min(B, nc - b * B));
    }
  }
}

}  // namespace memcc
