#include "cuda/cuda_kernel.h"

#include <cmath>
#include <new>
#include <utility>

#include "cuda/crossbar_cuda.h"
#include "errors.h"
#include "layer_plan.h"
#include "ort_access.h"
#include "runtime_effects.h"

namespace memcc {
namespace {

constexpr const char* kLabel = " (CUDA)";

// Scratch from onnxruntime's allocator for the tensors' device. Freed when the call returns,
// before the kernels that use it have run: safe because everything that could reuse the memory
// is ordered after them on the same compute stream (as onnxruntime's own CUDA kernels do).
class DeviceScratch {
 public:
  DeviceScratch(const OrtApi& api, OrtKernelContext* context, const OrtValue* like, size_t floats) : api_(api) {
    if (floats == 0) return;
    const OrtMemoryInfo* tensor_info = nullptr;
    check(api, api.GetTensorMemoryInfo(like, &tensor_info));
    int device = 0;
    check(api, api.MemoryInfoGetId(tensor_info, &device));
    OrtMemoryInfo* info = nullptr;
    check(api, api.CreateMemoryInfo("Cuda", OrtArenaAllocator, device, OrtMemTypeDefault, &info));
    OrtStatus* status = api.KernelContext_GetAllocator(context, info, &allocator_);
    api.ReleaseMemoryInfo(info);
    check(api, status);
    data_ = static_cast<float*>(allocator_->Alloc(allocator_, floats * sizeof(float)));
    if (!data_) throw std::bad_alloc();
  }
  ~DeviceScratch() {
    if (data_) allocator_->Free(allocator_, data_);
    if (allocator_) api_.ReleaseAllocator(allocator_);
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  float* data() const { return data_; }

 private:
  const OrtApi& api_;
  OrtAllocator* allocator_ = nullptr;
  float* data_ = nullptr;
};

int tensor_device(const OrtApi& api, const OrtValue* value) {
  const OrtMemoryInfo* info = nullptr;
  check(api, api.GetTensorMemoryInfo(value, &info));
  int device = 0;
  check(api, api.MemoryInfoGetId(info, &device));
  return device;
}

}  // namespace

CudaMemristiveMatMulKernel::Packed::~Packed() {
  cuda::device_free(matrix);
  cuda::device_free(variance);
}

CudaMemristiveMatMulKernel::CudaMemristiveMatMulKernel(const OrtApi& api, const OrtKernelInfo* info)
    : CudaMemristiveMatMulKernel(api, read_kernel_setup(api, info, kLabel)) {}

CudaMemristiveMatMulKernel::CudaMemristiveMatMulKernel(const OrtApi& api, KernelSetup setup)
    : api_(api),
      node_name_(std::move(setup.node_name)),
      attrs_(std::move(setup.attrs)),
      packed_(setup.g_is_constant) {}

std::string CudaMemristiveMatMulKernel::where() const { return node_prefix(node_name_, kLabel); }

bool CudaMemristiveMatMulKernel::ideal() const { return !attrs_.uses_adc() && !attrs_.encodes_input(); }

std::shared_ptr<const CudaMemristiveMatMulKernel::Packed> CudaMemristiveMatMulKernel::packed_for(
    const float* g, const std::vector<int64_t>& g_shape, double time, void* stream) {
  const bool drifts = drift_enabled(attrs_);
  auto pack = [&] {
    auto p = std::make_shared<Packed>();
    p->set(g, g_shape, time);
    const int64_t S = g_shape[0], K = g_shape[1], N = g_shape[2];
    cuda::PackSpec spec;
    spec.g_ref = attrs_.g_ref;
    spec.matrix_scale = ideal() ? attrs_.weight_scale : 1.0f;
    spec.sigma2 = attrs_.read_noise_std * attrs_.read_noise_std;
    if (drifts) {
      const double t0 = attrs_.drift_t0;
      spec.drift = true;
      spec.nu_mean = attrs_.drift_nu;
      spec.nu_std = attrs_.drift_nu_std;
      spec.log_tau = std::log((time > t0 ? time : t0) / t0);
      spec.seed = static_cast<uint64_t>(attrs_.drift_seed);
    }
    p->matrix = cuda::device_alloc_floats(static_cast<size_t>(K * N));
    if (attrs_.read_noise()) p->variance = cuda::device_alloc_floats(static_cast<size_t>(K * N));
    cuda::pack_conductances(g, S, K, N, spec, p->matrix, p->variance, stream);
    return std::shared_ptr<const Packed>(std::move(p));
  };
  auto usable = [&](const Packed& p) {
    return p.made_from(g, g_shape, time, drifts);
  };
  return packed_.get(usable, pack);
}

void CudaMemristiveMatMulKernel::compute_or_throw(OrtKernelContext* context) {
  const uint64_t execution = executions_.fetch_add(1, std::memory_order_relaxed);
  const CallInputs in = read_call_inputs(api_, context, attrs_);
  if (in.y_count == 0) return;
  const OrtValue* const* values = in.values;
  const LayerPlan& plan = in.plan;
  float* y = in.y;

  void* stream = nullptr;
  check(api_, api_.KernelContext_GetGPUComputeStream(context, &stream));
  cuda::use_device(tensor_device(api_, values[0]));
  const auto packed = packed_for(tensor_data(api_, values[1]), in.g.shape, in.time, stream);

  cuda::LayerSpec s;
  s.conv = attrs_.conv;
  s.groups = attrs_.conv ? plan.group : 1;
  s.rows = attrs_.conv ? plan.batch * plan.patch.positions() : plan.rows;
  s.positions = attrs_.conv ? plan.patch.positions() : 1;
  s.K = plan.K;
  s.N = plan.N;
  s.Ng = attrs_.conv ? plan.group_cols : plan.N;
  // Tiles matter only to the ADC (and its noise terms); without it one product covers all K.
  const int64_t tr = attrs_.uses_adc() && attrs_.tile_rows > 0 ? std::min(attrs_.tile_rows, s.K) : s.K;
  const int64_t tc = attrs_.uses_adc() && attrs_.tile_cols > 0 ? std::min(attrs_.tile_cols, s.Ng) : s.Ng;
  s.tile_rows = std::max<int64_t>(tr, 1);
  s.tile_cols = std::max<int64_t>(tc, 1);
  s.encoded = !ideal();
  s.weight_scale = attrs_.weight_scale;
  s.v_max = attrs_.max_input_voltage;
  s.adc_bits = attrs_.adc_bits;
  s.adc_overflow_rate = attrs_.adc_overflow_rate;
  s.noise = attrs_.read_noise();
  s.noise_key = static_cast<uint64_t>(attrs_.noise_seed);
  s.execution = execution;
  s.relu = attrs_.activation == Activation::Relu;

  const bool patches = attrs_.conv;
  const int64_t vectors = s.groups * s.rows;
  const size_t input_floats = (patches || s.encoded) ? static_cast<size_t>(vectors * s.K) : 0;
  const size_t scale_floats = s.encoded ? static_cast<size_t>(vectors) : 0;
  const size_t layer_floats = cuda::layer_scratch_floats(s);
  // With max_pool the layer writes its unpooled outputs to scratch; step 10 pools them into Y.
  size_t unpooled_floats = 0;
  if (attrs_.pools()) {
    unpooled_floats = 1;
    for (int64_t d : plan.y_shape) unpooled_floats *= static_cast<size_t>(d);
  }
  DeviceScratch scratch(api_, context, values[0], input_floats + scale_floats + layer_floats + unpooled_floats);
  float* a = scratch.data();
  float* scale = a ? a + input_floats : nullptr;
  float* layer = a ? a + input_floats + scale_floats : nullptr;
  float* unpooled = a && attrs_.pools() ? a + input_floats + scale_floats + layer_floats : nullptr;

  const float* x_data = tensor_data(api_, values[0]);
  const float* inputs_for_layer = x_data;
  if (patches) {
    cuda::im2col_rows(x_data, plan.patch, plan.batch, plan.group, a, stream);
    inputs_for_layer = a;
  }
  if (s.encoded) {
    cuda::EncodeSpec e;
    e.input_range = attrs_.input_range;
    e.dac_bits = attrs_.dac_bits;
    e.v_max = attrs_.max_input_voltage;
    e.iv_a = attrs_.iv_a;
    e.iv_b = attrs_.iv_b;
    cuda::encode_rows(inputs_for_layer, vectors, s.K, e, a, scale, stream);
    inputs_for_layer = a;
  }
  const float* bias_data = plan.has_bias ? tensor_data(api_, values[2]) : nullptr;
  cuda::crossbar_layer(s, inputs_for_layer, s.encoded ? scale : nullptr, packed->matrix, packed->variance, bias_data,
                       unpooled ? unpooled : y, layer, stream);
  if (unpooled) {
    cuda::max_pool(unpooled, plan.y_shape.data(), attrs_.max_pool.data(), static_cast<int>(attrs_.max_pool.size()), y,
                   stream);
  }
}

OrtStatus* CudaMemristiveMatMulKernel::compute(OrtKernelContext* context) noexcept {
  return status_of(api_, where(), [&] { compute_or_throw(context); });
}

}  // namespace memcc
