// Reinterpreting a float's or double's bits (exponent-field arithmetic: the ADC step, the
// vectorisable math of the normal stream and the drift law), without undefined behaviour.
#pragma once

#include <cstdint>
#include <cstring>

namespace memcc {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
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
