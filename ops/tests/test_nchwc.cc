// NCHWc layouts (nchwc_layout.h): the variant onnxruntime's transformer would pick, the padding
// rules, and the filter packing against a direct transcription of the OIHWBiBo / OIHWBo layouts.
// The end-to-end check (against the plain Conv and the spec) is in smoke_ort.py. Also the
// activation attribute and its pass over Y.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "activation.h"
#include "errors.h"
#include "layer_compute.h"
#include "map_attributes.h"
#include "nchwc_layout.h"
#include "op_attributes.h"
#include "test_harness.h"

using namespace memcc;
using memcc_test::MapAttributes;

TEST(nchwc_plan_variants) {
  for (int64_t b : {8, 16}) {
    NchwcPlan p = nchwc_plan(b, 3, 32, 1, 2);  // first layer: X stays NCHW
    CHECK(p.variant == NchwcVariant::NchwInput && !p.reorders_input());
    CHECK_EQ(p.conv_channels, 3);
    CHECK_EQ(p.filter_channels, 3);
    CHECK_EQ(p.conv_out_channels, 32);
    p = nchwc_plan(b, 32, 10, 1, 2);  // N padded to a block
    CHECK(p.variant == NchwcVariant::Blocked && p.reorders_input());
    CHECK_EQ(p.conv_out_channels, 16);
    CHECK_EQ(p.filter_channels, 32);
    p = nchwc_plan(b, 20, 10, 1, 2);  // C padded to a block (zeros)
    CHECK(p.variant == NchwcVariant::Blocked);
    CHECK_EQ(p.conv_channels, b == 8 ? 24 : 32);
    CHECK(!nchwc_plan(b, 18, 10, 1, 2).applies());  // ReorderInput needs C % 4 == 0
    p = nchwc_plan(b, 20, 20, 20, 2);              // depthwise, padded channels as zero groups
    CHECK(p.variant == NchwcVariant::Depthwise);
    CHECK_EQ(p.group, p.conv_channels);
    CHECK_EQ(p.filter_channels, 1);
    CHECK(!nchwc_plan(b, 6, 6, 6, 2).applies());
    CHECK(!nchwc_plan(b, 6, 12, 6, 2).applies());  // depth multiplier 2: not depthwise for MLAS
    p = nchwc_plan(b, 64, 64, 2, 2);               // grouped, whole blocks per group
    CHECK(p.variant == NchwcVariant::Blocked && p.group == 2 && p.filter_channels == 32);
    CHECK(!nchwc_plan(b, 12, 12, 3, 2).applies());  // 4 channels per group
    CHECK(!nchwc_plan(b, 32, 32, 1, 1).applies());  // 1-D
    CHECK(!nchwc_plan(b, 32, 32, 1, 3).applies());  // 3-D
  }
  CHECK(!nchwc_plan(0, 32, 32, 1, 2).applies());
  CHECK(!nchwc_plan(12, 32, 32, 1, 2).applies());  // not a power of two
}

namespace {

std::vector<float> weights(int64_t N, int64_t Cg, int64_t ks) {
  std::vector<float> w(static_cast<size_t>(N * Cg * ks));
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i + 1);
  return w;
}

}  // namespace

TEST(nchwc_pack_oihwbibo) {
  const int64_t b = 8, C = 12, N = 10, ks = 6;  // C padded to 16, N to 16
  const NchwcPlan p = nchwc_plan(b, C, N, 1, 2);
  CHECK(p.variant == NchwcVariant::Blocked);
  const auto w = weights(N, C, ks);
  std::vector<float> out(nchwc_filter_floats(p, ks), -1.0f);
  CHECK_EQ(out.size(), size_t{16 * 16 * 6});
  pack_nchwc_filter(p, w.data(), ks, out.data());
  for (int64_t o = 0; o < 16; ++o) {
    for (int64_t i = 0; i < 16; ++i) {
      for (int64_t k = 0; k < ks; ++k) {
        const size_t at = static_cast<size_t>(((((o / b) * (16 / b) + i / b) * ks + k) * b + i % b) * b + o % b);
        const float want = o < N && i < C ? w[static_cast<size_t>((o * C + i) * ks + k)] : 0.0f;
        CHECK_EQ(out[at], want);
      }
    }
  }
}

TEST(nchwc_pack_oihwbo) {
  const int64_t b = 8, C = 3, N = 10, ks = 9;
  const NchwcPlan p = nchwc_plan(b, C, N, 1, 2);
  CHECK(p.variant == NchwcVariant::NchwInput);
  const auto w = weights(N, C, ks);
  std::vector<float> out(nchwc_filter_floats(p, ks), -1.0f);
  CHECK_EQ(out.size(), size_t{16 * 3 * 9});
  pack_nchwc_filter(p, w.data(), ks, out.data());
  for (int64_t o = 0; o < 16; ++o) {
    for (int64_t i = 0; i < C; ++i) {
      for (int64_t k = 0; k < ks; ++k) {
        const size_t at = static_cast<size_t>((((o / b) * C + i) * ks + k) * b + o % b);
        const float want = o < N ? w[static_cast<size_t>((o * C + i) * ks + k)] : 0.0f;
        CHECK_EQ(out[at], want);
      }
    }
  }
  // Depthwise: OIHWBo with one input channel, the padded channels zero.
  const NchwcPlan d = nchwc_plan(b, 12, 12, 12, 2);
  const auto wd = weights(12, 1, ks);
  std::vector<float> dd(nchwc_filter_floats(d, ks), -1.0f);
  CHECK_EQ(dd.size(), size_t{16 * 9});
  pack_nchwc_filter(d, wd.data(), ks, dd.data());
  for (int64_t o = 0; o < 16; ++o) {
    for (int64_t k = 0; k < ks; ++k) {
      CHECK_EQ(dd[static_cast<size_t>(((o / b) * ks + k) * b + o % b)], o < 12 ? wd[static_cast<size_t>(o * ks + k)] : 0.0f);
    }
  }
  std::vector<float> bias(16, -1.0f);
  const float src[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  pad_nchwc_bias(d, src, bias.data());
  CHECK_EQ(bias[11], 12.0f);
  CHECK_EQ(bias[12], 0.0f);
  CHECK_EQ(bias[15], 0.0f);
}

TEST(nchwc_activation_attribute) {
  MapAttributes m;
  m.set("weight_scale", 1.0f);
  CHECK(parse_attributes(m).activation == Activation::None);
  m.set("activation", std::string("RELU"));
  CHECK(parse_attributes(m).activation == Activation::Relu);
  m.set("activation", std::string("NONE"));
  CHECK(parse_attributes(m).activation == Activation::None);
  CHECK_THROWS(parse_attributes(m.set("activation", std::string("Relu"))), "'activation' must be one of NONE, RELU");
  std::vector<float> y(200000);
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 7) - 3.0f;
  y[5] = std::numeric_limits<float>::quiet_NaN();
  apply_activation(Activation::Relu, y.data(), static_cast<int64_t>(y.size()), SerialRunner(2));
  for (size_t i = 0; i < y.size(); ++i) {
    if (i == 5) {
      CHECK(std::isnan(y[i]));
    } else {
      CHECK_EQ(y[i], std::max(0.0f, static_cast<float>(i % 7) - 3.0f));
    }
  }
}
