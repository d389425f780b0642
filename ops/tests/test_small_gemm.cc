// small_gemm (ideal matmul layers with few rows) against a naive double-precision product, for
// every micro-kernel this CPU has, shapes off the panel and kernel sizes, with and without bias
// and ReLU.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "small_gemm.h"
#include "test_harness.h"

using namespace memcc;

namespace {

void check_case(int64_t M, int64_t K, int64_t N, bool with_bias, Activation act, GemmIsa isa,
                const TaskRunner& runner, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(M * K)), w(static_cast<size_t>(K * N)), bias(static_cast<size_t>(N));
  for (auto& v : x) v = u(rng);
  for (auto& v : w) v = u(rng);
  for (auto& v : bias) v = u(rng);
  const SmallGemmPack pack = pack_small_gemm(w.data(), K, N);
  // Guard values around Y catch stores past the end.
  const float guard = -12345.0f;
  std::vector<float> y(static_cast<size_t>(M * N + 16), guard);
  small_gemm(pack, x.data(), M, with_bias ? bias.data() : nullptr, act, y.data(), runner, isa);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double ref = with_bias ? bias[static_cast<size_t>(n)] : 0.0;
      double mag = std::fabs(ref);
      for (int64_t k = 0; k < K; ++k) {
        const double p = double(x[static_cast<size_t>(m * K + k)]) * w[static_cast<size_t>(k * N + n)];
        ref += p;
        mag += std::fabs(p);
      }
      if (act == Activation::Relu && ref < 0.0) ref = 0.0;
      CHECK_NEAR(y[static_cast<size_t>(m * N + n)], ref, 1e-6 * (mag + 1.0) * 4.0);
    }
  }
  for (size_t i = static_cast<size_t>(M * N); i < y.size(); ++i) CHECK_EQ(y[i], guard);
}

std::vector<GemmIsa> isas() {
  std::vector<GemmIsa> out = {GemmIsa::Generic};
  if (small_gemm_best_isa() != GemmIsa::Generic) out.push_back(GemmIsa::Avx2);
  if (small_gemm_best_isa() == GemmIsa::Avx512) out.push_back(GemmIsa::Avx512);
  return out;
}

// Runs tasks in reverse order, so a task that depends on another's output shows.
class ReverseRunner : public TaskRunner {
 public:
  void run(size_t total, const std::function<void(size_t)>& fn) const override {
    for (size_t i = total; i-- > 0;) fn(i);
  }
  int concurrency() const override { return 4; }
};

}  // namespace

TEST(small_gemm_every_row_count) {
  std::mt19937 rng(7);
  const SerialRunner serial(2);
  for (GemmIsa isa : isas()) {
    for (int64_t M = 1; M <= 300; M += (M < 20 ? 1 : 23)) {
      check_case(M, 37, 45, M % 2 == 0, M % 3 == 0 ? Activation::Relu : Activation::None, isa, serial, rng);
    }
  }
}

TEST(small_gemm_random_shapes) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int64_t> m_dist(1, 300), kn_dist(1, 150);
  const ReverseRunner runner;
  for (GemmIsa isa : isas()) {
    for (int i = 0; i < 40; ++i) {
      const int64_t M = m_dist(rng), K = kn_dist(rng), N = kn_dist(rng);
      check_case(M, K, N, i % 2 == 0, i % 4 < 2 ? Activation::Relu : Activation::None, isa, runner, rng);
    }
    // Panel and kernel edges: N = 1, 16, 17, 31, 32, 33, 64; K = 1.
    for (int64_t N : {1, 15, 16, 17, 31, 32, 33, 64, 65}) {
      check_case(13, 1, N, true, Activation::Relu, isa, runner, rng);
      check_case(64, 200, N, false, Activation::None, isa, runner, rng);
    }
    // A layer of the benchmark MLP's size, split into many tasks.
    check_case(64, 784, 512, true, Activation::Relu, isa, runner, rng);
  }
}

TEST(small_gemm_relu_keeps_nan) {
  const float w[2] = {1.0f, -1.0f};
  const SmallGemmPack pack = pack_small_gemm(w, 1, 2);
  for (GemmIsa isa : isas()) {
    const float x[2] = {std::numeric_limits<float>::quiet_NaN(), 2.0f};
    float y[4] = {};
    small_gemm(pack, x, 2, nullptr, Activation::Relu, y, SerialRunner(), isa);
    CHECK(std::isnan(y[0]) && std::isnan(y[1]));
    CHECK_EQ(y[2], 2.0f);
    CHECK_EQ(y[3], 0.0f);
  }
}
