// Conv geometry (auto_pad cases), attribute parsing and the shape plan.
#include <vector>

#include "conv_geometry.h"
#include "errors.h"
#include "layer_plan.h"
#include "map_attributes.h"
#include "test_harness.h"

using namespace memcc;
using memcc_test::MapAttributes;
using V = std::vector<int64_t>;

namespace {

ConvSpatial geo(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, AutoPad mode) {
  return conv_output_geometry(V{in}, V{k}, V{s}, V{pb, pe}, V{d}, mode);
}

MapAttributes base() {
  MapAttributes m;
  m.set("weight_scale", 2.0f);
  return m;
}

}  // namespace

TEST(geometry_notset_and_valid) {
  auto g = geo(5, 3, 2, 1, 1, 1, AutoPad::NotSet);  // floor((5 + 2 - 3) / 2) + 1
  CHECK_EQ(g.out[0], 3);
  CHECK_EQ(g.pad_begin[0], 1);
  g = geo(5, 3, 2, 1, 0, 0, AutoPad::Valid);
  CHECK_EQ(g.out[0], 2);
  g = geo(7, 3, 1, 2, 0, 0, AutoPad::NotSet);  // dilation 2: extent 5
  CHECK_EQ(g.out[0], 3);
  g = geo(4, 2, 3, 1, 0, 1, AutoPad::NotSet);  // asymmetric pads: floor(3 / 3) + 1
  CHECK_EQ(g.out[0], 2);
}

TEST(geometry_same_upper_lower) {
  auto g = geo(5, 3, 2, 1, 0, 0, AutoPad::SameUpper);  // out 3, total pad 2
  CHECK_EQ(g.out[0], 3);
  CHECK_EQ(g.pad_begin[0], 1);
  CHECK_EQ(g.pad_end[0], 1);
  g = geo(6, 4, 1, 1, 0, 0, AutoPad::SameUpper);  // total 3: upper puts the odd pad at the end
  CHECK_EQ(g.out[0], 6);
  CHECK_EQ(g.pad_begin[0], 1);
  CHECK_EQ(g.pad_end[0], 2);
  g = geo(6, 4, 1, 1, 0, 0, AutoPad::SameLower);
  CHECK_EQ(g.pad_begin[0], 2);
  CHECK_EQ(g.pad_end[0], 1);
  g = geo(7, 1, 3, 1, 0, 0, AutoPad::SameLower);  // total = max(0, 6 + 1 - 7) = 0
  CHECK_EQ(g.out[0], 3);
  CHECK_EQ(g.pad_begin[0], 0);
  g = geo(5, 3, 2, 3, 0, 0, AutoPad::SameUpper);  // extent 7: total = 4 + 7 - 5 = 6
  CHECK_EQ(g.pad_begin[0], 3);
  CHECK_EQ(g.pad_end[0], 3);
}

TEST(geometry_output_below_one_fails) {
  CHECK_THROWS(geo(2, 5, 1, 1, 0, 0, AutoPad::NotSet), "output size along spatial axis 0");
  CHECK_THROWS(geo(3, 5, 2, 1, 0, 0, AutoPad::Valid), "must be >= 1");  // floor(-2 / 2) + 1 = 0
  auto g = geo(3, 5, 2, 1, 1, 1, AutoPad::NotSet);                       // fits with the pads
  CHECK_EQ(g.out[0], 1);
}

TEST(attributes_defaults) {
  const OpAttributes a = parse_attributes(base());
  CHECK_EQ(a.weight_scale, 2.0f);
  CHECK_EQ(a.max_input_voltage, 0.3f);
  CHECK_EQ(a.tile_rows, 0);
  CHECK(!a.conv && !a.uses_adc() && !a.encodes_input());
  MapAttributes m = base();
  m.set("weight_scale", int64_t{3});  // an INT attribute is accepted as a float
  CHECK_EQ(parse_attributes(m).weight_scale, 3.0f);
  MapAttributes c = base();
  c.set("kernel_shape", V{3, 3});
  const OpAttributes ca = parse_attributes(c);
  CHECK(ca.conv);
  CHECK(ca.strides == (V{1, 1}) && ca.pads == (V{0, 0, 0, 0}) && ca.dilations == (V{1, 1}));
  CHECK(ca.group == 1 && ca.auto_pad == AutoPad::NotSet);
}

TEST(attributes_constraints) {
  CHECK_THROWS(parse_attributes(MapAttributes()), "'weight_scale' is required");
  CHECK_THROWS(parse_attributes(base().set("weight_scale", 0.0f)), "'weight_scale' must be > 0");
  CHECK_THROWS(parse_attributes(base().set("weight_scale", INFINITY)), "'weight_scale' must be finite");
  CHECK_THROWS(parse_attributes(base().set("weight_scale", std::string("x"))), "'weight_scale' must be a float");
  CHECK_THROWS(parse_attributes(base().set("g_ref", NAN)), "'g_ref' must be finite");
  CHECK_THROWS(parse_attributes(base().set("tile_shape", V{128})), "'tile_shape' must be two values >= 0");
  CHECK_THROWS(parse_attributes(base().set("tile_shape", V{128, -1})), "'tile_shape'");
  CHECK_THROWS(parse_attributes(base().set("max_input_voltage", 0.0f)), "'max_input_voltage' must be > 0");
  CHECK_THROWS(parse_attributes(base().set("input_range", -1.0f)), "'input_range' must be >= 0");
  CHECK_THROWS(parse_attributes(base().set("dac_bits", int64_t{1})), "'dac_bits' must be 0 or in 2..24");
  CHECK_THROWS(parse_attributes(base().set("adc_bits", int64_t{25})), "'adc_bits' must be 0 or in 2..24");
  CHECK_THROWS(parse_attributes(base().set("adc_bits", 8.0f)), "'adc_bits' must be an int");
  CHECK_THROWS(parse_attributes(base().set("adc_overflow_rate", 1.0f)), "'adc_overflow_rate' must satisfy");
  CHECK_THROWS(parse_attributes(base().set("adc_overflow_rate", -0.1f)), "'adc_overflow_rate' must satisfy");
  CHECK_THROWS(parse_attributes(base().set("quantization", std::string("log"))), "'quantization' must be");
  CHECK_THROWS(parse_attributes(base().set("group", int64_t{2})), "only allowed in conv mode");
  CHECK_THROWS(parse_attributes(base().set("kernel_shape", V{})), "'kernel_shape' must be 1 to 3 values");
  CHECK_THROWS(parse_attributes(base().set("kernel_shape", V{1, 1, 1, 1})), "'kernel_shape'");
  CHECK_THROWS(parse_attributes(base().set("kernel_shape", V{3, 0})), "'kernel_shape'");
  auto conv = [] { return base().set("kernel_shape", V{3, 3}); };
  CHECK_THROWS(parse_attributes(conv().set("strides", V{1})), "'strides' must have 2 values");
  CHECK_THROWS(parse_attributes(conv().set("strides", V{1, 0})), "'strides' must be values >= 1");
  CHECK_THROWS(parse_attributes(conv().set("dilations", V{1, 1, 1})), "'dilations' must have 2 values");
  CHECK_THROWS(parse_attributes(conv().set("pads", V{1, 1})), "'pads' must have 4 values");
  CHECK_THROWS(parse_attributes(conv().set("pads", V{1, 1, -1, 0})), "'pads' must be values >= 0");
  CHECK_THROWS(parse_attributes(conv().set("group", int64_t{0})), "'group' must be >= 1");
  CHECK_THROWS(parse_attributes(conv().set("auto_pad", std::string("SAME"))), "'auto_pad' must be one of");
  CHECK_THROWS(parse_attributes(conv().set("auto_pad", std::string("VALID")).set("pads", V{0, 0, 0, 0})),
               "'pads' must be absent when auto_pad is VALID");
  CHECK(parse_attributes(conv().set("auto_pad", std::string("SAME_LOWER"))).auto_pad == AutoPad::SameLower);
  CHECK_THROWS(parse_attributes(base().set("max_pool", V{2, 2})), "only allowed in conv mode");
  CHECK_THROWS(parse_attributes(conv().set("max_pool", V{2})), "'max_pool' must have 2 values");
  CHECK_THROWS(parse_attributes(conv().set("max_pool", V{2, 0})), "'max_pool' must be values >= 1");
  CHECK(!parse_attributes(conv()).pools());
  CHECK(parse_attributes(conv().set("max_pool", V{3, 2})).max_pool == (V{3, 2}));
}

TEST(plan_matmul_shapes) {
  const OpAttributes a = parse_attributes(base());
  const V bias{6}, empty_bias{0}, bad_bias{5};
  LayerPlan p = plan_layer(a, V{2, 3, 4}, V{2, 4, 6}, &bias);
  CHECK_EQ(p.rows, 6);
  CHECK(p.y_shape == (V{2, 3, 6}) && p.has_bias);
  p = plan_layer(a, V{4}, V{1, 4, 6}, &empty_bias);  // rank 1; an empty Bias counts as none
  CHECK(p.y_shape == V{6} && !p.has_bias && p.rows == 1);
  p = plan_layer(a, V{0, 4}, V{1, 4, 6}, nullptr);
  CHECK(p.rows == 0 && p.y_shape == (V{0, 6}));
  CHECK_THROWS(plan_layer(a, V{2, 5}, V{2, 4, 6}, nullptr), "must equal K = G.shape[1] (4)");
  CHECK_THROWS(plan_layer(a, V{}, V{2, 4, 6}, nullptr), "rank >= 1");
  CHECK_THROWS(plan_layer(a, V{2, 4}, V{3, 4, 6}, nullptr), "input 'G' must have shape [S, K, N]");
  CHECK_THROWS(plan_layer(a, V{2, 4}, V{4, 6}, nullptr), "input 'G'");
  CHECK_THROWS(plan_layer(a, V{2, 4}, V{2, 4, 6}, &bad_bias), "input 'Bias' must have shape [6]");
}

TEST(plan_conv_shapes) {
  const OpAttributes a = parse_attributes(
      base().set("kernel_shape", V{3, 2}).set("group", int64_t{2}).set("strides", V{2, 1}).set("pads", V{1, 0, 1, 1}));
  LayerPlan p = plan_layer(a, V{3, 4, 9, 5}, V{2, 12, 6}, nullptr);  // K = 4/2 * 6
  CHECK(p.y_shape == (V{3, 6, 5, 5}));
  CHECK(p.patch.channels == 2 && p.group_cols == 3 && p.patch.kernel[0] == 1 && p.patch.kernel[1] == 3);
  CHECK(p.patch.pad_begin[1] == 1 && p.patch.pad_begin[2] == 0);
  CHECK_THROWS(plan_layer(a, V{3, 5, 9, 5}, V{2, 12, 6}, nullptr), "must divide the channels C (5)");
  CHECK_THROWS(plan_layer(a, V{3, 4, 9, 5}, V{2, 12, 5}, nullptr), "must divide N");
  CHECK_THROWS(plan_layer(a, V{3, 4, 9, 5}, V{2, 13, 6}, nullptr), "(C / group) * prod(kernel_shape) = 12");
  CHECK_THROWS(plan_layer(a, V{3, 4, 9}, V{2, 12, 6}, nullptr), "must have rank 4");
  CHECK_THROWS(plan_layer(a, V{3, 4, 0, 5}, V{2, 12, 6}, nullptr), "output size along spatial axis 0");
  CHECK(p.out_shape == p.y_shape);
  // max_pool: floor of the outputs over the windows; a window past the outputs is refused.
  const OpAttributes pooled = parse_attributes(base()
                                                   .set("kernel_shape", V{3, 2}).set("group", int64_t{2})
                                                   .set("strides", V{2, 1}).set("pads", V{1, 0, 1, 1})
                                                   .set("max_pool", V{2, 3}));
  p = plan_layer(pooled, V{3, 4, 9, 5}, V{2, 12, 6}, nullptr);
  CHECK(p.y_shape == (V{3, 6, 5, 5}) && p.out_shape == (V{3, 6, 2, 1}));
  CHECK_THROWS(plan_layer(pooled, V{3, 4, 9, 1}, V{2, 12, 6}, nullptr), "max_pool [2, 3] is larger than the outputs");
}
