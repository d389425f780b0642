// The 64-byte tile configuration that LDTILECFG reads (Intel AMX, palette 1): per tile register,
// its bytes per row and its rows. Shared by the AMX-BF16 variance kernels.
#pragma once

#include <cstdint>

namespace memcc {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

}  // namespace memcc
