// Reading a kernel's attributes, inputs and name through onnxruntime's C API: what the CPU and
// the CUDA kernels of MemristiveMatMul both need, with every failed call turned into an OpError.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <onnxruntime_c_api.h>

#include "op_attributes.h"

namespace memcc {

// Turns a failed onnxruntime call into an OpError (and frees the status).
void check(const OrtApi& api, OrtStatus* status);

// Attribute reads through the C API. A getter of the wrong type fails, which is how `present`
// finds an attribute of any type and how a wrongly typed one is told from a missing one.
class OrtAttributeSource : public AttributeSource {
 public:
  OrtAttributeSource(const OrtApi& api, const OrtKernelInfo* info) : api_(api), info_(info) {}

  bool present(const char* name) const override;
  std::optional<float> get_float(const char* name) const override;
  std::optional<int64_t> get_int(const char* name) const override;
  std::optional<std::vector<int64_t>> get_ints(const char* name) const override;
  std::optional<std::string> get_string(const char* name) const override;

 private:
  bool ok(OrtStatus* status) const;
  const OrtApi& api_;
  const OrtKernelInfo* info_;
};

struct TensorView {
  const OrtValue* value = nullptr;
  std::vector<int64_t> shape;
};

TensorView tensor_view(const OrtApi& api, const OrtValue* value);
// The tensor's data pointer (host or device memory, wherever the tensor lives).
const float* tensor_data(const OrtApi& api, const OrtValue* value);
// The optional time input T: a float32 scalar or [1] tensor in host memory (docs/op-spec.md,
// "Inputs"); throws OpError for any other shape.
const float* time_input(const OrtApi& api, const OrtValue* value);
// The node's name, or "" when onnxruntime does not give it.
std::string read_node_name(const OrtApi& api, const OrtKernelInfo* info);

}  // namespace memcc
