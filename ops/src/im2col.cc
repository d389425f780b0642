#include "im2col.h"

#include <algorithm>
#include <cstring>

#include "simd_dispatch.h"

namespace memcc {
namespace {

// Smallest t >= 0 with a + t * s >= 0 (s > 0). (Stride 1 without the division: these run once
// per patch row, and a 64-bit division costs as much as copying a short row.)
inline int64_t first_nonnegative(int64_t a, int64_t s) {
  if (a >= 0) return 0;
  return s == 1 ? -a : (-a + s - 1) / s;
}

// Number of t >= 0 with a + t * s < limit, i.e. the first t past the end (s > 0).
inline int64_t end_below(int64_t a, int64_t limit, int64_t s) {
  if (a >= limit) return 0;
  return s == 1 ? limit - a : (limit - a + s - 1) / s;
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

inline void zero(float* dst, int64_t n) {
  for (int64_t t = 0; t < n; ++t) dst[t] = 0.0f;
}

// Stride 1 along the last two axes and rows as wide as the input's: then output position
// (o1, o2) of one kernel offset reads input element (o1 + off1) * W + o2 + off2, i.e. a row of
// the patch matrix is the input plane shifted by a constant, and runs of whole output rows are
// one contiguous copy. Only the padding needs zeros: rows outside the image, and the few columns
// at the left and right edges (col_lo, col_hi).
bool shifted_planes(const Im2colShape& g) {
  return g.stride[1] == 1 && g.stride[2] == 1 && g.out[2] == g.in[2];
}

// One row of the patch matrix on the shifted-plane path: positions p0 .. p0 + count of kernel
// offset (off0, off1, off2) of channel plane xc.
void shifted_row(const float* xc, const Im2colShape& g, int64_t p0, int64_t count, int64_t off0,
                 int64_t off1, int64_t off2, int64_t col_lo, int64_t col_hi, float* dst) {
  const int64_t W = g.out[2];
  const int64_t out_plane = g.out[1] * W;
  const int64_t in_plane = g.in[1] * W;
  const int64_t end = p0 + count;
  int64_t p = p0;
  while (p < end) {
    const int64_t o0 = p < out_plane ? 0 : p / out_plane;  // 2-D: always the first plane
    const int64_t seg_end = std::min(end, (o0 + 1) * out_plane);
    const int64_t sa = p - o0 * out_plane, sb = seg_end - o0 * out_plane;  // within the plane
    float* d = dst + (p - p0);
    const int64_t i0 = o0 * g.stride[0] + off0;
    if (i0 < 0 || i0 >= g.in[0]) {
      zero(d, sb - sa);
      p = seg_end;
      continue;
    }
    // Output rows whose input row lies inside the image, as flat positions [ca, cb).
    const int64_t r_lo = std::max<int64_t>(0, -off1);
    const int64_t r_hi = std::max(r_lo, std::min(g.out[1], g.in[1] - off1));
    const int64_t ca = std::min(sb, std::max(sa, r_lo * W));
    const int64_t cb = std::max(ca, std::min(sb, r_hi * W));
    zero(d, ca - sa);
    zero(d + (cb - sa), sb - cb);
    if (cb > ca) {
      // Source index of flat position f: f + shift, inside the input plane for every f in
      // [ca, cb) except at most the first / last few (the corner reaching past the plane).
      const int64_t shift = off1 * W + off2;
      const int64_t fa = std::min(cb, std::max(ca, -shift));
      const int64_t fb = std::max(fa, std::min(cb, in_plane - shift));
      zero(d + (ca - sa), fa - ca);
      zero(d + (fb - sa), cb - fb);
      if (fb > fa) {
        std::memcpy(d + (fa - sa), xc + i0 * in_plane + fa + shift, static_cast<size_t>(fb - fa) * sizeof(float));
      }
      if (col_lo > 0 || col_hi < W) {
        // The edge columns read across into the neighbouring input row: zero them, one column
        // at a time down the rows (a store per row; the edges are a column or two wide).
        float* d0 = d - sa;  // d0[f]: flat position f of the plane
        const int64_t row_start = ca / W * W;
        for (int64_t o2 = 0; o2 < W; ++o2) {
          if (o2 == col_lo) o2 = std::max(o2, col_hi);
          if (o2 >= W) break;
          // First position >= ca in column o2.
          int64_t f = row_start + o2;
          if (f < ca) f += W;
          for (; f < cb; f += W) d0[f] = 0.0f;
        }
      }
    }
    p = seg_end;
  }
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
  const bool fast = shifted_planes(g);

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
          if (fast) {
            shifted_row(xc, g, p0, count, off0, off1, off2, col_lo, col_hi, dst);
            continue;
          }
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
