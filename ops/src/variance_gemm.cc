#include "variance_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

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

// a[k] = bf16(x[k] * s) for k < n, zero up to `padded`.
MEMCC_SIMD_CLONES_WIDE
void convert_row(const float* x, int64_t n, float s, int64_t padded, uint16_t* a) {
  for (int64_t k = 0; k < n; ++k) a[k] = to_bf16(x[k] * s);
  for (int64_t k = n; k < padded; ++k) a[k] = 0;
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

MEMCC_SIMD_CLONES_WIDE
float row_max(const float* x, int64_t n) {
  // 16 running maxima: a single one is a serial chain the compiler may not reorder.
  float lanes[16] = {};
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    for (int l = 0; l < 16; ++l) lanes[l] = lanes[l] < x[k + l] ? x[k + l] : lanes[l];
  }
  float mx = 0.0f;
  for (; k < n; ++k) mx = mx < x[k] ? x[k] : mx;
  for (int l = 0; l < 16; ++l) mx = mx < lanes[l] ? lanes[l] : mx;
  return mx;
}

// out[j] = c[j] * u for j < n.
MEMCC_SIMD_CLONES_WIDE
void scale_copy(const float* c, int64_t n, float u, float* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = c[j] * u;
}

// 2^-floor(log2 m) (m in [1, 2) after scaling) for finite m > 0, else 1.
inline float normalising_scale(float m) {
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
  // Linux hands out the tile data state only on request (ARCH_REQ_XCOMP_PERM, XTILEDATA).
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// tmm0, tmm1: two 16 x 16 float32 accumulators; tmm4: 16 vectors x 32 bfloat16 squares;
// tmm6, tmm7: the two column blocks' 16 x (16 pairs) tiles of V.
__attribute__((target("amx-tile,amx-bf16"))) void amx_product(const uint16_t* a, int64_t lda, int64_t mp,
                                                              int64_t k_tiles, const uint16_t* b0,
                                                              const uint16_t* b1, float* c, int64_t n_pairs,
                                                              int64_t pack_stride) {
  TileConfig cfg;
  for (int t : {0, 1, 4, 6, 7}) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  for (int64_t p = 0; p < n_pairs; ++p) {
    const uint16_t* bp0 = b0 + p * 2 * pack_stride;
    const uint16_t* bp1 = b1 + p * 2 * pack_stride;
    for (int64_t i0 = 0; i0 < mp; i0 += 16) {
      _tile_zero(0);
      _tile_zero(1);
      for (int64_t kt = 0; kt < k_tiles; ++kt) {
        _tile_loadd(4, a + i0 * lda + kt * kRowBlock, lda * 2);
        _tile_loadd(6, bp0 + kt * kTileElems, 64);
        _tile_loadd(7, bp1 + kt * kTileElems, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
      }
      float* cp = c + (p * mp + i0) * 32;
      _tile_stored(0, cp, 32 * 4);
      _tile_stored(1, cp + 16, 32 * 4);
    }
  }
  _tile_release();
}

#endif

struct Buffers {
  std::vector<uint16_t> a;
  std::vector<float> c, row_unscale;
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
                   int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* out, int64_t ldo) {
#ifdef MEMCC_HAS_AMX
  if (pack.empty() || k0 % kRowBlock != 0 || j0 % (2 * kColBlock) != 0 || k0 + kc > pack.K || j0 + nc > pack.N) {
    return false;
  }
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
  } else {
    for (int64_t i = 0; i < m; ++i) mx[i] = row_max(sq + i * ldsq, kc);
  }
  for (int64_t i = 0; i < m; ++i) {
    scale[i] = normalising_scale(mx[i]);
    buf.row_unscale[i] = pack.unscale / scale[i];
  }
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
  } else {
    for (int64_t i = 0; i < m; ++i) convert_row(sq + i * ldsq, kc, scale[i], lda, buf.a.data() + i * lda);
  }
  std::fill(buf.a.begin() + m * lda, buf.a.begin() + mp * lda, uint16_t{0});
  const int64_t nb0 = j0 / kColBlock, kb0 = k0 / kRowBlock;
  const int64_t pack_stride = pack.k_blocks * kTileElems;  // one column block
  const uint16_t* b0 = pack.tiles.data() + nb0 * pack_stride + kb0 * kTileElems;
  amx_product(buf.a.data(), lda, mp, k_tiles, b0, b0 + pack_stride, buf.c.data(), pairs, pack_stride);
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t w = std::min<int64_t>(32, nc - p * 32);
    for (int64_t i = 0; i < m; ++i) {
      scale_copy(buf.c.data() + (p * mp + i) * 32, w, buf.row_unscale[i], out + i * ldo + p * 32);
    }
  }
  return true;
#else
  (void)pack, (void)sq, (void)sq_columns, (void)ldsq, (void)m, (void)k0, (void)kc, (void)j0, (void)nc, (void)out,
      (void)ldo;
  return false;
#endif
}

}  // namespace memcc
