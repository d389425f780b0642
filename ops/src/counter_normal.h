// Many counter-based normals at once (docs/op-spec.md, "The counter-based normal"): the values
// normal(key; c0, c1, c2, c3 + i) for i < count, which is how both random streams of the op are
// read (read noise: one normal per column of a tile read; drift: one per device of a row).
//
// Philox itself is exact (philox.h); one call gives four normals (two Box–Muller pairs, cos and
// sin branches). The transforms are float32 polynomials on arguments reduced in integer
// arithmetic from the Philox words (1 - u near u = 1, the quadrant and the angle within it), so
// every normal is within a few float32 ulps of the exact value (docs/op-spec.md allows that); the
// tests measure them against the exact transform. CPUs with AVX-512F run normals_avx512.h's
// fused kernel; the portable loops here (branch-free float32 code, ln as a series in atanh,
// sin/cos on [0, pi/4], that the compiler vectorises) serve the others.
#pragma once

#include <cstdint>

namespace memcc {

void counter_normals(uint64_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, int64_t count,
                     float* out);

// The portable path of counter_normals, callable on any CPU so that tests check it too.
void counter_normals_portable(uint64_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, int64_t count,
                              float* out);
// The portable path's transforms alone: x[4 i .. 4 i + 3] are the Philox words x0..x3 of output
// i, out[4 i .. 4 i + 3] its four normals (tests pick words that Philox rarely yields).
void box_muller_portable(const uint32_t* x, int64_t n, float* out);

}  // namespace memcc
