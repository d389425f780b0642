// onnxruntime's own kernels (MLAS underneath) called from inside the custom op, through the C
// API's standalone ops (CreateOp / InvokeOp, onnxruntime 1.12+). An invoked op runs on the CPU
// execution provider with the calling kernel's context, so on the session's intra-op pool.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <onnxruntime_c_api.h>

#include "batched_layer.h"

namespace memcc {

// One attribute of a native op: an int, a list of ints, a float or a string. Standalone ops get no schema defaults: every attribute a kernel reads must be given.
struct NativeAttr {
  enum class Kind { Ints, Int, Float, String };
  std::string name;
  std::vector<int64_t> values;
  Kind kind = Kind::Ints;
  float value = 0.0f;
  std::string text = {};  // Kind::String
};

// An onnxruntime kernel for float tensors ("T" = float), created once and invoked per call.
class NativeOp {
 public:
  // Tries the opset versions in order (CreateOp wants a version a registered kernel covers);
  // nullptr, with the last error in *error, when none works (e.g. no standalone-op API).
  // `domain`: "" for ONNX ops, e.g. "com.microsoft.nchwc" for onnxruntime's own.
  static std::unique_ptr<NativeOp> create(const OrtApi& api, const OrtKernelInfo* info, const char* op_type,
                                          const std::vector<int>& versions,
                                          const std::vector<NativeAttr>& attrs, int inputs, int outputs,
                                          std::string* error, const char* domain = "");
  ~NativeOp();
  NativeOp(const NativeOp&) = delete;
  NativeOp& operator=(const NativeOp&) = delete;

  // Throws OpError on failure.
  void invoke(const OrtKernelContext* context, const OrtValue* const* inputs, int n_in,
              OrtValue* const* outputs, int n_out) const;

  int version() const { return version_; }

 private:
  NativeOp(const OrtApi& api, OrtOp* op, int version) : api_(api), op_(op), version_(version) {}
  const OrtApi& api_;
  OrtOp* op_;
  int version_;
};

// A float tensor over memory we own (no copy); released with the object.
class TensorRef {
 public:
  TensorRef(const OrtApi& api, const OrtMemoryInfo* cpu, const float* data, std::vector<int64_t> shape);
  ~TensorRef();
  TensorRef(const TensorRef&) = delete;
  TensorRef& operator=(const TensorRef&) = delete;
  OrtValue* get() const { return value_; }

 private:
  const OrtApi& api_;
  OrtValue* value_ = nullptr;
};

// Scratch memory from the kernel context's CPU allocator (onnxruntime's arena: no page faults
// after the first call), freed with the object.
class ContextScratch {
 public:
  ContextScratch(const OrtApi& api, OrtKernelContext* context, const OrtMemoryInfo* cpu, size_t floats);
  ~ContextScratch();
  ContextScratch(const ContextScratch&) = delete;
  ContextScratch& operator=(const ContextScratch&) = delete;
  float* data() const { return data_; }

 private:
  const OrtApi& api_;
  OrtAllocator* allocator_ = nullptr;
  float* data_ = nullptr;
  std::unique_ptr<float[]> fallback_;
};

// The batched product as onnxruntime's MatMul over [batch, M, K] x [batch, K, N].
class NativeBatchedGemm : public BatchedGemm {
 public:
  NativeBatchedGemm(const OrtApi& api, const OrtKernelContext* context, const OrtMemoryInfo* cpu,
                    const NativeOp& matmul)
      : api_(api), context_(context), cpu_(cpu), matmul_(matmul) {}
  void run(int64_t batch, int64_t M, int64_t N, int64_t K, const float* A, const float* B,
           float* C) const override;

 private:
  const OrtApi& api_;
  const OrtKernelContext* context_;
  const OrtMemoryInfo* cpu_;
  const NativeOp& matmul_;
};

}  // namespace memcc
