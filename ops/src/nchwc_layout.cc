#include "nchwc_layout.h"

#include <algorithm>

namespace memcc {
namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

}  // namespace

NchwcPlan nchwc_plan(int64_t block, int64_t channels, int64_t out_channels, int64_t group, size_t spatial_rank) {
  NchwcPlan p;
  // MLAS's NCHWc convolutions are 2-D only; block sizes are powers of two >= 4.
  if (spatial_rank != 2 || block < 4 || (block & (block - 1)) != 0) return p;
  if (channels <= 0 || out_channels <= 0 || group <= 0 || channels % group != 0 || out_channels % group != 0) {
    return p;
  }
  p.block = block;
  p.channels = channels;
  p.out_channels = out_channels;
  p.filter_in = channels / group;
  if (group == 1) {
    if (channels < block) {
      // The first layer of most CNNs (3 channels): MLAS reads X in NCHW directly.
      p.variant = NchwcVariant::NchwInput;
      p.conv_channels = channels;
      p.filter_channels = channels;
    } else if (channels % 4 == 0) {
      p.variant = NchwcVariant::Blocked;
      p.conv_channels = round_up(channels, block);
      p.filter_channels = p.conv_channels;
    } else {
      return NchwcPlan();
    }
    p.conv_out_channels = round_up(out_channels, block);
    p.group = 1;
    return p;
  }
  if (p.filter_in == 1 && out_channels == group) {
    if (channels % 4 != 0) return NchwcPlan();
    p.variant = NchwcVariant::Depthwise;
    p.conv_channels = round_up(channels, block);
    p.conv_out_channels = p.conv_channels;
    p.group = p.conv_channels;  // padded channels are zero groups of their own
    p.filter_channels = 1;
    return p;
  }
  // Grouped convs: every group's input and output channels must fill whole blocks.
  if (p.filter_in % block != 0 || (out_channels / group) % block != 0) return NchwcPlan();
  p.variant = NchwcVariant::Blocked;
  p.conv_channels = channels;
  p.conv_out_channels = out_channels;
  p.group = group;
  p.filter_channels = p.filter_in;
  return p;
}

size_t nchwc_filter_floats(const NchwcPlan& plan, int64_t kernel_size) {
  if (!plan.applies()) return 0;
  return static_cast<size_t>(plan.conv_out_channels * plan.filter_channels * kernel_size);
}

void pack_nchwc_filter(const NchwcPlan& plan, const float* w, int64_t kernel_size, float* out) {
  const int64_t b = plan.block, N = plan.out_channels, Cg = plan.filter_in, ks = kernel_size;
  auto weight = [&](int64_t o, int64_t i, int64_t k) -> float {
    return o < N && i < Cg ? w[(o * Cg + i) * ks + k] : 0.0f;
  };
  float* d = out;
  for (int64_t ob = 0; ob < plan.conv_out_channels; ob += b) {
    if (plan.variant == NchwcVariant::Blocked) {
      for (int64_t ib = 0; ib < plan.filter_channels; ib += b) {
        for (int64_t k = 0; k < ks; ++k) {
          for (int64_t bi = 0; bi < b; ++bi) {
            for (int64_t bo = 0; bo < b; ++bo) *d++ = weight(ob + bo, ib + bi, k);
          }
        }
      }
    } else {
      for (int64_t i = 0; i < plan.filter_channels; ++i) {
        for (int64_t k = 0; k < ks; ++k) {
          for (int64_t bo = 0; bo < b; ++bo) *d++ = weight(ob + bo, i, k);
        }
      }
    }
  }
}

void pad_nchwc_bias(const NchwcPlan& plan, const float* bias, float* out) {
  std::copy(bias, bias + plan.out_channels, out);
  std::fill(out + plan.out_channels, out + plan.conv_out_channels, 0.0f);
}

}  // namespace memcc
