#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "naive_spec.h"
#include "nearest_state.h"
#include "quantize.h"
#include "test_harness.h"

using namespace memcc;

namespace {

std::vector<float> quantize(std::vector<float> a, int bits, double q) {
  std::vector<float> out(a.size()), scratch(a.size());
  linear_quantize(a.data(), static_cast<int64_t>(a.size()), bits, q, out.data(), scratch.data());
  return out;
}

void check_values(const std::vector<float>& got, const std::vector<double>& want) {
  CHECK_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK_EQ(double(got[i]), want[i]);
}

}  // namespace

TEST(quantize_quantile_index) {
  CHECK_EQ(quantile_index(10, 0.0), 9);
  CHECK_EQ(quantile_index(10, 0.1), 8);
  CHECK_EQ(quantile_index(10, 0.15), 8);  // floor(1.5) = 1
  CHECK_EQ(quantile_index(10, 0.99), 0);
  CHECK_EQ(quantile_index(1, 0.5), 0);
  CHECK_EQ(quantile_index(128, 0.004), 127);  // floor(0.512) = 0: still the maximum
}

TEST(quantize_adc_step_is_exact_power_of_two) {
  CHECK_EQ(adc_step(1.0f, 8), std::ldexp(1.0, -7));     // 2^0 >= 1: c = 0
  CHECK_EQ(adc_step(0.75f, 8), std::ldexp(1.0, -7));    // c = 0
  CHECK_EQ(adc_step(1.5f, 8), std::ldexp(1.0, -6));     // c = 1
  CHECK_EQ(adc_step(std::ldexp(1.0f, -20), 4), std::ldexp(1.0, -23));  // exact power: c = -20
  CHECK_EQ(adc_step(std::nextafter(std::ldexp(1.0f, -20), 1.0f), 4), std::ldexp(1.0, -22));
  CHECK_EQ(adc_step(0.0f, 8), 0.0);
}

TEST(quantize_hand_cases_clamp_at_top) {
  // Q = 1, b = 3: Δ = 2^(0 + 1 - 3) = 0.25, levels -4..3, so 1.0 clamps to 0.75.
  check_values(quantize({1.0f, -0.5f, 0.25f, 0.0f}, 3, 0.0), {0.75, -0.5, 0.25, 0.0});
  // b = 2: Δ = 0.5, levels -2..1: -1 is representable, +1 clamps to 0.5.
  check_values(quantize({-1.0f, 1.0f}, 2, 0.0), {-1.0, 0.5});
}

TEST(quantize_ties_to_even) {
  // Q = 1, b = 4: Δ = 1/8. 0.5Δ -> 0, 1.5Δ -> 2Δ, 2.5Δ -> 2Δ, -0.5Δ -> 0, -1.5Δ -> -2Δ.
  check_values(quantize({1.0f, 0.0625f, 0.1875f, 0.3125f, -0.0625f, -0.1875f}, 4, 0.0),
               {0.875, 0.0, 0.25, 0.25, 0.0, -0.25});
}

TEST(quantize_overflow_rate) {
  // m = 10, q = 0.1: t = 8, Q = the second largest magnitude = 1; the 10 overflows and clamps.
  std::vector<float> a(10, 1.0f);
  a[3] = -10.0f;
  const auto out = quantize(a, 4, 0.1);
  for (size_t i = 0; i < a.size(); ++i) CHECK_EQ(out[i], i == 3 ? -1.0f : 0.875f);
}

TEST(quantize_q_zero_gives_zeros) {
  check_values(quantize({0.0f, 0.0f, 0.0f, 5.0f}, 8, 0.5), {0, 0, 0, 0});  // t = 1: Q = 0
  check_values(quantize({0.0f, 0.0f}, 8, 0.0), {0, 0});
}

TEST(quantize_adc_accumulate_matches_quant) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int bits_list[] = {2, 3, 8, 12, 22, 23, 24};
  const double rates[] = {0.0, 0.05, 0.3};
  const float scales[] = {1.0f, 1e-6f, 3e-36f, 1e30f};  // the last two leave float's normal range for Δ or 1/Δ
  for (int bits : bits_list) {
    for (double q : rates) {
      for (float sc : scales) {
        const int64_t rows = 5, m = 37;
        std::vector<float> reads(rows * m), acc(rows * m, 0.5f), scratch(m);
        for (auto& v : reads) v = normal(rng) * sc;
        reads[m] = 0.0f;  // a few exact zeros
        adc_accumulate_rows(reads.data(), rows, m, m, bits, q, acc.data(), m, scratch.data());
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<double> read(reads.begin() + r * m, reads.begin() + (r + 1) * m);
          const auto want = memcc_test::naive_quant(read, bits, q);
          for (int64_t i = 0; i < m; ++i) {
            CHECK_NEAR(acc[r * m + i], float(want[i]) + 0.5f, 1e-6 * (1.0 + std::fabs(want[i])));
          }
        }
      }
    }
  }
}

TEST(quantize_encode_rows_dac_hand_case) {
  // s = 1, dac_bits = 3: L = 3; u*L = 1.5 -> 2 (ties to even), -3, 0.75 -> 1, 0.
  InputEncoding enc;
  enc.dac_bits = 3;
  enc.v_max = 0.5f;
  const float x[] = {0.5f, -1.0f, 0.25f, 0.0f};
  float out[4], s = 0;
  encode_rows(x, 4, 1, 4, enc, EncodeTarget::Voltages, out, 4, &s);
  CHECK_EQ(s, 1.0f);
  CHECK_NEAR(out[0], 2.0 / 3 * 0.5, 1e-7);
  CHECK_NEAR(out[1], -0.5, 1e-7);
  CHECK_NEAR(out[2], 1.0 / 3 * 0.5, 1e-7);
  CHECK_EQ(out[3], 0.0f);
  // Rescaled: u * s, here s = 1.
  encode_rows(x, 4, 1, 4, enc, EncodeTarget::Rescaled, out, 4, &s);
  CHECK_NEAR(out[0], 2.0 / 3, 1e-7);
}

TEST(quantize_encode_rows_input_range_and_zero_vector) {
  InputEncoding enc;
  enc.input_range = 0.5f;
  const float x[] = {2.0f, -0.25f, -3.0f, 0.1f};
  float out[4], s = 0;
  encode_rows(x, 4, 1, 4, enc, EncodeTarget::Voltages, out, 4, &s);
  CHECK_EQ(s, 0.5f);
  CHECK_NEAR(out[0], 0.3, 1e-7);  // clamped to 1, times V_max = 0.3
  CHECK_NEAR(out[1], -0.15, 1e-7);
  CHECK_NEAR(out[2], -0.3, 1e-7);
  encode_rows(x, 4, 1, 4, enc, EncodeTarget::Rescaled, out, 4, &s);
  CHECK_EQ(out[0], 0.5f);
  CHECK_EQ(out[2], -0.5f);
  CHECK_EQ(out[3], 0.1f);

  InputEncoding per_vector;
  per_vector.dac_bits = 8;
  const float zeros[] = {0.0f, 0.0f, 0.0f};
  float z[3] = {1, 1, 1};
  encode_rows(zeros, 3, 1, 3, per_vector, EncodeTarget::Voltages, z, 3, &s);
  CHECK_EQ(s, 0.0f);
  CHECK(z[0] == 0.0f && z[1] == 0.0f && z[2] == 0.0f);
}

TEST(quantize_encode_columns_matches_rows) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int dac : {0, 2, 8, 24}) {
    for (float range : {0.0f, 1.5f}) {
      for (auto target : {EncodeTarget::Voltages, EncodeTarget::Rescaled}) {
        const int64_t K = 13, n = 9;
        std::vector<float> rows(n * K), cols(K * n), out(n * K), s_rows(n), s_cols(n), scratch(2 * n);
        for (auto& v : rows) v = normal(rng);
        for (int64_t k = 0; k < K; ++k) rows[4 * K + k] = 0.0f;  // one zero vector
        for (int64_t i = 0; i < n; ++i)
          for (int64_t k = 0; k < K; ++k) cols[k * n + i] = rows[i * K + k];
        InputEncoding enc;
        enc.dac_bits = dac;
        enc.input_range = range;
        encode_rows(rows.data(), K, n, K, enc, target, out.data(), K, s_rows.data());
        encode_columns(cols.data(), n, K, n, enc, target, s_cols.data(), scratch.data());
        for (int64_t i = 0; i < n; ++i) {
          CHECK_EQ(s_rows[i], s_cols[i]);
          for (int64_t k = 0; k < K; ++k) CHECK_EQ(out[i * K + k], cols[k * n + i]);
        }
      }
    }
  }
}

TEST(quantize_voltage_magnitude_range_holds_every_encoded_voltage) {
  // The DAC's bounds on the nonzero encoded voltages (their squares skip the scans of the
  // bfloat16 variance pass): every voltage encode_columns writes lies inside, and the bounds are
  // the one-level and full-scale magnitudes loosened by the stated factor 2.
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  InputEncoding none;
  CHECK_EQ(voltage_magnitude_range(none).hi, 0.0);  // no DAC: no lower bound
  for (int dac : {2, 8, 16}) {
    for (float range : {0.0f, 0.7f}) {
      for (float iv_b : {0.0f, 2.7f}) {
        InputEncoding enc;
        enc.dac_bits = dac;
        enc.input_range = range;
        enc.iv_a = 0.32f;
        enc.iv_b = iv_b;
        const MagnitudeRange r = voltage_magnitude_range(enc);
        const double one_level = enc.v_max / (std::ldexp(1.0, dac - 1) - 1.0);
        const double lo = iv_b > 0 ? enc.iv_a * std::sinh(enc.iv_b * one_level) : one_level;
        const double hi = iv_b > 0 ? enc.iv_a * std::sinh(enc.iv_b * double(enc.v_max)) : enc.v_max;
        CHECK(std::fabs(r.lo - lo / 2) <= 1e-12 * lo && std::fabs(r.hi - 2 * hi) <= 1e-12 * hi);
        const int64_t K = 40, n = 50;
        std::vector<float> col(K * n), scale(n), scratch(2 * n);
        for (auto& v : col) v = normal(rng) * (normal(rng) > 4.0f ? 1e-4f : 1.0f);
        encode_columns(col.data(), n, K, n, enc, EncodeTarget::Voltages, scale.data(), scratch.data());
        double seen_lo = INFINITY, seen_hi = 0.0;
        for (float v : col) {
          if (v == 0.0f) continue;
          seen_lo = std::min(seen_lo, std::fabs(double(v)));
          seen_hi = std::max(seen_hi, std::fabs(double(v)));
        }
        CHECK(seen_lo >= r.lo && seen_hi <= r.hi);
        CHECK(seen_hi >= r.hi / 2.1);  // the largest voltage reaches full scale
      }
    }
  }
  InputEncoding wild;
  wild.dac_bits = 8;
  wild.iv_a = 1.0f;
  wild.iv_b = 400.0f;  // sinh(400 * 0.3) overflows: no bound
  CHECK_EQ(voltage_magnitude_range(wild).hi, 0.0);
}

TEST(quantize_max_abs) {
  std::vector<float> a(37, 0.5f);
  CHECK_EQ(max_abs(a.data(), 0), 0.0f);
  a[35] = -7.0f;
  CHECK_EQ(max_abs(a.data(), 37), 7.0f);
  a[2] = 9.0f;
  CHECK_EQ(max_abs(a.data(), 37), 9.0f);
  CHECK_EQ(max_abs(a.data(), 2), 0.5f);
}

TEST(quantize_nearest_state_index) {
  const double s[] = {1.0, 2.0, 4.0, 8.0};
  CHECK_EQ(nearest_state_index(-5.0, s, 4), 0);  // below the range
  CHECK_EQ(nearest_state_index(1.0, s, 4), 0);
  CHECK_EQ(nearest_state_index(1.4, s, 4), 0);
  CHECK_EQ(nearest_state_index(1.5, s, 4), 0);  // a tie goes to the lower state
  CHECK_EQ(nearest_state_index(1.6, s, 4), 1);
  CHECK_EQ(nearest_state_index(3.0, s, 4), 1);  // tie
  CHECK_EQ(nearest_state_index(3.01, s, 4), 2);
  CHECK_EQ(nearest_state_index(8.0, s, 4), 3);
  CHECK_EQ(nearest_state_index(100.0, s, 4), 3);  // above the range
  CHECK_EQ(nearest_state_index(std::nan(""), s, 4), -1);
  CHECK_EQ(nearest_state_index(-3.0, s, 1), 0);  // one state
  // Against a linear scan on random values and states (duplicates included).
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(-1.0, 11.0);
  std::vector<double> states(37);
  for (auto& v : states) v = std::round(u(rng) * 4.0) / 4.0;
  std::sort(states.begin(), states.end());
  for (int i = 0; i < 20000; ++i) {
    const double v = std::round(u(rng) * 8.0) / 8.0;  // on the quarter grid: many exact ties
    int64_t best = 0;
    for (int64_t k = 1; k < static_cast<int64_t>(states.size()); ++k) {
      if (std::fabs(states[k] - v) < std::fabs(states[best] - v)) best = k;
    }
    const int64_t got = nearest_state_index(v, states.data(), static_cast<int64_t>(states.size()));
    // The scan keeps the first of equally near states, i.e. the lower one, as ties want.
    CHECK_EQ(states[got], states[best]);
  }
}
