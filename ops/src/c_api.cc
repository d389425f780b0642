// Plain C entry points of libmemcc_ops for callers other than onnxruntime (memcc's Python
// package loads them with ctypes). Each returns 0 on success and a negative code for bad
// arguments; none throws.
#include <cstdint>

#include "nearest_state.h"

extern "C" {

// out[i] = index of the state nearest to values[i] (nearest_state.h); -1 for NaN.
// Returns -1 when count < 1 or a pointer is null (with n > 0).
__attribute__((visibility("default"))) int memcc_nearest_state_index(const double* values, int64_t n,
                                                                    const double* states, int64_t count,
                                                                    int64_t* out) {
  if (n < 0 || count < 1 || !states || (n > 0 && (!values || !out))) return -1;
  for (int64_t i = 0; i < n; ++i) out[i] = memcc::nearest_state_index(values[i], states, count);
  return 0;
}

}  // extern "C"
