// Output sizes and padding of conv mode, the ONNX Conv rules quoted in docs/op-spec.md.
#pragma once

#include <cstdint>
#include <vector>

#include "op_attributes.h"

namespace memcc {

struct ConvSpatial {
  std::vector<int64_t> out;        // out_d
  std::vector<int64_t> pad_begin;  // padbegin_d
  std::vector<int64_t> pad_end;
};

// `in` holds the n spatial sizes D_d of X. Throws OpError when an output size would be < 1.
ConvSpatial conv_output_geometry(const std::vector<int64_t>& in, const std::vector<int64_t>& kernel,
                                 const std::vector<int64_t>& strides, const std::vector<int64_t>& pads,
                                 const std::vector<int64_t>& dilations, AutoPad auto_pad);

}  // namespace memcc
