// One MemristiveMatMul call on the device: picks the epilogue (crossbar_gemm.cuh) for the
// periphery and launches the kernels on the caller's stream.
#include <cuda_runtime.h>

#include <string>

#include "../errors.h"
#include "adc_reads.cuh"
#include "crossbar_cuda.h"
#include "crossbar_gemm.cuh"
#include "launch.cuh"

namespace memcc {
namespace cuda {
namespace {

// Reads that one GEMM block can quantize itself: a column tile within the block's 128 columns
// and Q the read's maximum (the overflow-rate quantile needs the whole read sorted).
bool fused_adc(const LayerSpec& s) {
  return s.adc_bits > 0 && s.tile_cols <= kGemmBN && s.adc_overflow_rate == 0.0f;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

dim3 gemm_grid(const LayerSpec& s, int64_t column_blocks) {
  if (ceil_div(s.rows, kGemmBM) > 0x7fffffff || column_blocks > 65535 || s.groups > 65535) {
    throw OpError("CUDA: layer too large for one launch (" + std::to_string(s.rows) + " vectors, " +
                  std::to_string(column_blocks) + " column blocks, " + std::to_string(s.groups) + " groups)");
  }
  return dim3(static_cast<unsigned>(ceil_div(s.rows, kGemmBM)), static_cast<unsigned>(column_blocks),
              static_cast<unsigned>(s.groups));
}

template <Epilogue kEpi>
void launch_gemm(const GemmArgs& args, dim3 grid, cudaStream_t stream) {
  if (args.spec.noise) {
    crossbar_gemm<true, kEpi><<<grid, kGemmThreads, 0, stream>>>(args);
  } else {
    crossbar_gemm<false, kEpi><<<grid, kGemmThreads, 0, stream>>>(args);
  }
  check_launch("crossbar MAC");
}

// Step 8 and the activation over the digital sums of the two-phase ADC path.
__global__ void finish_kernel(GemmArgs g, const float* acc) {
  const LayerSpec& s = g.spec;
  const int64_t total = s.groups * s.rows * s.Ng;
  for (int64_t e = first_index(); e < total; e += grid_stride()) {
    const int64_t col = e % s.Ng, row = (e / s.Ng) % s.rows, h = e / (s.Ng * s.rows);
    write_output(g, h, row, col, acc[e]);
  }
}

}  // namespace

size_t layer_scratch_floats(const LayerSpec& s) {
  if (s.adc_bits == 0 || fused_adc(s)) return 0;
  return static_cast<size_t>(2 * s.groups * s.rows * s.Ng);  // currents of a row tile, digital sums
}

void crossbar_layer(const LayerSpec& s, const float* a, const float* scale, const float* matrix,
                    const float* variance, const float* bias, float* y, float* scratch, void* stream_ptr) {
  if (s.rows == 0 || s.Ng == 0) return;
  const cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  GemmArgs args{s, a, scale, matrix, variance, bias, y, nullptr, 0};
  if (s.adc_bits == 0) {
    launch_gemm<Epilogue::Output>(args, gemm_grid(s, ceil_div(s.Ng, kGemmBN)), stream);
    return;
  }
  if (fused_adc(s)) {
    launch_gemm<Epilogue::AdcFused>(args, gemm_grid(s, ceil_div(s.Ng, s.tile_cols)), stream);
    return;
  }
  // Two phases per row tile: the currents to scratch, then one block per read quantizes them
  // into the digital sums; the sums become Y at the end.
  const int64_t reads = s.groups * s.rows, column_tiles = ceil_div(s.Ng, s.tile_cols);
  if (reads > 0x7fffffff || column_tiles > 65535) throw OpError("CUDA: too many ADC reads for one launch");
  float* cur = scratch;
  float* acc = scratch + reads * s.Ng;
  fill_zero_async(acc, static_cast<size_t>(reads * s.Ng), stream);
  args.store = cur;
  const dim3 grid = gemm_grid(s, ceil_div(s.Ng, kGemmBN));
  const dim3 adc_grid(static_cast<unsigned>(reads), static_cast<unsigned>(column_tiles));
  for (int64_t r = 0; r * s.tile_rows < s.K; ++r) {
    args.row_tile = r;
    launch_gemm<Epilogue::Store>(args, grid, stream);
    adc_reads<<<adc_grid, kAdcThreads, 0, stream>>>(cur, acc, s.Ng, s.tile_cols, s.adc_bits, s.adc_overflow_rate);
    check_launch("ADC");
  }
  finish_kernel<<<element_blocks(reads * s.Ng), kElementThreads, 0, stream>>>(args, acc);
  check_launch("output");
}

}  // namespace cuda
}  // namespace memcc
