#include "naive_spec.h"

#include <algorithm>
#include <cmath>

#include "philox.h"

namespace memcc_test {

std::vector<double> naive_quant(const std::vector<double>& a, int bits, double q) {
  const int64_t m = static_cast<int64_t>(a.size());
  std::vector<double> mags(a.size()), out(a.size(), 0.0);
  if (m == 0) return out;
  for (size_t i = 0; i < a.size(); ++i) mags[i] = std::fabs(a[i]);
  std::sort(mags.begin(), mags.end());
  int64_t t = m - 1 - static_cast<int64_t>(std::floor(q * static_cast<double>(m)));
  t = std::min<int64_t>(std::max<int64_t>(t, 0), m - 1);
  const double Q = mags[static_cast<size_t>(t)];
  if (Q == 0.0) return out;
  int c = 0;
  while (std::ldexp(1.0, c) < Q) ++c;  // smallest c with 2^c >= Q, searched the slow way
  while (std::ldexp(1.0, c - 1) >= Q) --c;
  const double delta = std::ldexp(1.0, c + 1 - bits);
  const double lo = -std::ldexp(1.0, bits - 1), hi = std::ldexp(1.0, bits - 1) - 1;
  for (size_t i = 0; i < a.size(); ++i) out[i] = std::min(std::max(std::nearbyint(a[i] / delta), lo), hi) * delta;
  return out;
}

double naive_patch_entry(const memcc::LayerPlan& p, const std::vector<float>& X, int64_t b, int64_t h,
                         int64_t pos, int64_t k) {
  const memcc::Im2colShape& g = p.patch;
  const int64_t ks = g.kernel_size();
  const int64_t c = k / ks;
  int64_t flat = k % ks;
  int64_t o[3], pp[3];
  o[2] = flat % g.kernel[2];
  flat /= g.kernel[2];
  o[1] = flat % g.kernel[1];
  o[0] = flat / g.kernel[1];
  pp[2] = pos % g.out[2];
  pp[1] = (pos / g.out[2]) % g.out[1];
  pp[0] = pos / (g.out[2] * g.out[1]);
  int64_t idx[3];
  for (int d = 0; d < 3; ++d) {
    idx[d] = pp[d] * g.stride[d] - g.pad_begin[d] + o[d] * g.dilation[d];
    if (idx[d] < 0 || idx[d] >= g.in[d]) return 0.0;
  }
  const int64_t channel = h * g.channels + c;
  return X[static_cast<size_t>((((b * p.channels + channel) * g.in[0] + idx[0]) * g.in[1] + idx[1]) * g.in[2] + idx[2])];
}

namespace {

// Read noise of one vector: sigma^2 sum_s G'^2 ([K, N]), the vector's q and the counter c.
struct NaiveNoise {
  const std::vector<double>* var = nullptr;
  int64_t q = 0;
  uint64_t c = 0;
};

// Steps 1-8 without the bias, for one vector against columns [c_begin, c_begin + n) of D.
std::vector<double> naive_vector(const memcc::OpAttributes& a, const std::vector<double>& x,
                                 const std::vector<double>& D, int64_t N, int64_t c_begin, int64_t n,
                                 const NaiveNoise& noise) {
  const int64_t K = static_cast<int64_t>(x.size());
  std::vector<double> y(static_cast<size_t>(n), 0.0);
  double s = a.input_range;
  if (!(a.input_range > 0)) {
    s = 0;
    for (double v : x) s = std::max(s, std::fabs(v));
  }
  if (s == 0) return y;
  std::vector<double> v(x.size());
  for (int64_t k = 0; k < K; ++k) {
    double u = std::min(std::max(x[k] / s, -1.0), 1.0);
    if (a.dac_bits > 0) {
      const double L = std::ldexp(1.0, a.dac_bits - 1) - 1;
      u = std::nearbyint(u * L) / L;
    }
    v[k] = u * a.max_input_voltage;
    if (a.iv_b > 0) v[k] = a.iv_a * std::sinh(double(a.iv_b) * v[k]);  // f(v)
  }
  const int64_t tr = a.tile_rows > 0 ? a.tile_rows : std::max<int64_t>(K, 1);
  const int64_t tc = a.tile_cols > 0 ? a.tile_cols : std::max<int64_t>(n, 1);
  std::vector<double> acc(static_cast<size_t>(n), 0.0);
  for (int64_t r0 = 0; r0 < K; r0 += tr) {
    std::vector<double> I(static_cast<size_t>(n), 0.0);
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t k = r0; k < std::min(K, r0 + tr); ++k) I[j] += v[k] * D[k * N + c_begin + j];
      if (noise.var && a.adc_bits > 0) {
        double var = 0;
        for (int64_t k = r0; k < std::min(K, r0 + tr); ++k) var += v[k] * v[k] * (*noise.var)[k * N + c_begin + j];
        const double z = memcc::philox::normal(static_cast<uint64_t>(a.noise_seed), uint32_t(noise.c),
                                               uint32_t(noise.q), uint32_t(r0 / tr), uint32_t(c_begin + j));
        I[j] += std::sqrt(var) * z;
      }
    }
    if (a.adc_bits > 0) {
      for (int64_t c0 = 0; c0 < n; c0 += tc) {
        std::vector<double> read(I.begin() + c0, I.begin() + std::min(n, c0 + tc));
        const auto qd = naive_quant(read, a.adc_bits, a.adc_overflow_rate);
        std::copy(qd.begin(), qd.end(), I.begin() + c0);
      }
    }
    for (int64_t j = 0; j < n; ++j) acc[j] += I[j];
  }
  if (noise.var && a.adc_bits == 0) {
    // No ADC: one term per column with the variance over all K rows, z = normal(key; c, q, 0, j').
    for (int64_t j = 0; j < n; ++j) {
      double var = 0;
      for (int64_t k = 0; k < K; ++k) var += v[k] * v[k] * (*noise.var)[k * N + c_begin + j];
      const double z = memcc::philox::normal(static_cast<uint64_t>(a.noise_seed), uint32_t(noise.c),
                                             uint32_t(noise.q), 0u, uint32_t(c_begin + j));
      acc[j] += std::sqrt(var) * z;
    }
  }
  for (int64_t j = 0; j < n; ++j) y[j] = acc[j] * a.weight_scale * s / a.max_input_voltage;
  return y;
}

}  // namespace

std::vector<double> naive_drift(const memcc::OpAttributes& a, const std::vector<float>& G, int64_t S, int64_t K,
                                int64_t N, double time) {
  const double t = time < 0 ? a.drift_t0 : time;
  const double tau = std::max(t, double(a.drift_t0)) / a.drift_t0;
  std::vector<double> out(G.begin(), G.end());
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t n = 0; n < N; ++n) {
        double nu = a.drift_nu;
        if (a.drift_nu_std > 0) {
          nu += a.drift_nu_std * memcc::philox::normal(static_cast<uint64_t>(a.drift_seed), 0, uint32_t(s),
                                                       uint32_t(k), uint32_t(n));
        }
        out[(s * K + k) * N + n] *= std::pow(tau, -std::max(0.0, nu));
      }
    }
  }
  return out;
}

std::vector<float> naive_layer(const memcc::OpAttributes& a, const memcc::LayerPlan& p,
                               const std::vector<float>& X, const std::vector<float>& G_in,
                               const float* bias, uint64_t execution, double time) {
  const int64_t K = p.K, N = p.N;
  const std::vector<double> G = naive_drift(a, G_in, p.S, K, N, time);
  std::vector<double> D(static_cast<size_t>(K * N)), var(static_cast<size_t>(K * N));
  for (int64_t i = 0; i < K * N; ++i) {
    D[i] = p.S == 2 ? G[i] - G[K * N + i] : G[i] - double(a.g_ref);
    var[i] = double(a.read_noise_std) * a.read_noise_std * (G[i] * G[i] + (p.S == 2 ? G[K * N + i] * G[K * N + i] : 0.0));
  }
  NaiveNoise noise;
  noise.var = a.read_noise_std > 0 ? &var : nullptr;
  noise.c = execution;
  int64_t total = 1;
  for (int64_t d : p.y_shape) total *= d;
  std::vector<float> Y(static_cast<size_t>(total));
  if (!a.conv) {
    for (int64_t r = 0; r < p.rows; ++r) {
      std::vector<double> x(X.begin() + r * K, X.begin() + (r + 1) * K);
      noise.q = r;
      const auto y = naive_vector(a, x, D, N, 0, N, noise);
      for (int64_t j = 0; j < N; ++j) Y[r * N + j] = static_cast<float>(y[j] + (bias ? bias[j] : 0.0));
    }
    return Y;
  }
  const int64_t P = p.patch.positions(), Ng = p.group_cols;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.group; ++h) {
      for (int64_t pos = 0; pos < P; ++pos) {
        std::vector<double> x(static_cast<size_t>(K));
        for (int64_t k = 0; k < K; ++k) x[k] = naive_patch_entry(p, X, b, h, pos, k);
        noise.q = (b * p.group + h) * P + pos;
        const auto y = naive_vector(a, x, D, N, h * Ng, Ng, noise);
        for (int64_t j = 0; j < Ng; ++j) {
          const int64_t n = h * Ng + j;
          Y[(b * N + n) * P + pos] = static_cast<float>(y[j] + (bias ? bias[n] : 0.0));
        }
      }
    }
  }
  return Y;
}

}  // namespace memcc_test
