#include "max_pool.h"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "simd_dispatch.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace memcc {
namespace {

// a NaN wins (v != v), so the result does not depend on the order a window is visited in.
inline float max_nan(float m, float v) { return (v > m || v != v) ? v : m; }

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MEMCC_POOL_AVX512 1
// out[t] = max_nan(acc[2t], acc[2t + 1]), 16 at a time: GCC leaves this strided select scalar
// (a branch per NaN test), which made this loop the slowest part of pooling 8 x 8 planes.
__attribute__((target("avx512f"))) void max_pairs_avx512(const float* acc, int64_t n, float* out) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  for (int64_t t = 0; t < n; t += 16) {
    const int64_t m = std::min<int64_t>(16, n - t);  // outputs; 2m inputs
    const __mmask16 k_lo = static_cast<__mmask16>(m >= 8 ? 0xFFFFu : (1u << (2 * m)) - 1u);
    const __mmask16 k_hi = static_cast<__mmask16>(m <= 8 ? 0u : m == 16 ? 0xFFFFu : (1u << (2 * (m - 8))) - 1u);
    const __m512 a = _mm512_maskz_loadu_ps(k_lo, acc + 2 * t), b = _mm512_maskz_loadu_ps(k_hi, acc + 2 * t + 16);
    const __m512 x = _mm512_permutex2var_ps(a, even, b), y = _mm512_permutex2var_ps(a, odd, b);
    // max_ps returns its second operand when either is NaN; the sum carries the NaN instead.
    const __mmask16 unordered = _mm512_cmp_ps_mask(x, y, _CMP_UNORD_Q);
    const __m512 r = _mm512_mask_add_ps(_mm512_maskz_max_ps(0xFFFF, x, y), unordered, x, y);
    _mm512_mask_storeu_ps(out + t, static_cast<__mmask16>((1u << m) - 1u), r);
  }
}

bool pool_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}
#endif

struct PoolGeometry {
  int64_t in[3], w[3], o[3];  // spatial axes as 3-D (leading unit axes)
  int64_t in_plane, out_plane;
};

// Planes p0..p1-1, all loops in one function (one dispatch per task: the bench CNN's last
// layer has 8 x 8 planes, where calls per row cost more than the rows). Per output row, the
// window's input rows are folded into acc first (contiguous: vectorises), then acc's windows.
MEMCC_SIMD_CLONES_WIDE void pool_planes(const float* y, const PoolGeometry& g, int64_t p0, int64_t p1, float* acc,
                                        float* out) {
  const int64_t width = g.o[2] * g.w[2];  // the row's positions that whole windows cover
  for (int64_t p = p0; p < p1; ++p) {
    const float* yp = y + p * g.in_plane;
    float* op = out + p * g.out_plane;
    for (int64_t t0 = 0; t0 < g.o[0]; ++t0) {
      for (int64_t t1 = 0; t1 < g.o[1]; ++t1) {
        const float* first = yp + ((t0 * g.w[0]) * g.in[1] + t1 * g.w[1]) * g.in[2];
        for (int64_t i = 0; i < width; ++i) acc[i] = first[i];
        for (int64_t a0 = 0; a0 < g.w[0]; ++a0) {
          for (int64_t a1 = a0 == 0 ? 1 : 0; a1 < g.w[1]; ++a1) {
            const float* row = yp + ((t0 * g.w[0] + a0) * g.in[1] + t1 * g.w[1] + a1) * g.in[2];
            for (int64_t i = 0; i < width; ++i) acc[i] = max_nan(acc[i], row[i]);
          }
        }
        float* o = op + (t0 * g.o[1] + t1) * g.o[2];
        if (g.w[2] == 2) {  // 2 x 2 pools, the common case: pairs, no inner loop
#ifdef MEMCC_POOL_AVX512
          if (pool_avx512()) {
            max_pairs_avx512(acc, g.o[2], o);
            continue;
          }
#endif
          for (int64_t t = 0; t < g.o[2]; ++t) o[t] = max_nan(acc[2 * t], acc[2 * t + 1]);
        } else {
          for (int64_t t = 0; t < g.o[2]; ++t) {
            float m = acc[t * g.w[2]];
            for (int64_t a = 1; a < g.w[2]; ++a) m = max_nan(m, acc[t * g.w[2] + a]);
            o[t] = m;
          }
        }
      }
    }
  }
}

}  // namespace

void max_pool(const float* y, const std::vector<int64_t>& y_shape, const std::vector<int64_t>& window, float* out,
              const TaskRunner& runner) {
  const size_t n = window.size();
  if (y_shape.size() != n + 2 || n < 1 || n > 3) return;
  PoolGeometry g{};
  for (int d = 0; d < 3; ++d) g.in[d] = g.w[d] = g.o[d] = 1;
  for (size_t d = 0; d < n; ++d) {
    g.in[3 - n + d] = y_shape[2 + d];
    g.w[3 - n + d] = window[d];
    g.o[3 - n + d] = y_shape[2 + d] / window[d];
  }
  const int64_t planes = y_shape[0] * y_shape[1];
  g.in_plane = g.in[0] * g.in[1] * g.in[2];
  g.out_plane = g.o[0] * g.o[1] * g.o[2];
  if (planes <= 0 || g.out_plane <= 0) return;
  // Planes per task: enough outputs that a task outweighs the pool's per-task cost.
  const int64_t per_task = std::max<int64_t>(1, (int64_t{1} << 14) / g.out_plane);
  run_tasks(runner, (planes + per_task - 1) / per_task, [&](size_t task) {
    const int64_t p0 = static_cast<int64_t>(task) * per_task, p1 = std::min(planes, p0 + per_task);
    std::vector<float> acc(static_cast<size_t>(g.o[2] * g.w[2]));
    pool_planes(y, g, p0, p1, acc.data(), out);
  });
}

}  // namespace memcc
