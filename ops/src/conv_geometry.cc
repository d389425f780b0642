#include "conv_geometry.h"

#include <algorithm>
#include <string>

#include "errors.h"

namespace memcc {

ConvSpatial conv_output_geometry(const std::vector<int64_t>& in, const std::vector<int64_t>& kernel,
                                 const std::vector<int64_t>& strides, const std::vector<int64_t>& pads,
                                 const std::vector<int64_t>& dilations, AutoPad auto_pad) {
  const size_t n = kernel.size();
  ConvSpatial g;
  g.out.resize(n);
  g.pad_begin.resize(n);
  g.pad_end.resize(n);
  for (size_t d = 0; d < n; ++d) {
    const int64_t size = in[d];
    const int64_t stride = strides[d];
    const int64_t extent = (kernel[d] - 1) * dilations[d] + 1;
    int64_t out = 0, begin = 0, end = 0;
    if (auto_pad == AutoPad::SameUpper || auto_pad == AutoPad::SameLower) {
      out = (size + stride - 1) / stride;
      const int64_t total = std::max<int64_t>(0, (out - 1) * stride + extent - size);
      begin = auto_pad == AutoPad::SameUpper ? total / 2 : total - total / 2;
      end = total - begin;
    } else {
      if (auto_pad == AutoPad::NotSet) {
        begin = pads[d];
        end = pads[n + d];
      }
      // Floor division: the numerator may be negative when the kernel does not fit.
      const int64_t num = size + begin + end - extent;
      out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
    }
    if (out < 1) {
      throw OpError("conv mode: output size along spatial axis " + std::to_string(d) + " would be " +
                    std::to_string(out) + " (input " + std::to_string(size) + ", kernel extent " +
                    std::to_string(extent) + ", pads " + std::to_string(begin) + "+" +
                    std::to_string(end) + ", stride " + std::to_string(stride) + "); it must be >= 1");
    }
    g.out[d] = out;
    g.pad_begin[d] = begin;
    g.pad_end[d] = end;
  }
  return g;
}

}  // namespace memcc
