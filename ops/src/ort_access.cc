#include "ort_access.h"

#include <algorithm>

#include "errors.h"

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

}  // namespace memcc
