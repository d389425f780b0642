// The matrices the layer kernels read, made once per session (and per drift time) from G:
// drift applied per device, then D = G'[0] - G'[1] (or G'[0] - g_ref) scaled, and the read-noise
// variances sigma^2 sum_s G'^2 (docs/op-spec.md, "Drift" and step 5).
#include <cuda_runtime.h>

#include "crossbar_cuda.h"
#include "device_math.cuh"
#include "launch.cuh"

namespace memcc {
namespace cuda {
namespace {

// G'[s, k, n] = G tau^(-nu) with the device's own exponent (the CPU's drift_conductances).
__device__ inline float drifted(float g, const PackSpec& p, int64_t s, int64_t k, int64_t n) {
  if (!p.drift) return g;
  const float z = counter_normal(p.seed, 0, static_cast<uint64_t>(s), static_cast<uint64_t>(k), static_cast<uint64_t>(n));
  double nu = p.nu_mean + p.nu_std * z;
  nu = nu > 0.0 ? nu : 0.0;
  return static_cast<float>(g * exp(-nu * p.log_tau));
}

__global__ void pack_kernel(const float* G, int64_t S, int64_t K, int64_t N, PackSpec spec, float* matrix,
                            float* variance) {
  const int64_t count = K * N;
  for (int64_t e = first_index(); e < count; e += grid_stride()) {
    const int64_t k = e / N, n = e % N;
    const float g0 = drifted(G[e], spec, 0, k, n);
    const float g1 = S == 2 ? drifted(G[count + e], spec, 1, k, n) : 0.0f;
    // The difference is formed in float first, as D is defined; the scale is a second rounding.
    const float d = S == 2 ? g0 - g1 : g0 - spec.g_ref;
    matrix[e] = spec.matrix_scale == 1.0f ? d : spec.matrix_scale * d;
    if (variance) {
      float sum = g0 * g0;
      if (S == 2) sum += g1 * g1;
      variance[e] = spec.sigma2 * sum;
    }
  }
}

}  // namespace

void pack_conductances(const float* G, int64_t S, int64_t K, int64_t N, const PackSpec& spec, float* matrix,
                       float* variance, void* stream) {
  const int64_t count = K * N;
  if (count == 0) return;
  pack_kernel<<<element_blocks(count), kElementThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      G, S, K, N, spec, matrix, spec.sigma2 > 0.0f ? variance : nullptr);
  check_launch("packing the conductances");
}

}  // namespace cuda
}  // namespace memcc
