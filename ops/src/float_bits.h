// Reinterpreting a double's bits (exponent-field arithmetic in the vectorisable math of the
// normal stream and the drift law), without undefined behaviour.
#pragma once

#include <cstdint>
#include <cstring>

namespace memcc {

inline uint64_t bits_of(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof b);
  return b;
}
inline double double_of(uint64_t b) {
  double d;
  std::memcpy(&d, &b, sizeof d);
  return d;
}

}  // namespace memcc
