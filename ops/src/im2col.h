// Patch extraction of conv mode (docs/op-spec.md, "Conv mode"), for one image and one group.
//
// Patches are written as columns: row k of the output holds entry k of the input vectors of a
// run of consecutive output positions. In that layout each (channel, kernel offset) row is a
// strided copy of an input row, so extraction runs at copy speed, and the GEMM reads the block
// either way round (as B for the ideal product, transposed as A for the tiled ADC driver).
#pragma once

#include <cstdint>

namespace memcc {

// 1-D and 2-D convolutions are described as 3-D ones with leading axes of size 1.
struct Im2colShape {
  int64_t channels = 0;  // C / group: the channels of one group
  int64_t in[3] = {1, 1, 1};
  int64_t out[3] = {1, 1, 1};
  int64_t kernel[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1};
  int64_t dilation[3] = {1, 1, 1};
  int64_t pad_begin[3] = {0, 0, 0};

  int64_t kernel_size() const { return kernel[0] * kernel[1] * kernel[2]; }
  int64_t rows() const { return channels * kernel_size(); }  // K of the crossbar
  int64_t positions() const { return out[0] * out[1] * out[2]; }
  int64_t input_size() const { return in[0] * in[1] * in[2]; }
};

// x: the group's channels of one image, [channels, in0, in1, in2] contiguous.
// Writes col[k * ldc + i] = x_k of output position p0 + i, for k < rows(), i < count
// (zero where the patch reaches into the padding).
void im2col_columns(const float* x, const Im2colShape& shape, int64_t p0, int64_t count, float* col,
                    int64_t ldc);

}  // namespace memcc
