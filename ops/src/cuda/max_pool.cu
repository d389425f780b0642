// Step 10 of docs/op-spec.md on the device: one thread per pooled output, the window's maximum
// (a NaN in the window gives NaN, as the CPU's max_pool does).
#include <cuda_runtime.h>

#include "crossbar_cuda.h"
#include "launch.cuh"

namespace memcc {
namespace cuda {
namespace {

struct PoolShape {
  int64_t planes;
  int64_t in[3], window[3], out[3];  // spatial axes as 3-D, leading unit axes
};

__global__ void max_pool_kernel(const float* y, PoolShape s, float* out) {
  const int64_t out_plane = s.out[0] * s.out[1] * s.out[2];
  const int64_t in_plane = s.in[0] * s.in[1] * s.in[2];
  const int64_t total = s.planes * out_plane;
  for (int64_t e = first_index(); e < total; e += grid_stride()) {
    const int64_t plane = e / out_plane, t = e % out_plane;
    const int64_t t2 = t % s.out[2], t1 = (t / s.out[2]) % s.out[1], t0 = t / (s.out[2] * s.out[1]);
    const float* yp = y + plane * in_plane;
    float m = yp[((t0 * s.window[0]) * s.in[1] + t1 * s.window[1]) * s.in[2] + t2 * s.window[2]];
    for (int64_t a0 = 0; a0 < s.window[0]; ++a0) {
      for (int64_t a1 = 0; a1 < s.window[1]; ++a1) {
        const float* row = yp + ((t0 * s.window[0] + a0) * s.in[1] + t1 * s.window[1] + a1) * s.in[2];
        for (int64_t a2 = 0; a2 < s.window[2]; ++a2) {
          const float v = row[t2 * s.window[2] + a2];
          m = (v > m || v != v) ? v : m;
        }
      }
    }
    out[e] = m;
  }
}

}  // namespace

void max_pool(const float* y, const int64_t* y_shape, const int64_t* window, int spatial_rank, float* out,
              void* stream) {
  if (spatial_rank < 1 || spatial_rank > 3) return;
  PoolShape s{};
  s.planes = y_shape[0] * y_shape[1];
  for (int d = 0; d < 3; ++d) s.in[d] = s.window[d] = s.out[d] = 1;
  for (int d = 0; d < spatial_rank; ++d) {
    const int at = 3 - spatial_rank + d;
    s.in[at] = y_shape[2 + d];
    s.window[at] = window[d];
    s.out[at] = y_shape[2 + d] / window[d];
  }
  const int64_t total = s.planes * s.out[0] * s.out[1] * s.out[2];
  if (total <= 0) return;
  max_pool_kernel<<<element_blocks(total), kElementThreads, 0, static_cast<cudaStream_t>(stream)>>>(y, s, out);
  check_launch("max_pool");
}

}  // namespace cuda
}  // namespace memcc
