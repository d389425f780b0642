#include "ort_native.h"

#include <new>

#include "errors.h"

namespace memcc {
namespace {

std::string take_message(const OrtApi& api, OrtStatus* status) {
  std::string message = api.GetErrorMessage(status);
  api.ReleaseStatus(status);
  return message;
}

void check(const OrtApi& api, OrtStatus* status, const char* what) {
  if (status) throw OpError(std::string(what) + ": " + take_message(api, status));
}

}  // namespace

std::unique_ptr<NativeOp> NativeOp::create(const OrtApi& api, const OrtKernelInfo* info, const char* op_type,
                                           const std::vector<int>& versions,
                                           const std::vector<NativeAttr>& attrs, int inputs, int outputs,
                                           std::string* error, const char* domain) {
  std::vector<OrtOpAttr*> made;
  auto release_attrs = [&] {
    for (OrtOpAttr* a : made) api.ReleaseOpAttr(a);
  };
  for (const NativeAttr& a : attrs) {
    OrtOpAttr* attr = nullptr;
    OrtStatus* status =
        a.kind == NativeAttr::Kind::Float    ? api.CreateOpAttr(a.name.c_str(), &a.value, 1, ORT_OP_ATTR_FLOAT, &attr)
        : a.kind == NativeAttr::Kind::String ? api.CreateOpAttr(a.name.c_str(), a.text.c_str(),
                                                                static_cast<int>(a.text.size()), ORT_OP_ATTR_STRING, &attr)
                                             : api.CreateOpAttr(a.name.c_str(), a.values.data(),
                                                                static_cast<int>(a.values.size()),
                                                                a.kind == NativeAttr::Kind::Ints ? ORT_OP_ATTR_INTS
                                                                                                 : ORT_OP_ATTR_INT,
                                                                &attr);
    if (status) {
      *error = take_message(api, status);
      release_attrs();
      return nullptr;
    }
    made.push_back(attr);
  }
  const char* type_names[] = {"T"};
  ONNXTensorElementDataType type_values[] = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT};
  std::unique_ptr<NativeOp> result;
  for (int version : versions) {
    OrtOp* op = nullptr;
    OrtStatus* status = api.CreateOp(info, op_type, domain, version, type_names, type_values, 1,
                                     made.empty() ? nullptr : made.data(), static_cast<int>(made.size()),
                                     inputs, outputs, &op);
    if (!status) {
      result.reset(new NativeOp(api, op, version));
      break;
    }
    *error = std::string(op_type) + " " + std::to_string(version) + ": " + take_message(api, status);
  }
  release_attrs();
  return result;
}

NativeOp::~NativeOp() { api_.ReleaseOp(op_); }

void NativeOp::invoke(const OrtKernelContext* context, const OrtValue* const* inputs, int n_in,
                      OrtValue* const* outputs, int n_out) const {
  check(api_, api_.InvokeOp(context, op_, inputs, n_in, outputs, n_out), "onnxruntime InvokeOp failed");
}

TensorRef::TensorRef(const OrtApi& api, const OrtMemoryInfo* cpu, const float* data, std::vector<int64_t> shape)
    : api_(api) {
  size_t count = 1;
  for (int64_t d : shape) count *= static_cast<size_t>(d);
  // Inputs are only read by the invoked kernel; the C API has no const variant.
  check(api, api.CreateTensorWithDataAsOrtValue(cpu, const_cast<float*>(data), count * sizeof(float),
                                                shape.data(), shape.size(), ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                                                &value_),
        "CreateTensorWithDataAsOrtValue failed");
}

TensorRef::~TensorRef() {
  if (value_) api_.ReleaseValue(value_);
}

ContextScratch::ContextScratch(const OrtApi& api, OrtKernelContext* context, const OrtMemoryInfo* cpu,
                               size_t floats)
    : api_(api) {
  if (floats == 0) floats = 1;
  OrtStatus* status = api.KernelContext_GetAllocator(context, cpu, &allocator_);
  if (status) {
    api.ReleaseStatus(status);
    allocator_ = nullptr;
  }
  if (allocator_) {
    data_ = static_cast<float*>(allocator_->Alloc(allocator_, floats * sizeof(float)));
    if (data_) return;
    api.ReleaseAllocator(allocator_);
    allocator_ = nullptr;
  }
  fallback_.reset(new float[floats]);
  data_ = fallback_.get();
}

ContextScratch::~ContextScratch() {
  if (allocator_) {
    allocator_->Free(allocator_, data_);
    api_.ReleaseAllocator(allocator_);
  }
}

void NativeBatchedGemm::run(int64_t batch, int64_t M, int64_t N, int64_t K, const float* A, const float* B,
                            float* C) const {
  TensorRef a(api_, cpu_, A, {batch, M, K});
  TensorRef b(api_, cpu_, B, {batch, K, N});
  TensorRef c(api_, cpu_, C, {batch, M, N});
  const OrtValue* in[] = {a.get(), b.get()};
  OrtValue* out[] = {c.get()};
  matmul_.invoke(context_, in, 2, out, 1);
}

}  // namespace memcc
