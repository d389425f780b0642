// The numeric pieces of docs/op-spec.md, "Computation": input scale, normalisation and DAC
// (steps 1-4) and the linear quantizer `Quant` that the ADC applies to every tile read (step 6).
#pragma once

#include <cstddef>
#include <cstdint>

namespace memcc {

// ---- The linear quantizer ------------------------------------------------------------------

// Step 1 of Quant: the index t of Q among the sorted magnitudes of a read of m values.
int64_t quantile_index(int64_t m, double overflow_rate);

// Steps 2-3: the step Δ = 2^(c + 1 - b), with c the smallest integer such that 2^c >= Q.
// Returns 0 for Q = 0 (every output is 0). Computed with frexp/ldexp, so it is exact.
double adc_step(float Q, int bits);

// Quant over one read, written for clarity (tests, rare paths). `out` may alias `a`;
// `scratch` holds m floats.
void linear_quantize(const float* a, int64_t m, int bits, double overflow_rate, float* out,
                     float* scratch);

// The ADC epilogue of `rows` reads of m values each: acc_i += Quant(read_i). read_i starts at
// reads + i * ld_reads, acc_i at acc + i * ld_acc. `scratch` holds m floats (used only when the
// overflow rate makes Q a lower quantile than the maximum).
// row_max (rows floats, or null): each read's largest magnitude when a pass before this one
// found it (NaN where it did not, or where the read holds a NaN): the maximum is then not scanned again.
void adc_accumulate_rows(const float* reads, int64_t rows, int64_t m, int64_t ld_reads, int bits,
                         double overflow_rate, float* acc, int64_t ld_acc, float* scratch,
                         const float* row_max = nullptr);

// The same epilogue for reads stored as columns: read i (i < count) is the m values
// reads[j * ld_reads + i], j < m, and acc[j * ld_acc + i] += Quant(read_i)[j]. Vectorised across
// the reads, for the conv layout where Y wants [column, position]. `scratch` holds
// 3 * count + m floats.
void adc_accumulate_columns(const float* reads, int64_t m, int64_t count, int64_t ld_reads, int bits,
                            double overflow_rate, float* acc, int64_t ld_acc, float* scratch);

// ---- Input vectors -------------------------------------------------------------------------

struct InputEncoding {
  float input_range = 0.0f;  // 0: per-vector max |x|
  int dac_bits = 0;
  float v_max = 0.3f;
  // I-V nonlinearity (iv_b > 0): the encoded voltages become f(v) = iv_a sinh(iv_b v), which is
  // what the crossbar multiplies (the Rescaled target gets f(v) s / V_max).
  float iv_a = 0.0f, iv_b = 0.0f;
};

// What an encoded entry holds:
//  - Voltages: v_k (step 4), read against D by the tiled ADC path;
//  - Rescaled: u_k * s, i.e. x_k after the clamp and the DAC, read against weight_scale * D
//    by the one-GEMM path (equal to v_k * s / V_max, the step-8 factor folded into the input).
enum class EncodeTarget { Voltages, Rescaled };

// Input vectors as rows: vector i is x[i * ldx + k], k < K. Writes the encoded vectors to
// out[i * ld_out + k] (out may equal x with the same stride) and s_i to scale[i].
void encode_rows(const float* x, int64_t ldx, int64_t rows, int64_t K, const InputEncoding& enc,
                 EncodeTarget target, float* out, int64_t ld_out, float* scale);

// Input vectors as columns (im2col layout): vector p is col[k * ldc + p], k < K, p < count.
// Encodes in place and writes s_p to scale[p]. `scratch` holds 2 * count floats.
// With scale_given (and input_range 0), scale[p] already holds max_k |col[k * ldc + p]| (the
// caller found it more cheaply than this pass over the patches) and is used as s_p.
void encode_columns(float* col, int64_t ldc, int64_t K, int64_t count, const InputEncoding& enc,
                    EncodeTarget target, float* scale, float* scratch, bool scale_given = false);

// Bounds [lo, hi] on every nonzero |v| of the Voltages target (|f(v)| with the I-V), loose by a
// factor 2 each way for the float32 rounding of the encoding: with a DAC every nonzero voltage
// lies between one level, V_max / L, and full scale, V_max. {0, 0} without a DAC (no lower bound)
// or when a bound is not a finite positive float.
struct MagnitudeRange {
  double lo = 0.0, hi = 0.0;
};
MagnitudeRange voltage_magnitude_range(const InputEncoding& enc);

float max_abs(const float* a, int64_t n);

}  // namespace memcc
