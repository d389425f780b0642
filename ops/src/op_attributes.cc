#include "op_attributes.h"

#include <cmath>
#include <sstream>

#include "errors.h"

namespace memcc {
namespace {

std::string list_text(const std::vector<int64_t>& values) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << values[i];
  out << ']';
  return out.str();
}

std::string float_text(float v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

[[noreturn]] void fail(const std::string& message) { throw OpError(message); }

std::string quoted(const char* name) { return std::string("attribute '") + name + "'"; }

// Float attributes also accept an integer (a model writer's `weight_scale=1` is an INT in ONNX).
std::optional<float> read_float(const AttributeSource& src, const char* name) {
  if (!src.present(name)) return std::nullopt;
  if (auto f = src.get_float(name)) return f;
  if (auto i = src.get_int(name)) return static_cast<float>(*i);
  fail(quoted(name) + " must be a float");
}

float finite_float(const AttributeSource& src, const char* name, float fallback) {
  const float v = read_float(src, name).value_or(fallback);
  if (!std::isfinite(v)) {
    fail(quoted(name) + " must be finite, got " + float_text(v));
  }
  return v;
}

std::optional<int64_t> read_int(const AttributeSource& src, const char* name) {
  if (!src.present(name)) return std::nullopt;
  if (auto i = src.get_int(name)) return i;
  fail(quoted(name) + " must be an int");
}

std::optional<std::vector<int64_t>> read_ints(const AttributeSource& src, const char* name) {
  if (!src.present(name)) return std::nullopt;
  if (auto v = src.get_ints(name)) return v;
  fail(quoted(name) + " must be a list of ints");
}

std::optional<std::string> read_string(const AttributeSource& src, const char* name) {
  if (!src.present(name)) return std::nullopt;
  if (auto s = src.get_string(name)) return s;
  fail(quoted(name) + " must be a string");
}

int read_bits(const AttributeSource& src, const char* name) {
  const int64_t b = read_int(src, name).value_or(0);
  if (b != 0 && (b < 2 || b > 24)) {
    fail(quoted(name) + " must be 0 or in 2..24, got " + std::to_string(b));
  }
  return static_cast<int>(b);
}

int64_t seed(const AttributeSource& src, const char* name) {
  const int64_t v = read_int(src, name).value_or(0);
  if (v < 0) fail(quoted(name) + " must be >= 0, got " + std::to_string(v));
  return v;
}

std::vector<int64_t> conv_list(const AttributeSource& src, const char* name, size_t count,
                               int64_t fallback, int64_t minimum) {
  auto values = read_ints(src, name).value_or(std::vector<int64_t>(count, fallback));
  if (values.size() != count) {
    fail(quoted(name) + " must have " + std::to_string(count) + " values, got " + list_text(values));
  }
  for (int64_t v : values) {
    if (v < minimum) {
      fail(quoted(name) + " must be values >= " + std::to_string(minimum) + ", got " + list_text(values));
    }
  }
  return values;
}

}  // namespace

OpAttributes parse_attributes(const AttributeSource& src) {
  OpAttributes a;

  if (!src.present("weight_scale")) fail("attribute 'weight_scale' is required");
  a.weight_scale = finite_float(src, "weight_scale", 0.0f);
  if (!(a.weight_scale > 0.0f)) {
    fail("attribute 'weight_scale' must be > 0, got " + float_text(a.weight_scale));
  }
  a.g_ref = finite_float(src, "g_ref", 0.0f);

  const auto tile = read_ints(src, "tile_shape").value_or(std::vector<int64_t>{0, 0});
  if (tile.size() != 2 || tile[0] < 0 || tile[1] < 0) {
    fail("attribute 'tile_shape' must be two values >= 0, got " + list_text(tile));
  }
  a.tile_rows = tile[0];
  a.tile_cols = tile[1];

  a.max_input_voltage = finite_float(src, "max_input_voltage", 0.3f);
  if (!(a.max_input_voltage > 0.0f)) {
    fail("attribute 'max_input_voltage' must be > 0, got " + float_text(a.max_input_voltage));
  }
  a.input_range = finite_float(src, "input_range", 0.0f);
  if (a.input_range < 0.0f) {
    fail("attribute 'input_range' must be >= 0, got " + float_text(a.input_range));
  }
  a.dac_bits = read_bits(src, "dac_bits");
  a.adc_bits = read_bits(src, "adc_bits");
  a.adc_overflow_rate = finite_float(src, "adc_overflow_rate", 0.0f);
  if (!(a.adc_overflow_rate >= 0.0f && a.adc_overflow_rate < 1.0f)) {
    fail("attribute 'adc_overflow_rate' must satisfy 0 <= q < 1, got " +
         float_text(a.adc_overflow_rate));
  }
  const auto quantization = read_string(src, "quantization").value_or("linear");
  if (quantization != "linear") {
    fail("attribute 'quantization' must be \"linear\" (the only quantizer of version 1), got \"" +
         quantization + "\"");
  }

  a.iv_a = finite_float(src, "iv_a", 0.0f);
  a.iv_b = finite_float(src, "iv_b", 0.0f);
  if (a.iv_b < 0.0f) fail("attribute 'iv_b' must be >= 0, got " + float_text(a.iv_b));
  if (a.iv_b > 0.0f && !(a.iv_a > 0.0f)) {
    fail("attribute 'iv_a' must be > 0 when iv_b > 0, got " + float_text(a.iv_a));
  }
  a.read_noise_std = finite_float(src, "read_noise_std", 0.0f);
  if (a.read_noise_std < 0.0f) fail("attribute 'read_noise_std' must be >= 0, got " + float_text(a.read_noise_std));
  a.noise_seed = seed(src, "noise_seed");
  a.drift_nu = finite_float(src, "drift_nu", 0.0f);
  if (a.drift_nu < 0.0f) fail("attribute 'drift_nu' must be >= 0, got " + float_text(a.drift_nu));
  a.drift_nu_std = finite_float(src, "drift_nu_std", 0.0f);
  if (a.drift_nu_std < 0.0f) fail("attribute 'drift_nu_std' must be >= 0, got " + float_text(a.drift_nu_std));
  a.drift_t0 = finite_float(src, "drift_t0", 1.0f);
  if (!(a.drift_t0 > 0.0f)) fail("attribute 'drift_t0' must be > 0, got " + float_text(a.drift_t0));
  a.drift_seed = seed(src, "drift_seed");
  const auto activation = read_string(src, "activation").value_or("NONE");
  if (activation == "RELU") {
    a.activation = Activation::Relu;
  } else if (activation != "NONE") {
    fail("attribute 'activation' must be one of NONE, RELU, got \"" + activation + "\"");
  }

  const auto kernel = read_ints(src, "kernel_shape");
  if (!kernel) {
    // The spec marks these "conv mode only"; accepting them silently would hide a compiler bug.
    std::string present;
    for (const char* name : {"strides", "pads", "dilations", "group", "auto_pad", "max_pool"}) {
      if (src.present(name)) present += std::string(present.empty() ? "" : ", ") + "'" + name + "'";
    }
    if (!present.empty()) {
      fail("attribute(s) " + present + " are only allowed in conv mode (with 'kernel_shape')");
    }
    return a;
  }

  a.conv = true;
  a.kernel_shape = *kernel;
  const size_t n = a.kernel_shape.size();
  bool kernel_ok = n >= 1 && n <= 3;
  for (int64_t k : a.kernel_shape) kernel_ok = kernel_ok && k >= 1;
  if (!kernel_ok) {
    fail("attribute 'kernel_shape' must be 1 to 3 values >= 1, got " + list_text(a.kernel_shape));
  }
  a.strides = conv_list(src, "strides", n, 1, 1);
  a.dilations = conv_list(src, "dilations", n, 1, 1);
  a.pads = conv_list(src, "pads", 2 * n, 0, 0);
  if (src.present("max_pool")) a.max_pool = conv_list(src, "max_pool", n, 1, 1);
  a.group = read_int(src, "group").value_or(1);
  if (a.group < 1) fail("attribute 'group' must be >= 1, got " + std::to_string(a.group));

  const auto auto_pad = read_string(src, "auto_pad").value_or("NOTSET");
  if (auto_pad == "NOTSET") {
    a.auto_pad = AutoPad::NotSet;
  } else if (auto_pad == "SAME_UPPER") {
    a.auto_pad = AutoPad::SameUpper;
  } else if (auto_pad == "SAME_LOWER") {
    a.auto_pad = AutoPad::SameLower;
  } else if (auto_pad == "VALID") {
    a.auto_pad = AutoPad::Valid;
  } else {
    fail("attribute 'auto_pad' must be one of NOTSET, SAME_UPPER, SAME_LOWER, VALID, got \"" +
         auto_pad + "\"");
  }
  if (a.auto_pad != AutoPad::NotSet && src.present("pads")) {
    fail("attribute 'pads' must be absent when auto_pad is " + auto_pad);
  }
  return a;
}

}  // namespace memcc
