#include "max_pool.h"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "simd_dispatch.h"

namespace memcc {
namespace {

// a NaN wins (v != v), so the result does not depend on the order a window is visited in.
inline float max_nan(float m, float v) { return (v > m || v != v) ? v : m; }

// acc[i] = max(acc[i], row[i]): the window's rows folded first, contiguous (vectorises).
MEMCC_SIMD_CLONES_WIDE void fold_row(float* acc, const float* row, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] = max_nan(acc[i], row[i]);
}

// out[t] = max of acc[t * w .. t * w + w - 1]; pairs (2 x 2 pools, the common case) apart.
MEMCC_SIMD_CLONES_WIDE void fold_windows(const float* acc, int64_t n, int64_t w, float* out) {
  if (w == 2) {
    for (int64_t t = 0; t < n; ++t) out[t] = max_nan(acc[2 * t], acc[2 * t + 1]);
    return;
  }
  for (int64_t t = 0; t < n; ++t) {
    float m = acc[t * w];
    for (int64_t a = 1; a < w; ++a) m = max_nan(m, acc[t * w + a]);
    out[t] = m;
  }
}

}  // namespace

void max_pool(const float* y, const std::vector<int64_t>& y_shape, const std::vector<int64_t>& window, float* out,
              const TaskRunner& runner) {
  const size_t n = window.size();
  if (y_shape.size() != n + 2 || n < 1 || n > 3) return;
  int64_t in[3] = {1, 1, 1}, w[3] = {1, 1, 1}, o[3] = {1, 1, 1};
  for (size_t d = 0; d < n; ++d) {
    in[3 - n + d] = y_shape[2 + d];
    w[3 - n + d] = window[d];
    o[3 - n + d] = y_shape[2 + d] / window[d];
  }
  const int64_t planes = y_shape[0] * y_shape[1];
  const int64_t in_plane = in[0] * in[1] * in[2], out_plane = o[0] * o[1] * o[2];
  if (planes <= 0 || out_plane <= 0) return;
  // Planes per task: enough outputs that a task outweighs the pool's per-task cost.
  const int64_t per_task = std::max<int64_t>(1, (int64_t{1} << 14) / out_plane);
  run_tasks(runner, (planes + per_task - 1) / per_task, [&](size_t task) {
    const int64_t p0 = static_cast<int64_t>(task) * per_task, p1 = std::min(planes, p0 + per_task);
    const int64_t width = o[2] * w[2];  // the row's positions that whole windows cover
    std::vector<float> acc(static_cast<size_t>(width));
    for (int64_t p = p0; p < p1; ++p) {
      const float* yp = y + p * in_plane;
      float* op = out + p * out_plane;
      for (int64_t t0 = 0; t0 < o[0]; ++t0) {
        for (int64_t t1 = 0; t1 < o[1]; ++t1) {
          auto row = [&](int64_t a0, int64_t a1) { return yp + ((t0 * w[0] + a0) * in[1] + t1 * w[1] + a1) * in[2]; };
          std::copy(row(0, 0), row(0, 0) + width, acc.begin());
          for (int64_t a0 = 0; a0 < w[0]; ++a0) {
            for (int64_t a1 = a0 == 0 ? 1 : 0; a1 < w[1]; ++a1) fold_row(acc.data(), row(a0, a1), width);
          }
          fold_windows(acc.data(), o[2], w[2], op + (t0 * o[1] + t1) * o[2]);
        }
      }
    }
  });
}

}  // namespace memcc
