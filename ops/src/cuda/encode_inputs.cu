// Conv patches as rows (im2col) and the input side of steps 1-5: per-vector scale, normalise,
// DAC, voltages, I-V function. One warp per input vector for the encoding (its max |x| is a warp
// reduction), one thread per element for the patches.
#include <cuda_runtime.h>

#include "crossbar_cuda.h"
#include "device_math.cuh"
#include "launch.cuh"

namespace memcc {
namespace cuda {
namespace {

__global__ void im2col_kernel(const float* x, Im2colShape s, int64_t batch, int64_t groups, float* cols) {
  const int64_t ksize = s.kernel[0] * s.kernel[1] * s.kernel[2];
  const int64_t K = s.channels * ksize;
  const int64_t P = s.out[0] * s.out[1] * s.out[2];
  const int64_t in_size = s.in[0] * s.in[1] * s.in[2];
  const int64_t total = groups * batch * P * K;
  for (int64_t e = first_index(); e < total; e += grid_stride()) {
    const int64_t k = e % K;
    const int64_t row = (e / K) % (batch * P);
    const int64_t h = e / (K * batch * P);
    const int64_t b = row / P, p = row % P;
    const int64_t c = k / ksize, o = k % ksize;
    const int64_t o2 = o % s.kernel[2], o1 = (o / s.kernel[2]) % s.kernel[1], o0 = o / (s.kernel[2] * s.kernel[1]);
    const int64_t p2 = p % s.out[2], p1 = (p / s.out[2]) % s.out[1], p0 = p / (s.out[2] * s.out[1]);
    const int64_t i0 = p0 * s.stride[0] - s.pad_begin[0] + o0 * s.dilation[0];
    const int64_t i1 = p1 * s.stride[1] - s.pad_begin[1] + o1 * s.dilation[1];
    const int64_t i2 = p2 * s.stride[2] - s.pad_begin[2] + o2 * s.dilation[2];
    float v = 0.0f;
    if (i0 >= 0 && i0 < s.in[0] && i1 >= 0 && i1 < s.in[1] && i2 >= 0 && i2 < s.in[2]) {
      const int64_t channel = (b * groups + h) * s.channels + c;  // of X [B, C, ...]
      v = x[channel * in_size + (i0 * s.in[1] + i1) * s.in[2] + i2];
    }
    cols[e] = v;
  }
}

__global__ void encode_kernel(const float* x, int64_t vectors, int64_t K, EncodeSpec spec, float* out,
                              float* scale) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const float levels = spec.dac_bits > 0 ? ldexpf(1.0f, spec.dac_bits - 1) - 1.0f : 0.0f;
  for (int64_t v = first_index() / 32; v < vectors; v += warps) {
    const float* xi = x + v * K;
    float* oi = out + v * K;
    float s = spec.input_range;
    if (!(s > 0.0f)) {
      float m = 0.0f;
      for (int64_t k = lane; k < K; k += 32) m = fmaxf(m, fabsf(xi[k]));
      for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
      s = m;
    }
    if (lane == 0) scale[v] = s;
    const bool live = s > 0.0f;  // s = 0: the crossbar sees no input
    const float inv_s = live ? 1.0f / s : 0.0f;
    for (int64_t k = lane; k < K; k += 32) {
      oi[k] = live ? encode_value(xi[k], inv_s, levels, spec.v_max, spec.iv_a, spec.iv_b) : 0.0f;
    }
  }
}

}  // namespace

void im2col_rows(const float* x, const Im2colShape& shape, int64_t batch, int64_t groups, float* cols,
                 void* stream) {
  const int64_t total = groups * batch * shape.positions() * shape.rows();
  if (total == 0) return;
  im2col_kernel<<<element_blocks(total), kElementThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, shape, batch,
                                                                                                groups, cols);
  check_launch("im2col");
}

void encode_rows(const float* x, int64_t vectors, int64_t K, const EncodeSpec& spec, float* out, float* scale,
                 void* stream) {
  if (vectors == 0) return;
  const int64_t threads = vectors * 32;
  encode_kernel<<<element_blocks(threads), kElementThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, vectors, K, spec, out, scale);
  check_launch("encoding the input vectors");
}

}  // namespace cuda
}  // namespace memcc
