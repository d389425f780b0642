// The tiled MAC + ADC driver and whole layers (matmul and conv mode) against the naive
// transcription of the spec, over random shapes with edge tiles, groups, strides and dilations.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "batched_layer.h"
#include "crossbar_mac.h"
#include "errors.h"
#include "layer_compute.h"
#include "layer_plan.h"
#include "map_attributes.h"
#include "naive_spec.h"
#include "quantize.h"
#include "small_gemm.h"
#include "conv_tiles.h"
#include "test_harness.h"

using namespace memcc;
using V = std::vector<int64_t>;

namespace {

// Runs tasks on real threads, in an order that differs from the serial one.
class ThreadRunner : public TaskRunner {
 public:
  explicit ThreadRunner(int threads) : threads_(threads) {}
  void run(size_t total, const std::function<void(size_t)>& fn) const override {
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads_; ++t) {
      pool.emplace_back([&] {
        for (size_t i; (i = next.fetch_add(1)) < total;) fn(total - 1 - i);
      });
    }
    for (auto& th : pool) th.join();
  }
  int concurrency() const override { return threads_; }

 private:
  int threads_;
};

struct Case {
  OpAttributes attrs;
  LayerPlan plan;
  std::vector<float> X, G, bias;
};

// Compares run_layer with the naive spec. Quantized outputs may sit one level away at a
// decision boundary (docs/op-spec.md, "Numerical agreement"), so a few outliers are allowed there.
// With packed: run_layer also given the matrix in small_gemm's panels (the matmul ADC path's
// tile reads then run on small_gemm_block) or, in conv mode, in conv_tiles' column blocks.
void compare(const Case& c, const TaskRunner& runner, const char* what, bool packed = false) {
  const int64_t K = c.plan.K, N = c.plan.N;
  std::vector<float> matrix(static_cast<size_t>(K * N));
  effective_matrix(c.G.data(), c.plan.S, K, N, c.attrs.g_ref, matrix_scale(c.attrs), matrix.data());
  int64_t total = 1;
  for (int64_t d : c.plan.y_shape) total *= d;
  std::vector<float> y(static_cast<size_t>(total), NAN);
  const float* bias = c.plan.has_bias ? c.bias.data() : nullptr;
  SmallGemmPack small;
  ConvTilePack tiles;
  if (packed && K > 0 && N > 0 && !c.attrs.conv) small = pack_small_gemm(matrix.data(), K, N);
  if (packed && K > 0 && N > 0 && c.attrs.conv) {
    const int64_t Ng = c.plan.group_cols;
    tiles = pack_conv_tiles(matrix.data(), K, c.plan.group, Ng, c.attrs.tile_cols > 0 ? std::min(c.attrs.tile_cols, Ng) : Ng);
  }
  run_layer(c.attrs, c.plan, matrix.data(), c.X.data(), bias, y.data(), runner, nullptr,
            small.empty() ? nullptr : &small, tiles.empty() ? nullptr : &tiles);
  const auto want = memcc_test::naive_layer(c.attrs, c.plan, c.X, c.G, bias);
  double scale = 1e-30;
  for (float v : want) scale = std::max(scale, double(std::fabs(v)));
  int64_t off = 0;
  for (int64_t i = 0; i < total; ++i) {
    const double err = std::fabs(double(y[i]) - double(want[i]));
    if (!(err <= 2e-5 * scale)) ++off;
  }
  const bool quantized = c.attrs.dac_bits > 0 || c.attrs.adc_bits > 0;
  const int64_t allowed = quantized ? std::max<int64_t>(1, total / 50) : 0;
  if (off > allowed) {
    memcc_test::fail(__FILE__, __LINE__,
                     std::string(what) + ": " + std::to_string(off) + " of " + std::to_string(total) +
                         " outputs differ from the naive spec");
  }
}

// The same comparison for the three-phase batched path (run_layer_batched), with OpenBLAS as
// the batched GEMM (the kernel plugs in onnxruntime's MatMul; the phases around it are these).
void compare_batched(const Case& c, const TaskRunner& runner, const char* what) {
  const int64_t K = c.plan.K, N = c.plan.N;
  const int64_t vectors = c.attrs.conv ? c.plan.batch * c.plan.patch.positions() : c.plan.rows;
  if (vectors == 0 || K == 0 || N == 0) return;  // run_layer's cases
  std::vector<float> D(static_cast<size_t>(K * N));
  effective_matrix(c.G.data(), c.plan.S, K, N, c.attrs.g_ref, 1.0f, D.data());
  const TileGeometry geo = tile_geometry(c.attrs, c.plan);
  std::vector<float> packed(batched_pack_floats(geo, c.attrs.conv));
  pack_batched(D.data(), geo, c.attrs.conv, packed.data());
  std::vector<float> scratch(batched_scratch_floats(c.attrs, c.plan, geo), NAN);
  int64_t total = 1;
  for (int64_t d : c.plan.y_shape) total *= d;
  std::vector<float> y(static_cast<size_t>(total), NAN);
  const float* bias = c.plan.has_bias ? c.bias.data() : nullptr;
  run_layer_batched(c.attrs, c.plan, geo, packed.data(), c.X.data(), bias, y.data(), runner, BlasBatchedGemm(),
                    scratch.data());
  const auto want = memcc_test::naive_layer(c.attrs, c.plan, c.X, c.G, bias);
  double scale = 1e-30;
  for (float v : want) scale = std::max(scale, double(std::fabs(v)));
  int64_t off = 0;
  for (int64_t i = 0; i < total; ++i) {
    if (!(std::fabs(double(y[i]) - double(want[i])) <= 2e-5 * scale)) ++off;
  }
  const bool quantized = c.attrs.dac_bits > 0 || c.attrs.adc_bits > 0;
  const int64_t allowed = quantized ? std::max<int64_t>(1, total / 50) : 0;
  if (off > allowed) {
    memcc_test::fail(__FILE__, __LINE__,
                     std::string(what) + ": " + std::to_string(off) + " of " + std::to_string(total) +
                         " outputs differ from the naive spec (batched path)");
  }
}

std::mt19937 rng(2024);
int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

void random_quantization(memcc_test::MapAttributes& m) {
  const int kind = pick(0, 4);  // ideal, DAC, ADC, both, both with overflow
  if (kind == 1 || kind >= 3) m.set("dac_bits", int64_t{pick(2, 10)});
  if (kind >= 2) m.set("adc_bits", int64_t{pick(3, 12)});
  if (kind == 4) m.set("adc_overflow_rate", 0.1f);
  if (pick(0, 3) == 0) m.set("input_range", 1.5f);
  if (pick(0, 1)) m.set("tile_shape", V{pick(0, 9), pick(0, 7)});
}

Case random_case(bool conv) {
  memcc_test::MapAttributes m;
  m.set("weight_scale", 5e3f).set("max_input_voltage", 0.2f);
  random_quantization(m);
  const int64_t S = pick(1, 2);
  if (S == 1) m.set("g_ref", 3e-5f);
  Case c;
  V x_shape, g_shape;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  if (!conv) {
    const int64_t K = pick(1, 40), N = pick(1, 30);
    x_shape = {pick(0, 3), pick(1, 40), K};
    if (pick(0, 4) == 0) x_shape = {K};
    g_shape = {S, K, N};
  } else {
    const int n = pick(1, 3);
    V kernel, strides, dil, pads(2 * n), spatial;
    for (int d = 0; d < n; ++d) {
      kernel.push_back(pick(1, 3));
      strides.push_back(pick(1, 2));
      dil.push_back(pick(1, 2));
      pads[d] = pick(0, 1);
      pads[n + d] = pick(0, 2);
      spatial.push_back((kernel[d] - 1) * dil[d] + 1 + pick(0, n == 3 ? 2 : 6));  // the kernel fits
    }
    const int64_t group = pick(1, 3), cg = pick(1, 6), ng = pick(1, 5);
    m.set("kernel_shape", kernel).set("strides", strides).set("dilations", dil).set("group", group);
    if (pick(0, 2) == 0) {
      m.set("auto_pad", std::string(pick(0, 1) ? "SAME_UPPER" : "SAME_LOWER"));
    } else {
      m.set("pads", pads);
    }
    int64_t ks = 1;
    for (auto k : kernel) ks *= k;
    x_shape = {pick(1, 3), group * cg};
    x_shape.insert(x_shape.end(), spatial.begin(), spatial.end());
    g_shape = {S, cg * ks, group * ng};
  }
  c.attrs = parse_attributes(m);
  const V bias_shape{g_shape[2]};
  c.plan = plan_layer(c.attrs, x_shape, g_shape, pick(0, 1) ? &bias_shape : nullptr);
  int64_t xs = 1;
  for (auto d : x_shape) xs *= d;
  c.X.resize(static_cast<size_t>(xs));
  for (auto& v : c.X) v = normal(rng);
  // Some all-zero input vectors: s = 0.
  if (!conv && xs > 0 && pick(0, 1)) std::fill(c.X.begin(), c.X.begin() + g_shape[1], 0.0f);
  c.G.resize(static_cast<size_t>(g_shape[0] * g_shape[1] * g_shape[2]));
  std::uniform_real_distribution<float> cond(1e-6f, 1e-4f);
  for (auto& v : c.G) v = cond(rng);
  c.bias.resize(static_cast<size_t>(g_shape[2]));
  for (auto& v : c.bias) v = normal(rng);
  return c;
}

}  // namespace

TEST(layer_tiled_adc_mac_matches_naive) {
  // Direct test of the driver: one block of vectors (rows and columns layout) x one column tile.
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t m = pick(1, 9), K = pick(1, 50), ldd = pick(1, 20) + 10, nc = pick(1, 10);
    AdcTiling t;
    t.tile_rows = pick(1, 60);
    t.bits = pick(2, 12);
    t.overflow_rate = pick(0, 1) ? 0.0 : 0.25;
    std::vector<float> v(m * K), vt(K * m), D(K * ldd), acc(m * nc), buf(m * nc), scratch(nc);
    for (auto& x : v) x = normal(rng);
    for (auto& x : D) x = normal(rng);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t k = 0; k < K; ++k) vt[k * m + i] = v[i * K + k];
    const int64_t c0 = ldd - nc;  // the tile starts inside D
    int64_t off = 0, total = 0;
    for (bool columns : {false, true}) {
      tiled_adc_mac(columns ? vt.data() : v.data(), columns, columns ? m : K, m, K, D.data() + c0, ldd, nc, t,
                    acc.data(), buf.data(), scratch.data());
      for (int64_t i = 0; i < m; ++i) {
        std::vector<double> sum(nc, 0.0);
        for (int64_t r0 = 0; r0 < K; r0 += t.tile_rows) {
          std::vector<double> read(nc, 0.0);
          for (int64_t j = 0; j < nc; ++j)
            for (int64_t k = r0; k < std::min(K, r0 + t.tile_rows); ++k) read[j] += double(v[i * K + k]) * D[k * ldd + c0 + j];
          const auto q = memcc_test::naive_quant(read, t.bits, t.overflow_rate);
          for (int64_t j = 0; j < nc; ++j) sum[j] += q[j];
        }
        // A read whose value sits on a decision boundary may land one level away.
        for (int64_t j = 0; j < nc; ++j) {
          if (!(std::fabs(acc[i * nc + j] - sum[j]) <= 1e-4 * (1.0 + std::fabs(sum[j])))) ++off;
        }
        total += nc;
      }
    }
    CHECK(off <= std::max<int64_t>(1, total / 50));
  }
}

TEST(layer_matmul_random) {
  const SerialRunner serial1(1), serial3(3);
  const ThreadRunner threads(3);
  for (int trial = 0; trial < 150; ++trial) {
    const Case c = random_case(false);
    compare(c, serial1, "matmul serial");
    compare(c, serial3, "matmul split in 3");
    compare(c, threads, "matmul on 3 threads");
    compare(c, serial3, "matmul packed, split in 3", true);
    compare(c, threads, "matmul packed on 3 threads", true);
    compare_batched(c, serial1, "matmul batched serial");
    compare_batched(c, threads, "matmul batched on 3 threads");
  }
}

TEST(layer_conv_random) {
  const SerialRunner serial1(1), serial4(4);
  const ThreadRunner threads(2);
  for (int trial = 0; trial < 150; ++trial) {
    const Case c = random_case(true);
    compare(c, serial1, "conv serial");
    compare(c, serial4, "conv split in 4");
    compare(c, threads, "conv on 2 threads");
    compare(c, serial4, "conv packed tiles, split in 4", true);
    compare(c, threads, "conv packed tiles on 2 threads", true);
    compare_batched(c, serial4, "conv batched split in 4");
    compare_batched(c, threads, "conv batched on 2 threads");
  }
}

TEST(layer_batched_chunks_and_depthwise) {
  // Several chunks (vectors past the chunk budget), edge row/column tiles, and a depthwise conv.
  const ThreadRunner threads(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> cond(1e-6f, 1e-4f);
  auto fill = [&](Case& c, const V& x_shape, const V& g_shape) {
    int64_t xs = 1;
    for (auto d : x_shape) xs *= d;
    c.X.resize(static_cast<size_t>(xs));
    for (auto& v : c.X) v = normal(rng);
    c.G.resize(static_cast<size_t>(g_shape[0] * g_shape[1] * g_shape[2]));
    for (auto& v : c.G) v = cond(rng);
    c.bias.resize(static_cast<size_t>(g_shape[2]));
    for (auto& v : c.bias) v = normal(rng);
  };
  {
    memcc_test::MapAttributes m;
    m.set("weight_scale", 1e4f).set("tile_shape", V{100, 48}).set("adc_bits", int64_t{8}).set("dac_bits", int64_t{8});
    Case c;
    c.attrs = parse_attributes(m);
    const V x_shape{3000, 300}, g_shape{2, 300, 200}, bias_shape{200};
    c.plan = plan_layer(c.attrs, x_shape, g_shape, &bias_shape);
    CHECK(batched_chunk_vectors(c.attrs, c.plan, tile_geometry(c.attrs, c.plan)) < 3000);
    fill(c, x_shape, g_shape);
    compare_batched(c, threads, "matmul 3000x300x200 ADC, several chunks");
  }
  {
    memcc_test::MapAttributes m;
    m.set("weight_scale", 1e4f).set("adc_bits", int64_t{8}).set("dac_bits", int64_t{8}).set("kernel_shape", V{3, 3});
    m.set("group", int64_t{16}).set("pads", V{1, 1, 1, 1}).set("strides", V{2, 1});
    Case c;
    c.attrs = parse_attributes(m);
    const V x_shape{9, 16, 33, 20}, g_shape{2, 9, 32}, bias_shape{32};  // depthwise, multiplier 2
    c.plan = plan_layer(c.attrs, x_shape, g_shape, &bias_shape);
    fill(c, x_shape, g_shape);
    compare_batched(c, threads, "depthwise conv ADC");
  }
}

TEST(layer_adc_columns_matches_rows) {
  // adc_accumulate_columns (reads as columns) against adc_accumulate_rows (reads as rows),
  // including reads of zeros, tiny values (subnormal steps) and overflow quantiles.
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t m = pick(1, 12), count = pick(1, 40);
    const int bits = pick(2, 24);
    const double q = pick(0, 2) == 0 ? 0.3 : 0.0;
    const float magnitude = pick(0, 3) == 0 ? 1e-40f : (pick(0, 1) ? 1e-3f : 50.0f);
    std::vector<float> cols(m * count), rows(count * m), a(m * count, 0.5f), b(count * m, 0.5f);
    std::vector<float> scratch(3 * count + m), rscratch(m);
    for (int64_t j = 0; j < m; ++j)
      for (int64_t i = 0; i < count; ++i) {
        const float v = (i % 7 == 3) ? 0.0f : normal(rng) * magnitude;
        cols[j * count + i] = v;
        rows[i * m + j] = v;
      }
    adc_accumulate_columns(cols.data(), m, count, count, bits, q, a.data(), count, scratch.data());
    adc_accumulate_rows(rows.data(), count, m, m, bits, q, b.data(), m, rscratch.data());
    for (int64_t j = 0; j < m; ++j)
      for (int64_t i = 0; i < count; ++i) CHECK_EQ(a[j * count + i], b[i * m + j]);
  }
}

TEST(layer_large_blocks) {
  // Sizes past the internal block limits (row blocks, position blocks, column alignment).
  const ThreadRunner threads(4);
  memcc_test::MapAttributes m;
  m.set("weight_scale", 1e4f).set("tile_shape", V{100, 48}).set("adc_bits", int64_t{8}).set("dac_bits", int64_t{8});
  Case c;
  c.attrs = parse_attributes(m);
  const V bias_shape{200};
  c.plan = plan_layer(c.attrs, V{700, 300}, V{2, 300, 200}, &bias_shape);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> cond(1e-6f, 1e-4f);
  c.X.resize(700 * 300);
  for (auto& v : c.X) v = normal(rng);
  c.G.resize(2 * 300 * 200);
  for (auto& v : c.G) v = cond(rng);
  c.bias.assign(200, 0.5f);
  compare(c, threads, "matmul 700x300x200 ADC");
  compare(c, threads, "matmul 700x300x200 ADC, packed (unaligned tiles)", true);
  for (int64_t adc : {int64_t{8}, int64_t{0}}) {
    memcc_test::MapAttributes aligned;
    aligned.set("weight_scale", 1e4f).set("tile_shape", V{128, 64}).set("adc_bits", adc).set("dac_bits", int64_t{8});
    Case a = c;
    a.attrs = parse_attributes(aligned);
    a.plan = plan_layer(a.attrs, V{700, 300}, V{2, 300, 200}, &bias_shape);
    compare(a, threads, "matmul 700x300x200 128x64 tiles, packed", true);
  }
  memcc_test::MapAttributes ideal;
  ideal.set("weight_scale", 1e4f);
  c.attrs = parse_attributes(ideal);
  compare(c, threads, "matmul 700x300x200 ideal");
  for (float range : {0.0f, 1.5f}) {
    // Conv on the packed tile reads: several position sub-blocks (the last one partial), column
    // tiles that are not a whole number of 8-column blocks, two groups, a stride and a dilation.
    memcc_test::MapAttributes cm;
    cm.set("weight_scale", 1e4f).set("tile_shape", V{50, 12}).set("adc_bits", int64_t{8}).set("dac_bits", int64_t{8});
    cm.set("kernel_shape", V{3, 3}).set("pads", V{1, 1, 1, 1}).set("group", int64_t{2}).set("strides", V{1, 2});
    cm.set("dilations", V{2, 1}).set("input_range", range);
    Case cc;
    cc.attrs = parse_attributes(cm);
    const V x_shape{2, 12, 30, 41}, g_shape{2, 54, 40}, conv_bias{40};
    cc.plan = plan_layer(cc.attrs, x_shape, g_shape, &conv_bias);
    CHECK(cc.plan.patch.positions() > 512);
    cc.X.resize(2 * 12 * 30 * 41);
    for (auto& v : cc.X) v = normal(rng);
    cc.G.resize(2 * 54 * 40);
    for (auto& v : cc.G) v = cond(rng);
    cc.bias.assign(40, -0.25f);
    compare(cc, threads, "conv 12->40 ADC", false);
    compare(cc, threads, "conv 12->40 ADC, packed tiles", true);
  }
}

TEST(layer_empty_and_degenerate) {
  const SerialRunner serial(2);
  memcc_test::MapAttributes m;
  m.set("weight_scale", 1.0f).set("adc_bits", int64_t{8});
  Case c;
  c.attrs = parse_attributes(m);
  const V bias_shape{3};
  c.bias = {1.0f, 2.0f, 3.0f};
  // K = 0: every vector has s = 0, y = Bias.
  c.plan = plan_layer(c.attrs, V{2, 0}, V{2, 0, 3}, &bias_shape);
  std::vector<float> y(6, NAN), matrix;
  run_layer(c.attrs, c.plan, matrix.data(), nullptr, c.bias.data(), y.data(), serial);
  for (int i = 0; i < 6; ++i) CHECK_EQ(y[i], c.bias[i % 3]);
  // R = 0 and N = 0: nothing to write, nothing read.
  c.plan = plan_layer(c.attrs, V{0, 4}, V{2, 4, 3}, &bias_shape);
  run_layer(c.attrs, c.plan, nullptr, nullptr, c.bias.data(), nullptr, serial);
  c.plan = plan_layer(c.attrs, V{5, 4}, V{2, 4, 0}, nullptr);
  run_layer(c.attrs, c.plan, nullptr, nullptr, nullptr, nullptr, serial);
}
