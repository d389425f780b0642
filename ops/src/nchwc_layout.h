// onnxruntime's NCHWc ("blocked channels") convolution layouts, as its NCHWc graph transformer and
// MLAS use them: which variant a 2-D conv can run as, and the filter packing. ORT-free, so the
// unit tests check the layouts without onnxruntime; nchwc_conv.* runs the kernels.
//
// A tensor in NCHWc holds channel blocks of `block` channels (16 with AVX-512, 8 with AVX2) with
// the channel index innermost: [N, C/block, H, W, block], channels past C zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace memcc {

enum class NchwcVariant {
  None,       // NCHWc does not apply: the plain Conv runs the layer
  Blocked,    // X reordered to NCHWc; filter OIHWBiBo
  NchwInput,  // group 1, fewer input channels than a block: X stays NCHW; filter OIHWBo
  Depthwise,  // one input channel and one output channel per group: X reordered; filter OIHWBo
};

struct NchwcPlan {
  NchwcVariant variant = NchwcVariant::None;
  int64_t block = 0;
  int64_t channels = 0;            // C of X
  int64_t conv_channels = 0;       // channels of the NCHWc Conv's input (C padded to a block, or C)
  int64_t out_channels = 0;        // N
  int64_t conv_out_channels = 0;   // N padded to a block
  int64_t group = 1;               // the NCHWc Conv's group attribute
  int64_t filter_channels = 0;     // the packed filter's dimension 1 (input channels per group)
  int64_t filter_in = 0;           // input channels per group of the layer's own weight (C / group)

  bool applies() const { return variant != NchwcVariant::None; }
  bool reorders_input() const { return variant == NchwcVariant::Blocked || variant == NchwcVariant::Depthwise; }
  bool operator==(const NchwcPlan& o) const {
    return variant == o.variant && block == o.block && channels == o.channels && conv_channels == o.conv_channels &&
           out_channels == o.out_channels && conv_out_channels == o.conv_out_channels && group == o.group &&
           filter_channels == o.filter_channels && filter_in == o.filter_in;
  }
  bool operator!=(const NchwcPlan& o) const { return !(*this == o); }
};

// The variant for a conv with C input channels, N output channels and `group` groups over
// `spatial_rank` spatial axes, for MLAS's block size. Follows onnxruntime's NCHWc transformer,
// and also pads channel counts it rejects where the zero channels keep the result exact: group-1
// convs with C >= block not a multiple of the block, and depthwise convs with C not a multiple of
// the block (the padded channels become groups of their own). onnxruntime's ReorderInput needs C
// to be a multiple of 4.
NchwcPlan nchwc_plan(int64_t block, int64_t channels, int64_t out_channels, int64_t group, size_t spatial_rank);

// Floats of the packed filter: [conv_out_channels, filter_channels, kernel...] in blocks.
size_t nchwc_filter_floats(const NchwcPlan& plan, int64_t kernel_size);

// Packs an ONNX Conv weight W [N, C/group, kernel...] (kernel_size = prod(kernel)) into the
// plan's layout, zero-padded:
//  OIHWBiBo (Blocked): [N'/b][F/b][kernel][bi < b][bo < b] = W[ob*b + bo][ib*b + bi][k]
//  OIHWBo (NchwInput, Depthwise): [N'/b][F][kernel][bo < b] = W[ob*b + bo][i][k]
// with N' = conv_out_channels and F = filter_channels.
void pack_nchwc_filter(const NchwcPlan& plan, const float* w, int64_t kernel_size, float* out);

// Bias padded with zeros to conv_out_channels.
void pad_nchwc_bias(const NchwcPlan& plan, const float* bias, float* out);

}  // namespace memcc
