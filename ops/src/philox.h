// Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011) and the counter-based normal of docs/op-spec.md ("The counter-based normal").
// Header-only and free of the standard library beyond <cstdint>/<cmath>, so the same code can be
// compiled for the CPU and, later, for CUDA (MEMCC_HD marks the functions for both).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define MEMCC_HD __host__ __device__
#else
#define MEMCC_HD
#endif

namespace memcc {
namespace philox {

constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;

struct Words {
  uint32_t w[4];
};

// The ten rounds of Philox4x32 on one counter. Each round multiplies words 0 and 2 by the two
// constants (64-bit products), mixes the high halves with words 3 and 1 and the round key, and
// permutes; the key is bumped by the Weyl constants between rounds.
MEMCC_HD inline Words philox4x32_10(Words ctr, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * ctr.w[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * ctr.w[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    ctr = Words{{hi1 ^ ctr.w[1] ^ k0, lo1, hi0 ^ ctr.w[3] ^ k1, lo0}};
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return ctr;
}

// The spec's key split: (key mod 2^32, key div 2^32).
MEMCC_HD inline uint32_t key_lo(uint64_t key) { return static_cast<uint32_t>(key); }
MEMCC_HD inline uint32_t key_hi(uint64_t key) { return static_cast<uint32_t>(key >> 32); }

// Box–Muller on two words: u = (x + 0.5) / 2^32 lies strictly inside (0, 1); `which` 0 gives the
// cos branch, 1 the sin branch.
MEMCC_HD inline double box_muller(uint32_t x0, uint32_t x1, int which = 0) {
  const double two_pi = 6.283185307179586476925286766559;
  const double u1 = (static_cast<double>(x0) + 0.5) * 0x1p-32;
  const double u2 = (static_cast<double>(x1) + 0.5) * 0x1p-32;
  const double r = std::sqrt(-2.0 * std::log(u1));
  return which == 0 ? r * std::cos(two_pi * u2) : r * std::sin(two_pi * u2);
}

// normal(key; c0, c1, c2, c3), scalar and in double: Philox of (c0, c1, c2, c3 / 4) yields four
// normals (two Box–Muller pairs), of which this is number c3 mod 4. The definition the batched
// generator (counter_normal.h) is tested against.
MEMCC_HD inline double normal(uint64_t key, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3) {
  const Words x = philox4x32_10(Words{{c0, c1, c2, c3 >> 2}}, key_lo(key), key_hi(key));
  const uint32_t lane = c3 & 3u;
  return lane < 2 ? box_muller(x.w[0], x.w[1], static_cast<int>(lane))
                  : box_muller(x.w[2], x.w[3], static_cast<int>(lane - 2));
}

}  // namespace philox
}  // namespace memcc
