// Attributes of ai.memcc::MemristiveMatMul (docs/op-spec.md, "Attributes"): parsing, defaults and
// every constraint that does not depend on input shapes. Shape-dependent checks live in
// layer_plan.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace memcc {

enum class AutoPad { NotSet, SameUpper, SameLower, Valid };
// The digital activation applied after the bias (docs/op-spec.md, step 9).
enum class Activation { None, Relu };

struct OpAttributes {
  float weight_scale = 1.0f;
  float g_ref = 0.0f;
  int64_t tile_rows = 0;  // 0: the whole K
  int64_t tile_cols = 0;  // 0: all N' columns
  float max_input_voltage = 0.3f;
  float input_range = 0.0f;
  int dac_bits = 0;
  int adc_bits = 0;
  float adc_overflow_rate = 0.0f;

  // Run-time non-idealities (runtime_effects.h).
  float iv_a = 0.0f, iv_b = 0.0f;  // f(v) = iv_a sinh(iv_b v); iv_b = 0: f(v) = v
  float read_noise_std = 0.0f;
  int64_t noise_seed = 0;
  float drift_nu = 0.0f, drift_nu_std = 0.0f, drift_t0 = 1.0f;
  int64_t drift_seed = 0;

  bool conv = false;  // kernel_shape present
  std::vector<int64_t> kernel_shape;
  std::vector<int64_t> strides;    // n values (defaults filled in)
  std::vector<int64_t> pads;       // 2n values (defaults filled in)
  std::vector<int64_t> dilations;  // n values (defaults filled in)
  int64_t group = 1;
  AutoPad auto_pad = AutoPad::NotSet;
  Activation activation = Activation::None;
  std::vector<int64_t> max_pool;  // n window sizes (step 10); empty: no pooling

  bool pools() const { return !max_pool.empty(); }

  // Without ADC the tile reads are summed exactly, so tiling does not change the result and the
  // whole layer is one GEMM against weight_scale * D (after the DAC, if any).
  bool uses_adc() const { return adc_bits > 0; }
  // The input vectors need a pass of their own only if it changes them: a DAC, a fixed input
  // range that clamps, or the I-V nonlinearity. With input_range = 0, x / max|x| * max|x| is x.
  // Read noise needs the voltages too (its variance is a product of f(v)^2), so it counts here:
  // with it or the nonlinearity, the layer is never one product of X with W.
  bool encodes_input() const {
    return dac_bits > 0 || input_range > 0.0f || nonlinear_iv() || read_noise();
  }
  bool nonlinear_iv() const { return iv_b > 0.0f; }
  bool read_noise() const { return read_noise_std > 0.0f; }
  // Each row tile's currents are formed separately (an ADC per read). Read noise alone does not
  // need it: without an ADC the spec draws one term per vector and column over all K rows.
  bool reads_tiles() const { return uses_adc(); }
};

// Read access to a node's attributes, so parsing can be tested without onnxruntime. Each getter
// returns nullopt when the attribute is absent or has another type; `present` says whether it
// exists with any type.
class AttributeSource {
 public:
  virtual ~AttributeSource() = default;
  virtual bool present(const char* name) const = 0;
  virtual std::optional<float> get_float(const char* name) const = 0;
  virtual std::optional<int64_t> get_int(const char* name) const = 0;
  virtual std::optional<std::vector<int64_t>> get_ints(const char* name) const = 0;
  virtual std::optional<std::string> get_string(const char* name) const = 0;
};

// Throws OpError naming the attribute and the constraint it violates.
OpAttributes parse_attributes(const AttributeSource& source);

}  // namespace memcc
