// One MemristiveMatMul call, split into tasks: matmul mode and conv mode, the one-GEMM path
// (no ADC) and the tiled ADC path. Free of onnxruntime, so the tests run exactly this code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "layer_plan.h"
#include "quantize.h"
#include "op_attributes.h"
#include "runtime_effects.h"

namespace memcc {

struct SmallGemmPack;
struct ConvTilePack;

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

// The sigma to build the read-noise variance matrix with (noise_variance): read_noise_std when
// the tiles are read (currents), weight_scale * read_noise_std when the layer is one product
// (the noise term is then added in output units).
float variance_sigma(const OpAttributes& attrs);

// With a fixed input range (input_range > 0) steps 1-4 and f act on every input element alone
// (and map the zero padding of conv mode to 0), so the whole X can be encoded once, as the
// one-product path reads it: out[i] = f(v(x[i])) * input_range / V_max, n elements.
void encode_elementwise(const OpAttributes& attrs, const float* x, int64_t n, float* out, const TaskRunner& runner);

// Read noise without an ADC when the output's variance is already known: var has Y's layout
// (plan.y_shape) and holds sum_k x_k^2 (weight_scale sigma)^2 sum_s G'^2 per output; adds
// sqrt(var) * normal(key; c, q, 0, j') to y. For the engines that compute the two products with
// onnxruntime's Gemm / Conv (no DAC, no I-V, input_range = 0: the encoded input is x itself).
void add_noise_terms(const OpAttributes& attrs, const LayerPlan& plan, const ReadNoise& noise, const float* var,
                     float* y, const TaskRunner& runner);

// The same terms in matmul mode from the encoded inputs themselves (e(X), [plan.rows, K]): the
// variance products run per block of rows, as run_layer's one-product path does.
void add_noise_from_inputs(const LayerPlan& plan, const ReadNoise& noise, const float* encoded, float* y,
                           const TaskRunner& runner);

// y (shape plan.y_shape) from x (the X tensor) and the packed matrix; bias may be null. With
// read noise on, `noise` (its variance matrix and stream) is required.
// Throws OpError (only for sizes beyond the BLAS's 32-bit ints, or a missing `noise`).
// Returns true when it also applied attrs.activation (step 9) to y; otherwise the caller does.
// small (optional): `matrix` packed by pack_small_gemm; the matmul ADC path without read noise
// then reads its tiles from it (tile_cols a multiple of kSmallGemmPanel, or one column tile), and
// the encoded matmul path without an ADC runs its product on it when rows <= kSmallGemmMaxRows.
// tiles (optional): `matrix` packed by pack_conv_tiles for the layer's groups and column tiles
// (without an ADC: one column tile per group); the conv ADC path and the encoded conv path
// without an ADC (a DAC or f) then read it (with read noise, only when noise->conv_tiles is
// `noise->variance` packed the same way).
bool run_layer(const OpAttributes& attrs, const LayerPlan& plan, const float* matrix, const float* x,
               const float* bias, float* y, const TaskRunner& runner, const ReadNoise* noise = nullptr,
               const SmallGemmPack* small = nullptr, const ConvTilePack* tiles = nullptr);

// Shared by both engines (layer_compute.cc, batched_layer.cc).
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
// The input-encoding part of the attributes (steps 1-4 and the I-V function).
InputEncoding encoding_of(const OpAttributes& a);

}  // namespace memcc
