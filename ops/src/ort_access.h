// Reading a kernel's attributes, inputs and name through onnxruntime's C API: what the CPU and
// the CUDA kernels of MemristiveMatMul both need, with every failed call turned into an OpError.
#pragma once

#include <cstdint>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include <onnxruntime_c_api.h>

#include "errors.h"
#include "layer_plan.h"
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

// What a kernel reads once, when onnxruntime creates it.
struct KernelSetup {
  std::string node_name;
  OpAttributes attrs;
  // G is an initializer in every model memcc writes, so it is packed once; a G that is a graph
  // input may change between runs behind the same pointer and is packed on every call.
  bool g_is_constant = false;
};
// Throws OpError (prefixed with `kernel_label` and the node's name) for a bad attribute.
KernelSetup read_kernel_setup(const OrtApi& api, const OrtKernelInfo* info, const std::string& kernel_label);
// "MemristiveMatMul node 'NAME'<label>: ", the prefix of every message of a node.
std::string node_prefix(const std::string& node_name, const std::string& kernel_label);

// What every call reads first: the inputs (X and G required, Bias and T optional) and their
// shapes, the drift time, the checked layer plan, and Y allocated in its shape.
struct CallInputs {
  const OrtValue* values[4] = {nullptr, nullptr, nullptr, nullptr};  // X, G, Bias, T
  TensorView x, g, bias;
  double time = 0.0;
  LayerPlan plan;
  int64_t y_count = 0;  // of the node's output Y (plan.out_shape: pooled with max_pool)
  float* y = nullptr;   // nullptr when Y is empty
};
// Throws OpError for missing or malformed inputs.
CallInputs read_call_inputs(const OrtApi& api, OrtKernelContext* context, const OpAttributes& attrs);

// Runs fn(); an exception becomes an error status whose message starts with `prefix`.
template <class Fn>
OrtStatus* status_of(const OrtApi& api, const std::string& prefix, Fn&& fn) noexcept {
  try {
    fn();
    return nullptr;
  } catch (const OpError& e) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, (prefix + e.what()).c_str());
  } catch (const std::bad_alloc&) {
    return api.CreateStatus(ORT_RUNTIME_EXCEPTION, (prefix + "out of memory").c_str());
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_RUNTIME_EXCEPTION, (prefix + e.what()).c_str());
  } catch (...) {
    return api.CreateStatus(ORT_RUNTIME_EXCEPTION, (prefix + "unknown error").c_str());
  }
}

}  // namespace memcc
