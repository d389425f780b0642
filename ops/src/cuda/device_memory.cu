#include <cuda_runtime.h>

#include <string>

#include "../errors.h"
#include "crossbar_cuda.h"

namespace memcc {
namespace cuda {
namespace {

void check_cuda(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  throw OpError(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

}  // namespace

void use_device(int device) {
  int current = -1;
  check_cuda(cudaGetDevice(&current), "cudaGetDevice");
  if (current != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
}

float* device_alloc_floats(size_t count) {
  void* p = nullptr;
  check_cuda(cudaMalloc(&p, (count > 0 ? count : 1) * sizeof(float)), "cudaMalloc of packed conductances");
  return static_cast<float*>(p);
}

void device_free(void* p) noexcept {
  if (p) cudaFree(p);
}

void fill_zero_async(float* p, size_t count, void* stream) {
  if (count == 0) return;
  check_cuda(cudaMemsetAsync(p, 0, count * sizeof(float), static_cast<cudaStream_t>(stream)), "cudaMemsetAsync");
}

void check_launch(const char* what) { check_cuda(cudaGetLastError(), what); }

}  // namespace cuda
}  // namespace memcc
