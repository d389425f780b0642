// The I-V function f(v) = a sinh(b v) in float32 with AVX-512 (docs/op-spec.md, "Numerical
// agreement", states its accuracy): iv_apply / iv_apply_each call these where the CPU has
// AVX-512F and evaluate in float64 elsewhere.
#pragma once

#include <cstdint>

namespace memcc {

// Whether this CPU runs the float32 kernels (false where they are not compiled in).
bool iv_fast_available();

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MEMCC_IV_AVX512 1
// The contracts of iv_apply / iv_apply_each (runtime_effects.h). Only when iv_fast_available().
void iv_apply_fast(float* x, int64_t n, float a, float b, float pre, float post);
void iv_apply_each_fast(float* x, int64_t n, float a, float b, const float* pre, const float* post);
// col[k * ldc + i] := post[i] * f(pre[i] * col[k * ldc + i]) for k < K, i < count: iv_apply_each
// on every row of im2col columns, with the same results.
void iv_apply_columns_fast(float* col, int64_t ldc, int64_t K, int64_t count, float a, float b, const float* pre,
                           const float* post);
#endif

}  // namespace memcc
