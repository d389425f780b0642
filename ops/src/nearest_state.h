// Nearest of N sorted conductance states (finite conductance states, docs: memcc/quantize.py):
// binary search for the first state >= v; of it and the state below, the nearer wins and a tie
// goes to the lower state; values outside the states' range get the end state; NaN gets -1.
// Header-only and marked for host and device, like philox.h, so a CUDA kernel can share it.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define MEMCC_STATES_HD __host__ __device__
#else
#define MEMCC_STATES_HD
#endif

namespace memcc {

// `states` sorted ascending, count >= 1.
MEMCC_STATES_HD inline int64_t nearest_state_index(double v, const double* states, int64_t count) {
  if (v != v) return -1;  // NaN
  if (count == 1) return 0;
  // hi: the first state >= v, clamped to [1, count - 1] so that both neighbours exist.
  int64_t lo = 0, hi = count;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (states[mid] < v) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  hi = lo < 1 ? 1 : (lo > count - 1 ? count - 1 : lo);
  return (states[hi] - v) < (v - states[hi - 1]) ? hi : hi - 1;  // strict: a tie keeps the lower
}

}  // namespace memcc
