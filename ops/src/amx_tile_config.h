// The 64-byte tile configuration that LDTILECFG reads (Intel AMX, palette 1): per tile register,
// its bytes per row and its rows. Shared by the AMX-BF16 variance kernels.
#pragma once

#include <cstdint>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && __GNUC__ >= 11
#include <immintrin.h>
#endif

namespace memcc {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};

  // Every tile register used as 16 rows of 64 bytes (the kernels' only shape).
  static TileConfig all_16_by_64() {
    TileConfig c;
    for (int t = 0; t < 8; ++t) {
      c.rows[t] = 16;
      c.colsb[t] = 64;
    }
    return c;
  }
};

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && __GNUC__ >= 11
// LDTILECFG of cfg. GCC's _tile_loadconfig names only the configuration's first 8 bytes as its
// memory operand, so the compiler may drop the stores of the rows and column widths as dead (a
// small test function compiled by GCC 12 loaded an all-zero configuration and faulted); the
// barrier makes all 64 bytes written first.
__attribute__((target("amx-tile"))) inline void load_tile_config(const TileConfig& cfg) {
  asm volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}
#endif

}  // namespace memcc
