// One MemristiveMatMul call, split into tasks: matmul mode and conv mode, the one-GEMM path
// (no ADC) and the tiled ADC path. Free of onnxruntime, so the tests run exactly this code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "layer_plan.h"
#include "op_attributes.h"
#include "runtime_effects.h"

namespace memcc {

// How tasks reach threads: onnxruntime's intra-op pool in the kernel, a loop in the tests.
class TaskRunner {
 public:
  virtual ~TaskRunner() = default;
  // Calls fn(i) for every i < total, possibly concurrently, and returns when all are done.
  // fn does not throw (run_layer catches inside its tasks).
  virtual void run(size_t total, const std::function<void(size_t)>& fn) const = 0;
  // Tasks that can usefully run at once: how finely run_layer splits the work.
  virtual int concurrency() const = 0;
};

class SerialRunner : public TaskRunner {
 public:
  explicit SerialRunner(int pretend_concurrency = 1) : concurrency_(pretend_concurrency) {}
  void run(size_t total, const std::function<void(size_t)>& fn) const override {
    for (size_t i = 0; i < total; ++i) fn(i);
  }
  int concurrency() const override { return concurrency_; }

 private:
  int concurrency_;
};

// Calls fn(i) for i < total through the runner; an exception thrown by a task is rethrown here
// (the first one), after every task has finished.
void run_tasks(const TaskRunner& runner, int64_t total, const std::function<void(size_t)>& fn);

// The matrix the layer reads, [K, N] row-major: weight_scale * D when the tiles are not read
// one by one (the result is then one product), D when they are (the ADC and the read noise see
// currents).
float matrix_scale(const OpAttributes& attrs);

// y (shape plan.y_shape) from x (the X tensor) and the packed matrix; bias may be null. With
// read noise on, `noise` (its variance matrix and stream) is required.
// Throws OpError (only for sizes beyond the BLAS's 32-bit ints, or a missing `noise`).
// Returns true when it also applied attrs.activation (step 9) to y; otherwise the caller does.
bool run_layer(const OpAttributes& attrs, const LayerPlan& plan, const float* matrix, const float* x,
               const float* bias, float* y, const TaskRunner& runner, const ReadNoise* noise = nullptr);

}  // namespace memcc
