// The crossbar read as GEMMs: the effective conductance matrix, packed once per session, and the
// tiled multiply-accumulate with the ADC applied to each tile read (docs/op-spec.md, steps 5-7).
#pragma once

#include <cstdint>

namespace memcc {

struct SmallGemmPack;
struct VariancePack;

// Row-major C = op(A) * B + beta * C, op(A) = A ([M, K]) or A^T (A stored [K, M]) when trans_a.
// OpenBLAS (scipy-openblas32) underneath; throws OpError if a size exceeds its 32-bit ints.
void sgemm(bool trans_a, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
           int64_t ldb, float beta, float* C, int64_t ldc);

// OpenBLAS runs single-threaded inside our tasks; the parallelism is onnxruntime's.
void blas_use_single_thread();

// out[k * N + n] = scale * D[k, n], D = G[0] - G[1] (S = 2) or G[0] - g_ref (S = 1).
// scale = 1 gives D itself (the ADC path reads currents), scale = weight_scale gives W.
void effective_matrix(const float* G, int64_t S, int64_t K, int64_t N, float g_ref, float scale,
                      float* out);

struct AdcTiling {
  int64_t tile_rows = 0;  // > 0 (the caller resolves 0 to K)
  int bits = 8;           // 2..24, or 0: no ADC (the tiles are read for their noise)
  double overflow_rate = 0.0;
};

// Read noise of one block against one column tile (docs/op-spec.md, step 5): squares holds
// f(v)^2 in the layout of v, variance the sigma^2 sum_s G'^2 matrix at the tile's first column
// (rows ldd apart, like D); the block's vectors are q0, q0 + 1, ... and the tile's first column
// is column j0 of G. var_buf holds m * nc floats, z nc floats.
struct TileNoise {
  const float* squares = nullptr;
  // Or (tiled_adc_mac_wide only, squares null): the inputs themselves, squared where they are
  // converted for the tile unit (and into var_buf's room when the pack does not serve).
  const float* inputs = nullptr;
  const float* variance = nullptr;
  const VariancePack* packed = nullptr;  // variance_gemm's copy of the whole matrix, or null
  uint64_t key = 0;
  uint64_t execution = 0;
  int64_t q0 = 0;
  int64_t j0 = 0;
  float* var_buf = nullptr;
  float* z = nullptr;
};

// One block of m input vectors against one column tile of nc columns:
//   acc[i * nc + j] = sum over row tiles r of Quant_r,i(I_r)[j],  I_r = v_i[r] . D[r, j]
// (plus the read-noise term before Quant when `noise` is given; bits = 0: no Quant)
// v holds voltages, as rows (v[i * ldv + k]) or, when v_columns, as columns (v[k * ldv + i]).
// D points at the tile's first column; its rows are ldd apart.
// Scratch: buf holds m * nc floats, scratch nc floats.
void tiled_adc_mac(const float* v, bool v_columns, int64_t ldv, int64_t m, int64_t K, const float* D,
                   int64_t ldd, int64_t nc, const AdcTiling& tiling, float* acc, float* buf,
                   float* scratch, const TileNoise* noise = nullptr);

// tiled_adc_mac over w columns = several column tiles of tc columns (the last may be narrower)
// at once, voltages as rows (v[i * ldv + k]): one sgemm per row tile for all w columns, then the
// ADC per column tile. acc is [m, w] (acc[i * w + j], j counted from D's first column).
// Scratch: buf holds m * w floats, scratch tc floats.
// With `small` (all of D packed by pack_small_gemm, D's first column here being its column n0, a
// multiple of kSmallGemmPanel), the tile reads run on small_gemm_block instead of OpenBLAS, which
// would repack D's slice on every call.
// With `noise` (variance and j0 at D's first column, var_buf m * w floats, z tc floats), every
// read gets its read-noise term before the ADC, as in tiled_adc_mac.
void tiled_adc_mac_wide(const float* v, int64_t ldv, int64_t m, int64_t K, const float* D, int64_t ldd,
                        int64_t w, int64_t tc, const AdcTiling& tiling, float* acc, float* buf, float* scratch,
                        const SmallGemmPack* small = nullptr, int64_t n0 = 0, const TileNoise* noise = nullptr);

// The same product with the reads stored as columns (conv mode, no read noise): v holds the
// block's m voltage vectors as columns (v[k * ldv + i]) and
//   acc[j * ld_acc + i] = sum over row tiles r of Quant_r,i(I_r)[j]
// so acc comes out in Y's [column, position] layout. Each tile read is one sgemm of D's tile
// (transposed) against the voltages, and the ADC runs vectorised across the m vectors.
// Scratch: buf holds nc * m floats, scratch 3 * m + nc floats.
void tiled_adc_mac_columns(const float* v, int64_t ldv, int64_t m, int64_t K, const float* D, int64_t ldd,
                           int64_t nc, const AdcTiling& tiling, float* acc, int64_t ld_acc, float* buf,
                           float* scratch);

}  // namespace memcc
