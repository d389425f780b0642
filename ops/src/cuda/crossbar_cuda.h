// Host interface of the CUDA implementation of docs/op-spec.md. Every function enqueues work on
// `stream` (a cudaStream_t, onnxruntime's compute stream) and returns at once: nothing here
// waits for the device or copies data to the host. Launch failures throw OpError. The header
// needs no CUDA headers, so the onnxruntime glue (cuda_kernel.cc) is plain C++.
#pragma once

#include <cstddef>
#include <cstdint>

#include "im2col.h"

namespace memcc {
namespace cuda {

// ---- Conductances (once per session and drift time) -------------------------------------------

struct PackSpec {
  float g_ref = 0.0f;         // S = 1: the reference column
  float matrix_scale = 1.0f;  // matrix = matrix_scale * D (weight_scale in ideal mode, else 1)
  float sigma2 = 0.0f;        // read noise: variance = sigma^2 sum_s G'^2 (0: no variance matrix)
  // Drift: G' = G tau^(-nu), nu = max(0, nu_mean + nu_std * normal(seed; 0, s, k, n)).
  bool drift = false;
  double nu_mean = 0.0, nu_std = 0.0, log_tau = 0.0;
  uint64_t seed = 0;
};

// G [S, K, N] -> matrix [K, N] and, when sigma2 > 0, variance [K, N]; all device pointers.
void pack_conductances(const float* G, int64_t S, int64_t K, int64_t N, const PackSpec& spec,
                       float* matrix, float* variance, void* stream);

// ---- Input vectors -------------------------------------------------------------------------------

// cols[h][b * P + p][k] = x_k of output position p of image b, group h (conv mode's input
// vectors as rows, zero in the padding). x is [B, C, in...] with C = groups * shape.channels.
void im2col_rows(const float* x, const Im2colShape& shape, int64_t batch, int64_t groups, float* cols,
                 void* stream);

struct EncodeSpec {
  float input_range = 0.0f;  // 0: each vector's own max |x|
  int dac_bits = 0;
  float v_max = 0.3f;
  float iv_a = 0.0f, iv_b = 0.0f;  // iv_b > 0: f(v) = iv_a sinh(iv_b v)
};

// Steps 1-5's input side for `vectors` rows of K values: out[i][k] = f(v_k), scale[i] = s
// (out may equal x).
void encode_rows(const float* x, int64_t vectors, int64_t K, const EncodeSpec& spec, float* out, float* scale,
                 void* stream);

// ---- The crossbar layer ------------------------------------------------------------------------

struct LayerSpec {
  bool conv = false;
  int64_t groups = 1;     // conv groups (1 in matmul mode)
  int64_t rows = 0;       // input vectors per group (matmul: R; conv: B * P)
  int64_t positions = 1;  // conv: P, output positions per image
  int64_t K = 0, N = 0;   // G is [S, K, N]
  int64_t Ng = 0;         // columns per group, N / groups
  int64_t tile_rows = 0;  // resolved: 1..K (K without an ADC)
  int64_t tile_cols = 0;  // resolved: 1..Ng
  bool encoded = false;   // inputs are voltages f(v) with per-vector scales (else X itself, ideal)
  float weight_scale = 1.0f, v_max = 0.3f;
  int adc_bits = 0;
  float adc_overflow_rate = 0.0f;
  bool noise = false;  // read noise (needs the variance matrix)
  uint64_t noise_key = 0, execution = 0;
  bool relu = false;
};

// Scratch (floats) that crossbar_layer needs for this spec.
size_t layer_scratch_floats(const LayerSpec& spec);

// y = the op's output from the encoded (or raw, ideal) input vectors a [groups][rows][K] with
// their scales, the packed matrix (and variance), and the optional bias.
void crossbar_layer(const LayerSpec& spec, const float* a, const float* scale, const float* matrix,
                    const float* variance, const float* bias, float* y, float* scratch, void* stream);

// Step 10: out = max pooling of y ([B, N, D1..Dn], y_shape has n + 2 values, n = spatial_rank
// <= 3) over non-overlapping windows (window: n sizes); out is [B, N, floor(D_d / window_d)...].
void max_pool(const float* y, const int64_t* y_shape, const int64_t* window, int spatial_rank, float* out,
              void* stream);

// ---- Device memory ------------------------------------------------------------------------------

// Makes `device` current on the calling thread (onnxruntime's device for the tensors at hand).
void use_device(int device);
// Persistent buffers (packed conductances): cudaMalloc / cudaFree. Throws OpError on failure.
float* device_alloc_floats(size_t count);
void device_free(void* p) noexcept;
void fill_zero_async(float* p, size_t count, void* stream);
// Throws OpError with `what` when the last launch failed.
void check_launch(const char* what);

}  // namespace cuda
}  // namespace memcc
