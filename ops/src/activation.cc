#include "activation.h"

#include <algorithm>
#include <cstddef>

#include "simd_dispatch.h"

namespace memcc {
namespace {

MEMCC_SIMD_CLONES void relu(float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = y[i] < 0.0f ? 0.0f : y[i];
}

}  // namespace

void apply_activation(Activation activation, float* y, int64_t count, const TaskRunner& runner) {
  if (activation == Activation::None || count <= 0) return;
  const size_t n = static_cast<size_t>(count);
  constexpr size_t kChunk = size_t{1} << 16;  // floats per task: well above the pool's per-task cost
  const size_t tasks = (n + kChunk - 1) / kChunk;
  if (tasks == 1) {
    relu(y, n);
    return;
  }
  runner.run(tasks, [&](size_t t) {
    const size_t begin = t * kChunk;
    relu(y + begin, std::min(kChunk, n - begin));
  });
}

}  // namespace memcc
