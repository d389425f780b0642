// Run-time dispatch for the element-wise loops (encoding, ADC epilogue, im2col). The wheel is
// built for baseline x86-64 (SSE2); GCC's target_clones compiles an AVX2 copy next to it and
// picks one when the library loads, so AVX2 machines get 8-wide loops without -march.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MEMCC_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
// Integer-heavy loops (the Philox rounds of the random streams) gain from 16 lanes.
#define MEMCC_SIMD_CLONES_WIDE __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MEMCC_SIMD_CLONES
#define MEMCC_SIMD_CLONES_WIDE
#endif
