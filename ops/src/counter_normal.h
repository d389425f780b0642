// Many counter-based normals at once (docs/op-spec.md, "The counter-based normal"): the values
// normal(key; c0, c1, c2, c3 + i) for i < count, which is how both random streams of the op are
// read (read noise: one normal per column of a tile read; drift: one per device of a row).
//
// Philox itself is exact (philox.h); one call gives four normals (two Box–Muller pairs, cos and
// sin branches). The transforms are branch-free float32 polynomials (ln as a series in atanh,
// sin/cos on [0, pi/4]) so that the loop vectorises 16 lanes wide; the arguments are reduced in
// integer arithmetic from the Philox words (1 - u near u = 1, the quadrant and the angle within
// it), so every normal is within a few float32 ulps of the exact value (docs/op-spec.md allows
// that); the tests check them against the float64 philox::normal.
#pragma once

#include <cstdint>

namespace memcc {

void counter_normals(uint64_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, int64_t count,
                     float* out);

}  // namespace memcc
