// The onnxruntime kernel of ai.memcc::MemristiveMatMul for the CUDA execution provider: inputs
// and output live on the GPU, every kernel runs on onnxruntime's compute stream, scratch comes
// from onnxruntime's device allocator, and nothing waits for the device or copies to the host
// (T, the drift time, is declared a CPU input, so onnxruntime hands it over in host memory).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <onnxruntime_c_api.h>

#include "op_attributes.h"
#include "ort_access.h"
#include "packed_cache.h"

namespace memcc {

class CudaMemristiveMatMulKernel {
 public:
  // Throws OpError (with the node's name) for a bad attribute.
  CudaMemristiveMatMulKernel(const OrtApi& api, const OrtKernelInfo* info);
  CudaMemristiveMatMulKernel(const CudaMemristiveMatMulKernel&) = delete;
  CudaMemristiveMatMulKernel& operator=(const CudaMemristiveMatMulKernel&) = delete;

  // Never throws: every failure becomes an OrtStatus.
  OrtStatus* compute(OrtKernelContext* context) noexcept;

 private:
  CudaMemristiveMatMulKernel(const OrtApi& api, KernelSetup setup);

  // The matrices of one G on the device (cudaMalloc: they live as long as the session needs them).
  struct Packed : PackedSource {
    Packed() = default;
    Packed(const Packed&) = delete;
    Packed& operator=(const Packed&) = delete;
    ~Packed();
    float* matrix = nullptr;    // [K, N]: weight_scale * D (ideal) or D
    float* variance = nullptr;  // [K, N]: sigma^2 sum_s G'^2 (read noise)
  };

  void compute_or_throw(OrtKernelContext* context);
  std::shared_ptr<const Packed> packed_for(const float* g, const std::vector<int64_t>& g_shape, double time,
                                           void* stream);
  // The layer runs on X itself against weight_scale * D (no encoding, no tiles that matter).
  bool ideal() const;
  std::string where() const;

  const OrtApi& api_;
  std::string node_name_;
  OpAttributes attrs_;
  PackedCache<Packed> packed_;
  std::atomic<uint64_t> executions_{0};   // the read-noise counter word c
};

}  // namespace memcc
