// The onnxruntime kernel of ai.memcc::MemristiveMatMul: reads attributes and inputs through the C
// API, keeps the packed conductance matrix for the session, and runs layer_compute on
// onnxruntime's intra-op thread pool.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <onnxruntime_c_api.h>

#include "op_attributes.h"

namespace memcc {

class MemristiveMatMulKernel {
 public:
  // Parses and validates the attributes: a bad attribute fails session creation.
  // Throws OpError with the node's name in the message.
  MemristiveMatMulKernel(const OrtApi& api, const OrtKernelInfo* info);

  // Never throws: every failure becomes an OrtStatus.
  OrtStatus* compute(OrtKernelContext* context) noexcept;

  const std::string& node_name() const { return node_name_; }

 private:
  // weight_scale * D (or D, with the ADC on) for one G tensor.
  struct Packed {
    const void* source = nullptr;
    std::vector<int64_t> shape;
    std::vector<float> matrix;
  };

  void compute_or_throw(OrtKernelContext* context);
  std::shared_ptr<const Packed> packed_for(const float* g, const std::vector<int64_t>& g_shape);
  std::string where() const;

  const OrtApi& api_;
  std::string node_name_;
  OpAttributes attrs_;
  // G is an initializer in every model memcc writes, so it is packed once; a G that is a graph
  // input may change between runs behind the same pointer and is packed on every call.
  bool g_is_constant_ = false;
  std::mutex mutex_;
  std::shared_ptr<const Packed> packed_;  // guarded by mutex_; readers keep their own reference
};

}  // namespace memcc
