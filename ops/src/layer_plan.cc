#include "layer_plan.h"

#include <limits>
#include <sstream>
#include <string>

#include "conv_geometry.h"
#include "errors.h"

namespace memcc {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

std::string str(int64_t v) { return std::to_string(v); }

// Product with an overflow check; tensors onnxruntime hands us always fit, but a kernel_shape
// attribute is free text.
int64_t checked_product(const std::vector<int64_t>& values, const char* what) {
  int64_t p = 1;
  for (int64_t v : values) {
    if (v < 0 || (v > 0 && p > std::numeric_limits<int64_t>::max() / v)) {
      throw OpError(std::string(what) + " is too large");
    }
    p *= v;
  }
  return p;
}

}  // namespace

LayerPlan plan_layer(const OpAttributes& a, const std::vector<int64_t>& x_shape,
                     const std::vector<int64_t>& g_shape, const std::vector<int64_t>* bias_shape) {
  LayerPlan p;
  if (g_shape.size() != 3 || (g_shape[0] != 1 && g_shape[0] != 2)) {
    throw OpError("input 'G' must have shape [S, K, N] with S in {1, 2}, got " + shape_text(g_shape));
  }
  p.S = g_shape[0];
  p.K = g_shape[1];
  p.N = g_shape[2];

  if (bias_shape) {
    const bool empty = bias_shape->size() == 1 && (*bias_shape)[0] == 0 && p.N != 0;
    if (!empty) {
      if (bias_shape->size() != 1 || (*bias_shape)[0] != p.N) {
        throw OpError("input 'Bias' must have shape [" + str(p.N) + "] (N of G), got " +
                      shape_text(*bias_shape));
      }
      p.has_bias = true;
    }
  }

  if (!a.conv) {
    if (x_shape.empty()) throw OpError("matmul mode: input 'X' must have rank >= 1, got a scalar");
    if (x_shape.back() != p.K) {
      throw OpError("matmul mode: last axis of 'X' (" + str(x_shape.back()) + ") must equal K = G.shape[1] (" +
                    str(p.K) + "); X has shape " + shape_text(x_shape));
    }
    p.rows = checked_product(std::vector<int64_t>(x_shape.begin(), x_shape.end() - 1), "X");
    p.y_shape = x_shape;
    p.y_shape.back() = p.N;
    p.out_shape = p.y_shape;
    return p;
  }

  const size_t n = a.kernel_shape.size();
  if (x_shape.size() != n + 2) {
    throw OpError("conv mode: input 'X' must have rank " + str(static_cast<int64_t>(n + 2)) + " for a " +
                  str(static_cast<int64_t>(n)) + "-D kernel, got shape " + shape_text(x_shape));
  }
  p.batch = x_shape[0];
  p.channels = x_shape[1];
  p.group = a.group;
  if (p.channels % p.group != 0) {
    throw OpError("conv mode: group (" + str(p.group) + ") must divide the channels C (" + str(p.channels) + ")");
  }
  if (p.N % p.group != 0) {
    throw OpError("conv mode: group (" + str(p.group) + ") must divide N = G.shape[2] (" + str(p.N) + ")");
  }
  const int64_t per_group = p.channels / p.group;
  const int64_t ksize = checked_product(a.kernel_shape, "kernel_shape");
  if (ksize > 0 && per_group > std::numeric_limits<int64_t>::max() / ksize) {
    throw OpError("kernel_shape is too large");
  }
  if (p.K != per_group * ksize) {
    throw OpError("conv mode: K = G.shape[1] (" + str(p.K) + ") must equal (C / group) * prod(kernel_shape) = " +
                  str(per_group * ksize));
  }
  const std::vector<int64_t> spatial(x_shape.begin() + 2, x_shape.end());
  const ConvSpatial geo =
      conv_output_geometry(spatial, a.kernel_shape, a.strides, a.pads, a.dilations, a.auto_pad);

  p.group_cols = p.N / p.group;
  p.patch.channels = per_group;
  const size_t lead = 3 - n;  // 1-D and 2-D as 3-D with leading unit axes
  for (size_t d = 0; d < n; ++d) {
    p.patch.in[lead + d] = spatial[d];
    p.patch.out[lead + d] = geo.out[d];
    p.patch.kernel[lead + d] = a.kernel_shape[d];
    p.patch.stride[lead + d] = a.strides[d];
    p.patch.dilation[lead + d] = a.dilations[d];
    p.patch.pad_begin[lead + d] = geo.pad_begin[d];
  }
  p.y_shape = {p.batch, p.N};
  p.y_shape.insert(p.y_shape.end(), geo.out.begin(), geo.out.end());
  p.out_shape = p.y_shape;
  for (size_t d = 0; d < a.max_pool.size(); ++d) {
    p.out_shape[2 + d] = geo.out[d] / a.max_pool[d];
    if (p.out_shape[2 + d] < 1) {
      throw OpError("conv mode: max_pool " + shape_text(a.max_pool) + " is larger than the outputs " +
                    shape_text(std::vector<int64_t>(p.y_shape.begin() + 2, p.y_shape.end())) +
                    " (every pooled size floor(out / max_pool) must be >= 1)");
    }
  }
  return p;
}

}  // namespace memcc
