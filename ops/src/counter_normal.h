// Many counter-based normals at once (docs/op-spec.md, "The counter-based normal"): the values
// normal(key; c0, c1, c2, c3 + i) for i < count, which is how both random streams of the op are
// read (read noise: one normal per column of a tile read; drift: one per device of a row).
//
// Philox itself is exact (philox.h); one call gives four normals (two Box–Muller pairs, cos and
// sin branches). The transforms use branch-free polynomial ln, cos and sin in double so that the
// compiler vectorises the whole loop (std::log/std::cos would not be); the approximations are
// accurate to ~1e-9 relative, far below the float32 the results are stored in; the tests check
// them against philox::normal.
#pragma once

#include <cstdint>

namespace memcc {

void counter_normals(uint64_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, int64_t count,
                     float* out);

}  // namespace memcc
