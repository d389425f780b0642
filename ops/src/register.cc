// Entry point of libmemcc_ops: onnxruntime calls RegisterCustomOps when a session registers the
// library, and gets the ai.memcc domain with its one op, MemristiveMatMul (docs/op-spec.md).
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <onnxruntime_c_api.h>

#include "crossbar_mac.h"
#include "errors.h"
#include "memristive_matmul_kernel.h"
#if MEMCC_WITH_CUDA
#include "cuda/cuda_kernel.h"
#endif

namespace memcc {
namespace {

constexpr const char* kDomain = "ai.memcc";
constexpr const char* kOpType = "MemristiveMatMul";
// KernelContext_ParallelFor appeared in API version 17 (onnxruntime 1.17).
constexpr uint32_t kMinApiVersion = 17;

// The kernel entry points of one implementation (Kernel: MemristiveMatMulKernel or the CUDA one).
template <class Kernel>
OrtStatus* ORT_API_CALL create_kernel(const OrtCustomOp*, const OrtApi* api, const OrtKernelInfo* info,
                                      void** kernel) {
  *kernel = nullptr;
  try {
    *kernel = new Kernel(*api, info);
    return nullptr;
  } catch (const OpError& e) {
    return api->CreateStatus(ORT_INVALID_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_RUNTIME_EXCEPTION, e.what());
  } catch (...) {
    return api->CreateStatus(ORT_RUNTIME_EXCEPTION, "MemristiveMatMul: unknown error creating the kernel");
  }
}

template <class Kernel>
OrtStatus* ORT_API_CALL compute_kernel(void* kernel, OrtKernelContext* context) {
  return static_cast<Kernel*>(kernel)->compute(context);
}

template <class Kernel>
void ORT_API_CALL destroy_kernel(void* kernel) {
  delete static_cast<Kernel*>(kernel);
}

const char* ORT_API_CALL op_name(const OrtCustomOp*) { return kOpType; }
const char* ORT_API_CALL cpu_provider(const OrtCustomOp*) { return "CPUExecutionProvider"; }
ONNXTensorElementDataType ORT_API_CALL float_type(const OrtCustomOp*, size_t) {
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
size_t ORT_API_CALL input_count(const OrtCustomOp*) { return 4; }   // X, G, Bias, T
size_t ORT_API_CALL output_count(const OrtCustomOp*) { return 1; }  // Y
OrtCustomOpInputOutputCharacteristic ORT_API_CALL input_kind(const OrtCustomOp*, size_t index) {
  return index >= 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
}
OrtCustomOpInputOutputCharacteristic ORT_API_CALL output_kind(const OrtCustomOp*, size_t) {
  return INPUT_OUTPUT_REQUIRED;
}
OrtMemType ORT_API_CALL input_memory(const OrtCustomOp*, size_t) { return OrtMemTypeDefault; }
#if MEMCC_WITH_CUDA
const char* ORT_API_CALL cuda_provider(const OrtCustomOp*) { return "CUDAExecutionProvider"; }
// On the GPU the drift time T is read by the host (it selects the packed conductances), so
// onnxruntime hands it over in host memory; everything else stays on the device.
OrtMemType ORT_API_CALL cuda_input_memory(const OrtCustomOp*, size_t index) {
  return index == 3 ? OrtMemTypeCPUInput : OrtMemTypeDefault;
}
#endif
int ORT_API_CALL variadic_min_arity(const OrtCustomOp*) { return 1; }
int ORT_API_CALL variadic_homogeneity(const OrtCustomOp*) { return 1; }
// Version 1 of the op only: a later version of the spec must not run on this implementation.
int ORT_API_CALL since_version(const OrtCustomOp*) { return 1; }
int ORT_API_CALL end_version(const OrtCustomOp*) { return 1; }

template <class Kernel>
OrtCustomOp make_op(uint32_t api_version, const char* (ORT_API_CALL* provider)(const OrtCustomOp*),
                    OrtMemType (ORT_API_CALL* memory)(const OrtCustomOp*, size_t)) {
  OrtCustomOp op{};
  // onnxruntime reads only the fields that existed in this version of the struct.
  op.version = api_version;
  op.CreateKernel = nullptr;  // the V2 entry points report errors as statuses
  op.GetName = op_name;
  op.GetExecutionProviderType = provider;
  op.GetInputType = float_type;
  op.GetInputTypeCount = input_count;
  op.GetOutputType = float_type;
  op.GetOutputTypeCount = output_count;
  op.KernelCompute = nullptr;
  op.KernelDestroy = destroy_kernel<Kernel>;
  op.GetInputCharacteristic = input_kind;
  op.GetOutputCharacteristic = output_kind;
  op.GetInputMemoryType = memory;
  op.GetVariadicInputMinArity = variadic_min_arity;
  op.GetVariadicInputHomogeneity = variadic_homogeneity;
  op.GetVariadicOutputMinArity = variadic_min_arity;
  op.GetVariadicOutputHomogeneity = variadic_homogeneity;
  op.CreateKernelV2 = create_kernel<Kernel>;
  op.KernelComputeV2 = compute_kernel<Kernel>;
  op.InferOutputShapeFn = nullptr;
  op.GetStartVersion = since_version;
  op.GetEndVersion = end_version;
  op.GetMayInplace = nullptr;
  op.ReleaseMayInplace = nullptr;
  op.GetAliasMap = nullptr;
  op.ReleaseAliasMap = nullptr;
  return op;
}

#if MEMCC_WITH_CUDA
// Whether this onnxruntime has the CUDA execution provider (onnxruntime-gpu); the CPU-only
// package gets the CPU kernel alone.
bool has_cuda_provider(const OrtApi& api) {
  char** names = nullptr;
  int count = 0;
  if (OrtStatus* status = api.GetAvailableProviders(&names, &count)) {
    api.ReleaseStatus(status);
    return false;
  }
  bool found = false;
  for (int i = 0; i < count; ++i) found = found || std::string(names[i]) == "CUDAExecutionProvider";
  if (OrtStatus* status = api.ReleaseAvailableProviders(names, count)) api.ReleaseStatus(status);
  return found;
}
#endif

OrtStatus* register_domain(const OrtApi& api, uint32_t api_version, OrtSessionOptions* options) {
  // The op descriptions and the domains must outlive every session that uses them, and sessions
  // may outlive any scope here; a process registers a handful at most, so they are kept for
  // the life of the process (releasing them from a static destructor could run after
  // onnxruntime itself is gone).
  static std::mutex mutex;
  static std::vector<OrtCustomOpDomain*> domains;
  static OrtCustomOp cpu_op = make_op<MemristiveMatMulKernel>(api_version, cpu_provider, input_memory);
#if MEMCC_WITH_CUDA
  static OrtCustomOp cuda_op = make_op<CudaMemristiveMatMulKernel>(api_version, cuda_provider, cuda_input_memory);
#endif
  std::lock_guard<std::mutex> lock(mutex);

  OrtCustomOpDomain* domain = nullptr;
  if (OrtStatus* status = api.CreateCustomOpDomain(kDomain, &domain)) return status;
  domains.push_back(domain);
  if (OrtStatus* status = api.CustomOpDomain_Add(domain, &cpu_op)) return status;
#if MEMCC_WITH_CUDA
  if (has_cuda_provider(api)) {
    if (OrtStatus* status = api.CustomOpDomain_Add(domain, &cuda_op)) return status;
  }
#endif
  return api.AddCustomOpDomain(options, domain);
}

}  // namespace
}  // namespace memcc

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  // Ask for the API of the headers we were built with; an older onnxruntime (down to the first
  // with KernelContext_ParallelFor) gets a table of its own version, and only its entries are used.
  const OrtApi* api = nullptr;
  uint32_t version = ORT_API_VERSION;
  for (; version >= memcc::kMinApiVersion && !api; --version) api = api_base->GetApi(version);
  if (!api) {
    const OrtApi* v1 = api_base->GetApi(1);
    const std::string message = std::string("libmemcc_ops needs onnxruntime 1.17 or later, this is ") +
                                api_base->GetVersionString();
    return v1 ? v1->CreateStatus(ORT_FAIL, message.c_str()) : nullptr;
  }
  ++version;  // the loop decremented past the version that answered
  try {
    memcc::blas_use_single_thread();
    return memcc::register_domain(*api, version, options);
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_RUNTIME_EXCEPTION, e.what());
  }
}
