#include "memristive_matmul_kernel.h"

#include <algorithm>
#include <new>
#include <thread>

#include "crossbar_mac.h"
#include "errors.h"
#include "layer_compute.h"
#include "layer_plan.h"

namespace memcc {
namespace {

// Turns a failed onnxruntime call into an OpError (and frees the status).
void check(const OrtApi& api, OrtStatus* status) {
  if (!status) return;
  std::string message = api.GetErrorMessage(status);
  api.ReleaseStatus(status);
  throw OpError("onnxruntime API call failed: " + message);
}

// Attribute reads through the C API. A getter of the wrong type fails, which is how `present`
// finds an attribute of any type and how a wrongly typed one is told from a missing one.
class OrtAttributeSource : public AttributeSource {
 public:
  OrtAttributeSource(const OrtApi& api, const OrtKernelInfo* info) : api_(api), info_(info) {}

  bool present(const char* name) const override {
    if (get_float(name) || get_int(name) || get_ints(name) || get_string(name)) return true;
    size_t size = 0;
    return ok(api_.KernelInfoGetAttributeArray_float(info_, name, nullptr, &size));
  }
  std::optional<float> get_float(const char* name) const override {
    float v = 0.0f;
    if (!ok(api_.KernelInfoGetAttribute_float(info_, name, &v))) return std::nullopt;
    return v;
  }
  std::optional<int64_t> get_int(const char* name) const override {
    int64_t v = 0;
    if (!ok(api_.KernelInfoGetAttribute_int64(info_, name, &v))) return std::nullopt;
    return v;
  }
  std::optional<std::vector<int64_t>> get_ints(const char* name) const override {
    size_t size = 0;
    if (!ok(api_.KernelInfoGetAttributeArray_int64(info_, name, nullptr, &size))) return std::nullopt;
    std::vector<int64_t> v(size);
    if (size > 0 && !ok(api_.KernelInfoGetAttributeArray_int64(info_, name, v.data(), &size))) {
      return std::nullopt;
    }
    v.resize(size);
    return v;
  }
  std::optional<std::string> get_string(const char* name) const override {
    size_t size = 0;
    if (!ok(api_.KernelInfoGetAttribute_string(info_, name, nullptr, &size))) return std::nullopt;
    std::string s(size, '\0');
    if (size > 0 && !ok(api_.KernelInfoGetAttribute_string(info_, name, &s[0], &size))) return std::nullopt;
    s.resize(std::min(s.size(), size));
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
  }

 private:
  bool ok(OrtStatus* status) const {
    if (!status) return true;
    api_.ReleaseStatus(status);
    return false;
  }
  const OrtApi& api_;
  const OrtKernelInfo* info_;
};

// Runs tasks on the session's intra-op pool, so the session's thread settings hold.
class OrtTaskRunner : public TaskRunner {
 public:
  OrtTaskRunner(const OrtApi& api, OrtKernelContext* context) : api_(api), context_(context) {}

  void run(size_t total, const std::function<void(size_t)>& fn) const override {
    check(api_, api_.KernelContext_ParallelFor(context_, &trampoline, total, 0,
                                               const_cast<std::function<void(size_t)>*>(&fn)));
  }
  // The intra-op thread count is not visible to a custom op; the machine's is an upper bound,
  // and run_layer keeps tasks large enough that a smaller pool loses little.
  int concurrency() const override {
    static const int n = std::max(1u, std::thread::hardware_concurrency());
    return n;
  }

 private:
  static void trampoline(void* fn, size_t i) { (*static_cast<std::function<void(size_t)>*>(fn))(i); }
  const OrtApi& api_;
  OrtKernelContext* context_;
};

struct TensorView {
  const OrtValue* value = nullptr;
  std::vector<int64_t> shape;
};

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

}  // namespace

MemristiveMatMulKernel::MemristiveMatMulKernel(const OrtApi& api, const OrtKernelInfo* info)
    : api_(api), node_name_(read_node_name(api, info)) {
  try {
    attrs_ = parse_attributes(OrtAttributeSource(api, info));
  } catch (const OpError& e) {
    throw OpError(where() + e.what());
  }
  int is_constant = 0;
  const OrtValue* g = nullptr;
  OrtStatus* status = api.KernelInfoGetConstantInput_tensor(info, 1, &is_constant, &g);
  if (status) {
    api.ReleaseStatus(status);
    is_constant = 0;
  }
  g_is_constant_ = is_constant != 0;
}

std::string MemristiveMatMulKernel::where() const {
  return "MemristiveMatMul node '" + node_name_ + "': ";
}

std::shared_ptr<const MemristiveMatMulKernel::Packed> MemristiveMatMulKernel::packed_for(
    const float* g, const std::vector<int64_t>& g_shape) {
  auto pack = [&] {
    auto p = std::make_shared<Packed>();
    p->source = g;
    p->shape = g_shape;
    const int64_t S = g_shape[0], K = g_shape[1], N = g_shape[2];
    p->matrix.resize(static_cast<size_t>(K * N));
    effective_matrix(g, S, K, N, attrs_.g_ref, matrix_scale(attrs_), p->matrix.data());
    return std::shared_ptr<const Packed>(std::move(p));
  };
  if (!g_is_constant_) return pack();
  std::lock_guard<std::mutex> lock(mutex_);
  if (!packed_ || packed_->source != g || packed_->shape != g_shape) packed_ = pack();
  return packed_;
}

void MemristiveMatMulKernel::compute_or_throw(OrtKernelContext* context) {
  size_t inputs = 0;
  check(api_, api_.KernelContext_GetInputCount(context, &inputs));
  const OrtValue* values[3] = {nullptr, nullptr, nullptr};
  for (size_t i = 0; i < std::min<size_t>(inputs, 3); ++i) {
    check(api_, api_.KernelContext_GetInput(context, i, &values[i]));
  }
  if (!values[0] || !values[1]) throw OpError("inputs 'X' and 'G' are required");
  const TensorView x = tensor_view(api_, values[0]);
  const TensorView g = tensor_view(api_, values[1]);
  TensorView bias;
  if (values[2]) bias = tensor_view(api_, values[2]);

  const LayerPlan plan = plan_layer(attrs_, x.shape, g.shape, values[2] ? &bias.shape : nullptr);

  OrtValue* y_value = nullptr;
  check(api_, api_.KernelContext_GetOutput(context, 0, plan.y_shape.data(), plan.y_shape.size(), &y_value));
  int64_t y_count = 1;
  for (int64_t d : plan.y_shape) y_count *= d;
  if (y_count == 0) return;
  void* y_data = nullptr;
  check(api_, api_.GetTensorMutableData(y_value, &y_data));

  const float* g_data = tensor_data(api_, values[1]);
  const auto packed = packed_for(g_data, g.shape);
  run_layer(attrs_, plan, packed->matrix.data(), tensor_data(api_, values[0]),
            plan.has_bias ? tensor_data(api_, values[2]) : nullptr, static_cast<float*>(y_data),
            OrtTaskRunner(api_, context));
}

OrtStatus* MemristiveMatMulKernel::compute(OrtKernelContext* context) noexcept {
  try {
    compute_or_throw(context);
    return nullptr;
  } catch (const OpError& e) {
    return api_.CreateStatus(ORT_INVALID_ARGUMENT, (where() + e.what()).c_str());
  } catch (const std::bad_alloc&) {
    return api_.CreateStatus(ORT_RUNTIME_EXCEPTION, (where() + "out of memory").c_str());
  } catch (const std::exception& e) {
    return api_.CreateStatus(ORT_RUNTIME_EXCEPTION, (where() + e.what()).c_str());
  } catch (...) {
    return api_.CreateStatus(ORT_RUNTIME_EXCEPTION, (where() + "unknown error").c_str());
  }
}

}  // namespace memcc
