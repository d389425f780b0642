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

namespace memcc {
namespace {

constexpr const char* kDomain = "ai.memcc";
constexpr const char* kOpType = "MemristiveMatMul";
// KernelContext_ParallelFor appeared in API version 17 (onnxruntime 1.17).
constexpr uint32_t kMinApiVersion = 17;

OrtStatus* ORT_API_CALL create_kernel(const OrtCustomOp*, const OrtApi* api, const OrtKernelInfo* info,
                                      void** kernel) {
  *kernel = nullptr;
  try {
    *kernel = new MemristiveMatMulKernel(*api, info);
    return nullptr;
  } catch (const OpError& e) {
    return api->CreateStatus(ORT_INVALID_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_RUNTIME_EXCEPTION, e.what());
  } catch (...) {
    return api->CreateStatus(ORT_RUNTIME_EXCEPTION, "MemristiveMatMul: unknown error creating the kernel");
  }
}

OrtStatus* ORT_API_CALL compute_kernel(void* kernel, OrtKernelContext* context) {
  return static_cast<MemristiveMatMulKernel*>(kernel)->compute(context);
}

void ORT_API_CALL destroy_kernel(void* kernel) { delete static_cast<MemristiveMatMulKernel*>(kernel); }

const char* ORT_API_CALL op_name(const OrtCustomOp*) { return kOpType; }
const char* ORT_API_CALL op_provider(const OrtCustomOp*) { return "CPUExecutionProvider"; }
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
int ORT_API_CALL variadic_min_arity(const OrtCustomOp*) { return 1; }
int ORT_API_CALL variadic_homogeneity(const OrtCustomOp*) { return 1; }
// Version 1 of the op only: a later version of the spec must not run on this implementation.
int ORT_API_CALL since_version(const OrtCustomOp*) { return 1; }
int ORT_API_CALL end_version(const OrtCustomOp*) { return 1; }

OrtCustomOp make_op(uint32_t api_version) {
  OrtCustomOp op{};
  // onnxruntime reads only the fields that existed in this version of the struct.
  op.version = api_version;
  op.CreateKernel = nullptr;  // the V2 entry points report errors as statuses
  op.GetName = op_name;
  op.GetExecutionProviderType = op_provider;
  op.GetInputType = float_type;
  op.GetInputTypeCount = input_count;
  op.GetOutputType = float_type;
  op.GetOutputTypeCount = output_count;
  op.KernelCompute = nullptr;
  op.KernelDestroy = destroy_kernel;
  op.GetInputCharacteristic = input_kind;
  op.GetOutputCharacteristic = output_kind;
  op.GetInputMemoryType = input_memory;
  op.GetVariadicInputMinArity = variadic_min_arity;
  op.GetVariadicInputHomogeneity = variadic_homogeneity;
  op.GetVariadicOutputMinArity = variadic_min_arity;
  op.GetVariadicOutputHomogeneity = variadic_homogeneity;
  op.CreateKernelV2 = create_kernel;
  op.KernelComputeV2 = compute_kernel;
  op.InferOutputShapeFn = nullptr;
  op.GetStartVersion = since_version;
  op.GetEndVersion = end_version;
  op.GetMayInplace = nullptr;
  op.ReleaseMayInplace = nullptr;
  op.GetAliasMap = nullptr;
  op.ReleaseAliasMap = nullptr;
  return op;
}

OrtStatus* register_domain(const OrtApi& api, uint32_t api_version, OrtSessionOptions* options) {
  // The op description and the domains must outlive every session that uses them, and sessions
  // may outlive any scope here; a process registers a handful at most, so they are kept for
  // the life of the process (releasing them from a static destructor could run after
  // onnxruntime itself is gone).
  static std::mutex mutex;
  static std::vector<OrtCustomOpDomain*> domains;
  static OrtCustomOp op = make_op(api_version);
  std::lock_guard<std::mutex> lock(mutex);

  OrtCustomOpDomain* domain = nullptr;
  if (OrtStatus* status = api.CreateCustomOpDomain(kDomain, &domain)) return status;
  domains.push_back(domain);
  if (OrtStatus* status = api.CustomOpDomain_Add(domain, &op)) return status;
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
