// The onnxruntime kernel of ai.memcc::MemristiveMatMul: reads attributes and inputs through the C
// API, keeps the packed conductance matrix for the session, and runs layer_compute on
// onnxruntime's intra-op thread pool.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <onnxruntime_c_api.h>

#include "batched_layer.h"
#include "conv_tiles.h"
#include "layer_plan.h"
#include "variance_gemm.h"
#include "variance_conv.h"
#include "nchwc_conv.h"
#include "op_attributes.h"
#include "ort_access.h"
#include "packed_cache.h"
#include "ort_native.h"
#include "runtime_effects.h"
#include "small_gemm.h"

namespace memcc {

// ONNX Conv pads, [b1..bn, e1..en].
using ConvPads = std::vector<int64_t>;

class MemristiveMatMulKernel {
 public:
  // Parses and validates the attributes: a bad attribute fails session creation.
  // Throws OpError with the node's name in the message.
  MemristiveMatMulKernel(const OrtApi& api, const OrtKernelInfo* info);
  ~MemristiveMatMulKernel();
  MemristiveMatMulKernel(const MemristiveMatMulKernel&) = delete;
  MemristiveMatMulKernel& operator=(const MemristiveMatMulKernel&) = delete;

  // Never throws: every failure becomes an OrtStatus.
  OrtStatus* compute(OrtKernelContext* context) noexcept;

  const std::string& node_name() const { return node_name_; }

 private:
  MemristiveMatMulKernel(const OrtApi& api, KernelSetup setup, const OrtKernelInfo* info);

  // Which engine runs a call (see ops/README.md, "Engines").
  enum class Engine { Blas, NativeIdeal, NativeBatched };

  // The matrices of one G tensor, in the layouts the engines read.
  struct Packed : PackedSource {
    std::vector<float> matrix;   // [K, N]: weight_scale * D (D with the ADC on); OpenBLAS, Gemm
    std::vector<float> weights;  // [N, K]: (weight_scale * D)^T, an ONNX Conv weight (ideal conv)
    std::vector<float> batched;  // pack_batched of D (onnxruntime MatMul engine)
    TileGeometry geometry;       // of `batched`
    std::vector<float> variance;  // [K, N]: sigma^2 sum_s G'^2 (read noise; sigma scaled, variance_sigma)
    VariancePack variance_packed;  // variance for variance_gemm (AMX-BF16 CPUs only)
    std::vector<float> variance_weights;  // [N, K]: variance^T, an ONNX Conv weight (native conv, noise)
    NchwcPlan nchwc;             // ideal 2-D conv through onnxruntime's NCHWc kernels:
    std::vector<float> nchwc_filter;  // `weights` packed for it (nchwc_layout.h), from float
    size_t nchwc_filter_at = 0;       // nchwc_filter_at on: 64-byte aligned
    std::vector<float> nchwc_variance;  // `variance_weights` packed for it (read noise)
    VarianceConvPack variance_conv;     // `variance` for variance_conv (AMX-BF16 CPUs only)
    SmallGemmPack small;         // `matrix` in column panels: ideal matmul with few rows
    ConvTilePack conv_tiles;     // `matrix` (D) in column blocks: conv ADC tile reads
    ConvTilePack variance_tiles;  // `variance` the same way: their read-noise variances
    TileVariancePack tile_variance;  // `variance` for those reads on AMX-BF16 (else empty)
  };

  void create_native_ops(const OrtKernelInfo* info);
  Engine engine_for(const LayerPlan& plan) const;
  const NativeOp* conv_op_for(const ConvPads& pads);
  void compute_or_throw(OrtKernelContext* context);
  std::shared_ptr<const Packed> packed_for(const float* g, const std::vector<int64_t>& g_shape,
                                           const LayerPlan& plan, Engine engine, double time,
                                           const NchwcPlan& nchwc);
  // True when the activation attribute has been applied too. pooled_y (with max_pool, else
  // null): the node's output; *pooled := whether it was written there (pooled) instead of y.
  bool run_native_ideal(OrtKernelContext* context, const LayerPlan& plan, const Packed& packed,
                        const OrtValue* x, const OrtValue* bias, float* y, const ReadNoise* noise,
                        float* pooled_y, bool* pooled);
  std::string where() const;

  const OrtApi& api_;
  std::string node_name_;
  OpAttributes attrs_;
  PackedCache<Packed> packed_;
  std::mutex mutex_;  // guards the conv ops below

  // onnxruntime's kernels, when the standalone-op API works (else every call uses OpenBLAS).
  OrtMemoryInfo* cpu_ = nullptr;
  std::unique_ptr<NativeOp> gemm_;    // matmul mode, ideal: Y = X W + Bias
  std::unique_ptr<NativeOp> matmul_;  // the batched tile products
  std::unique_ptr<NativeOp> max_pool_op_;  // step 10 on NCHW outputs (null: max_pool.h's loop)
  // Conv ops by resolved pads (auto_pad SAME_* pads depend on the input size), created from a
  // copy of the kernel info; guarded by mutex_.
  OrtKernelInfo* info_copy_ = nullptr;
  std::map<ConvPads, std::unique_ptr<NativeOp>> conv_ops_;
  std::atomic<bool> conv_failed_{false};  // written under mutex_, read without it
  // Executions of this node so far: the counter word c of the read-noise stream.
  std::atomic<uint64_t> executions_{0};
  std::string conv_error_;    // guarded by mutex_
  // Ideal 2-D convs: onnxruntime's NCHWc kernels where they apply (nchwc_conv.h), else Conv.
  std::unique_ptr<NchwcConv> nchwc_;
};

}  // namespace memcc
