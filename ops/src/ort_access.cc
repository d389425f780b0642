#include "ort_access.h"

#include <algorithm>

#include "errors.h"
#include "runtime_effects.h"

namespace memcc {

// Turns a failed onnxruntime call into an OpError (and frees the status).
void check(const OrtApi& api, OrtStatus* status) {
  if (!status) return;
  std::string message = api.GetErrorMessage(status);
  api.ReleaseStatus(status);
  throw OpError("onnxruntime API call failed: " + message);
}

TensorView tensor_view(const OrtApi& api, const OrtValue* value) {
  TensorView t;
  t.value = value;
  OrtTensorTypeAndShapeInfo* info = nullptr;
  check(api, api.GetTensorTypeAndShape(value, &info));
  size_t rank = 0;
  OrtStatus* status = api.GetDimensionsCount(info, &rank);
  if (!status) {
    t.shape.resize(rank);
    status = api.GetDimensions(info, t.shape.data(), rank);
  }
  api.ReleaseTensorTypeAndShapeInfo(info);
  check(api, status);
  return t;
}

const float* tensor_data(const OrtApi& api, const OrtValue* value) {
  void* data = nullptr;
  // The C API has no const accessor; inputs are only read.
  check(api, api.GetTensorMutableData(const_cast<OrtValue*>(value), &data));
  return static_cast<const float*>(data);
}

// The optional time input T: a float32 scalar or [1] tensor (docs/op-spec.md, "Inputs").
const float* time_input(const OrtApi& api, const OrtValue* value) {
  const TensorView t = tensor_view(api, value);
  int64_t count = 1;
  for (int64_t d : t.shape) count *= d;
  if (t.shape.size() > 1 || count != 1) {
    std::string dims;
    for (int64_t d : t.shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    throw OpError("input 'T' must be a scalar or have shape [1], got [" + dims + "]");
  }
  return tensor_data(api, value);
}

std::string read_node_name(const OrtApi& api, const OrtKernelInfo* info) {
  size_t size = 0;
  OrtStatus* status = api.KernelInfo_GetNodeName(info, nullptr, &size);
  if (status) {
    api.ReleaseStatus(status);
    return std::string();
  }
  std::string name(size, '\0');
  status = size > 0 ? api.KernelInfo_GetNodeName(info, &name[0], &size) : nullptr;
  if (status) {
    api.ReleaseStatus(status);
    return std::string();
  }
  while (!name.empty() && name.back() == '\0') name.pop_back();
  return name;
}

bool OrtAttributeSource::present(const char* name) const {
  if (get_float(name) || get_int(name) || get_ints(name) || get_string(name)) return true;
  size_t size = 0;
  return ok(api_.KernelInfoGetAttributeArray_float(info_, name, nullptr, &size));
}
std::optional<float> OrtAttributeSource::get_float(const char* name) const {
  float v = 0.0f;
  if (!ok(api_.KernelInfoGetAttribute_float(info_, name, &v))) return std::nullopt;
  return v;
}
std::optional<int64_t> OrtAttributeSource::get_int(const char* name) const {
  int64_t v = 0;
  if (!ok(api_.KernelInfoGetAttribute_int64(info_, name, &v))) return std::nullopt;
  return v;
}
std::optional<std::vector<int64_t>> OrtAttributeSource::get_ints(const char* name) const {
  size_t size = 0;
  if (!ok(api_.KernelInfoGetAttributeArray_int64(info_, name, nullptr, &size))) return std::nullopt;
  std::vector<int64_t> v(size);
  if (size > 0 && !ok(api_.KernelInfoGetAttributeArray_int64(info_, name, v.data(), &size))) {
    return std::nullopt;
  }
  v.resize(size);
  return v;
}
std::optional<std::string> OrtAttributeSource::get_string(const char* name) const {
  size_t size = 0;
  if (!ok(api_.KernelInfoGetAttribute_string(info_, name, nullptr, &size))) return std::nullopt;
  std::string s(size, '\0');
  if (size > 0 && !ok(api_.KernelInfoGetAttribute_string(info_, name, &s[0], &size))) return std::nullopt;
  s.resize(std::min(s.size(), size));
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

bool OrtAttributeSource::ok(OrtStatus* status) const {
  if (!status) return true;
  api_.ReleaseStatus(status);
  return false;
}

std::string node_prefix(const std::string& node_name, const std::string& kernel_label) {
  return "MemristiveMatMul node '" + node_name + "'" + kernel_label + ": ";
}

KernelSetup read_kernel_setup(const OrtApi& api, const OrtKernelInfo* info, const std::string& kernel_label) {
  KernelSetup k;
  k.node_name = read_node_name(api, info);
  try {
    k.attrs = parse_attributes(OrtAttributeSource(api, info));
  } catch (const OpError& e) {
    throw OpError(node_prefix(k.node_name, kernel_label) + e.what());
  }
  int is_constant = 0;
  const OrtValue* g = nullptr;
  OrtStatus* status = api.KernelInfoGetConstantInput_tensor(info, 1, &is_constant, &g);
  if (status) {
    api.ReleaseStatus(status);
    is_constant = 0;
  }
  k.g_is_constant = is_constant != 0;
  return k;
}

CallInputs read_call_inputs(const OrtApi& api, OrtKernelContext* context, const OpAttributes& attrs) {
  CallInputs in;
  size_t count = 0;
  check(api, api.KernelContext_GetInputCount(context, &count));
  for (size_t i = 0; i < std::min<size_t>(count, 4); ++i) {
    check(api, api.KernelContext_GetInput(context, i, &in.values[i]));
  }
  if (!in.values[0] || !in.values[1]) throw OpError("inputs 'X' and 'G' are required");
  in.time = drift_time(attrs, in.values[3] ? time_input(api, in.values[3]) : nullptr);
  in.x = tensor_view(api, in.values[0]);
  in.g = tensor_view(api, in.values[1]);
  if (in.values[2]) in.bias = tensor_view(api, in.values[2]);
  in.plan = plan_layer(attrs, in.x.shape, in.g.shape, in.values[2] ? &in.bias.shape : nullptr);

  OrtValue* y_value = nullptr;
  const std::vector<int64_t>& y_shape = in.plan.out_shape;
  check(api, api.KernelContext_GetOutput(context, 0, y_shape.data(), y_shape.size(), &y_value));
  in.y_count = 1;
  for (int64_t d : y_shape) in.y_count *= d;
  if (in.y_count > 0) {
    void* y = nullptr;
    check(api, api.GetTensorMutableData(y_value, &y));
    in.y = static_cast<float*>(y);
  }
  return in;
}

}  // namespace memcc
