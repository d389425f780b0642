#include "im2col.h"

#include <algorithm>

#include "simd_dispatch.h"

namespace memcc {
namespace {

// Smallest t >= 0 with a + t * s >= 0 (s > 0).
inline int64_t first_nonnegative(int64_t a, int64_t s) { return a >= 0 ? 0 : (-a + s - 1) / s; }

// Number of t >= 0 with a + t * s < limit, i.e. the first t past the end (s > 0).
inline int64_t end_below(int64_t a, int64_t limit, int64_t s) {
  return a >= limit ? 0 : (limit - a + s - 1) / s;
}

// dst[t] = row[a + t * s] for t < n, with [lo, hi) the t whose index lies inside the row and
// zeros elsewhere. Runs are short (one output row, often 8 to 64 values), so plain loops beat
// memcpy/memset calls; CMake builds this file with loop-pattern distribution off so that GCC
// does not turn them back into those calls.
inline void gather_row(const float* row, int64_t a, int64_t s, int64_t lo, int64_t hi, int64_t n,
                       float* dst) {
  for (int64_t t = 0; t < lo; ++t) dst[t] = 0.0f;
  if (s == 1) {
    const float* src = row + (a + lo);  // a + lo >= 0 whenever the run is not empty
    for (int64_t t = lo; t < hi; ++t) dst[t] = src[t - lo];
  } else {
    for (int64_t t = lo; t < hi; ++t) dst[t] = row[a + t * s];  // a + lo * s >= 0
  }
  for (int64_t t = hi; t < n; ++t) dst[t] = 0.0f;
}

}  // namespace

MEMCC_SIMD_CLONES
void im2col_columns(const float* x, const Im2colShape& g, int64_t p0, int64_t count, float* col,
                    int64_t ldc) {
  if (count <= 0) return;
  const int64_t ksize = g.kernel_size();
  const int64_t plane = g.in[1] * g.in[2];
  // Output position p0 as (o0, o1, o2); the inner loops walk runs along the last axis.
  const int64_t start0 = p0 / (g.out[1] * g.out[2]);
  const int64_t start1 = (p0 / g.out[2]) % g.out[1];
  const int64_t start2 = p0 % g.out[2];

  for (int64_t c = 0; c < g.channels; ++c) {
    const float* xc = x + c * g.input_size();
    for (int64_t k0 = 0; k0 < g.kernel[0]; ++k0) {
      for (int64_t k1 = 0; k1 < g.kernel[1]; ++k1) {
        for (int64_t k2 = 0; k2 < g.kernel[2]; ++k2) {
          const int64_t k = c * ksize + (k0 * g.kernel[1] + k1) * g.kernel[2] + k2;
          float* dst = col + k * ldc;
          const int64_t off0 = k0 * g.dilation[0] - g.pad_begin[0];
          const int64_t off1 = k1 * g.dilation[1] - g.pad_begin[1];
          const int64_t off2 = k2 * g.dilation[2] - g.pad_begin[2];
          // Output columns whose input column lies inside the image: the same for every row,
          // so the divisions happen once per kernel offset, not once per run.
          const int64_t col_lo = std::min(g.out[2], first_nonnegative(off2, g.stride[2]));
          const int64_t col_hi = std::max(col_lo, std::min(g.out[2], end_below(off2, g.in[2], g.stride[2])));
          int64_t o0 = start0, o1 = start1, o2 = start2, done = 0;
          while (done < count) {
            const int64_t run = std::min(g.out[2] - o2, count - done);
            const int64_t i0 = o0 * g.stride[0] + off0;
            const int64_t i1 = o1 * g.stride[1] + off1;
            if (i0 < 0 || i0 >= g.in[0] || i1 < 0 || i1 >= g.in[1]) {
              for (int64_t t = 0; t < run; ++t) dst[t] = 0.0f;
            } else {
              const int64_t lo = std::min(run, std::max<int64_t>(0, col_lo - o2));
              const int64_t hi = std::max(lo, std::min(run, col_hi - o2));
              gather_row(xc + i0 * plane + i1 * g.in[2], o2 * g.stride[2] + off2, g.stride[2], lo, hi, run, dst);
            }
            dst += run;
            done += run;
            o2 = 0;
            if (++o1 == g.out[1]) {
              o1 = 0;
              ++o0;
            }
          }
        }
      }
    }
  }
}

}  // namespace memcc
