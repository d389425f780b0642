#include "batched_layer.h"

#include <algorithm>
#include <vector>

#include "crossbar_mac.h"
#include "im2col.h"
#include "layer_compute.h"
#include "quantize.h"
#include "scratch.h"

namespace memcc {
namespace {

// Scratch of one chunk (encoded inputs, tile currents, scales): 4 MiB. Each chunk costs three
// rounds through the thread pool and MLAS packs the conductance operand per call, so chunks are
// large (measured: 0.5 MiB chunks ran 1.2-1.5x slower than 8 MiB ones); the bound keeps scratch
// independent of the batch.
constexpr int64_t kChunkFloats = int64_t{1} << 20;
constexpr int64_t kMinChunk = 64;
// Vectors per build/epilogue task in conv mode: im2col + encode of a piece stays in L2.
constexpr int64_t kMaxPiece = 128;
constexpr int64_t kMinPiece = 16;

// Step 8's factor weight_scale * s / V_max (computed as layer_compute does).
inline float output_factor(const OpAttributes& a, float s) {
  return static_cast<float>(static_cast<double>(a.weight_scale) * s / a.max_input_voltage);
}

int64_t vectors_of(const OpAttributes& a, const LayerPlan& p) {
  return a.conv ? p.batch * p.patch.positions() : p.rows;
}

// Floats of scratch per input vector of a chunk.
int64_t per_vector_floats(const OpAttributes& a, const TileGeometry& g) {
  if (a.conv) return g.groups * (g.Kp() + g.T * g.Ng + 1);
  // Matmul mode without the ADC multiplies straight into Y.
  return g.Kp() + (a.uses_adc() ? g.T * g.Ng : 0) + 1;
}

// Splits n items into blocks of at least min_per for about `want` tasks.
int64_t block_size(int64_t n, int64_t want, int64_t min_per) {
  return std::max<int64_t>(std::min(n, min_per), ceil_div(n, std::max<int64_t>(1, want)));
}

// ---- Matmul mode ---------------------------------------------------------------------------

void matmul_batched(const OpAttributes& a, const LayerPlan& p, const TileGeometry& g, const float* packed,
                    const float* x, const float* bias, float* y, const TaskRunner& runner,
                    const BatchedGemm& gemm, float* scratch) {
  const int64_t R = p.rows, K = g.K, N = g.Ng, T = g.T, tr = g.tr, tc = g.tc;
  const bool adc = a.uses_adc();
  const int64_t chunk = batched_chunk_vectors(a, p, g);
  const InputEncoding enc = encoding_of(a);
  const int64_t want = 2 * std::max(1, runner.concurrency());
  const double q = static_cast<double>(a.adc_overflow_rate);

  for (int64_t r0 = 0; r0 < R; r0 += chunk) {
    const int64_t M = std::min(chunk, R - r0);
    float* A = scratch;
    float* P = adc ? A + T * M * tr : y + r0 * N;
    float* scale = (adc ? P + T * M * N : A + T * M * tr);
    const int64_t rows_per = block_size(M, want, 8);

    run_tasks(runner, ceil_div(M, rows_per), [&](size_t task) {
      const int64_t i0 = static_cast<int64_t>(task) * rows_per;
      const int64_t m = std::min(rows_per, M - i0);
      if (T == 1) {
        encode_rows(x + (r0 + i0) * K, K, m, K, enc, EncodeTarget::Voltages, A + i0 * tr, tr, scale + i0);
        return;
      }
      float* row = thread_scratch(ScratchSlot::Inputs, static_cast<size_t>(K));
      for (int64_t i = i0; i < i0 + m; ++i) {
        encode_rows(x + (r0 + i) * K, K, 1, K, enc, EncodeTarget::Voltages, row, K, scale + i);
        for (int64_t t = 0; t < T; ++t) {
          float* dst = A + (t * M + i) * tr;
          const int64_t n = std::min(tr, K - t * tr);
          std::copy(row + t * tr, row + t * tr + n, dst);
          std::fill(dst + n, dst + tr, 0.0f);
        }
      }
    });

    gemm.run(T, M, N, tr, A, packed, P);

    run_tasks(runner, ceil_div(M, rows_per), [&](size_t task) {
      const int64_t i0 = static_cast<int64_t>(task) * rows_per;
      const int64_t m = std::min(rows_per, M - i0);
      float* read_scratch = adc ? thread_scratch(ScratchSlot::Vectors, static_cast<size_t>(tc)) : nullptr;
      for (int64_t i = i0; i < i0 + m; ++i) {
        float* yr = y + (r0 + i) * N;
        if (adc) {
          std::fill(yr, yr + N, 0.0f);
          for (int64_t t = 0; t < T; ++t) {
            const float* reads = P + (t * M + i) * N;
            for (int64_t c0 = 0; c0 < N; c0 += tc) {
              adc_accumulate_rows(reads + c0, 1, std::min(tc, N - c0), N, a.adc_bits, q, yr + c0, N,
                                  read_scratch);
            }
          }
        }
        const float f = output_factor(a, scale[i]);
        if (bias) {
          for (int64_t j = 0; j < N; ++j) yr[j] = yr[j] * f + bias[j];
        } else {
          for (int64_t j = 0; j < N; ++j) yr[j] = yr[j] * f;
        }
      }
    });
  }
}

// ---- Conv mode -----------------------------------------------------------------------------

struct Piece {
  int64_t b, p0, count, offset;  // image, first position, vectors, column within the chunk
};

void conv_batched(const OpAttributes& a, const LayerPlan& p, const TileGeometry& g, const float* packed,
                  const float* x, const float* bias, float* y, const TaskRunner& runner,
                  const BatchedGemm& gemm, float* scratch) {
  const int64_t P = p.patch.positions(), V = p.batch * P, in_size = p.patch.input_size();
  const int64_t G = g.groups, K = g.K, Ng = g.Ng, N = p.N, T = g.T, tr = g.tr, Kp = g.Kp(), tc = g.tc;
  const int64_t Cg = p.patch.channels;
  const bool adc = a.uses_adc();
  const int64_t chunk = batched_chunk_vectors(a, p, g);
  const InputEncoding enc = encoding_of(a);
  const int64_t conc = std::max(1, runner.concurrency());
  const double q = static_cast<double>(a.adc_overflow_rate);
  std::vector<Piece> pieces;

  for (int64_t v0 = 0; v0 < V; v0 += chunk) {
    const int64_t M = std::min(chunk, V - v0);
    float* Bm = scratch;            // [G, T, tr, M]
    float* Pm = Bm + G * Kp * M;    // [G, T, Ng, M]
    float* scale = Pm + G * T * Ng * M;  // [G, M]

    // Pieces never cross an image, so each one is a run of positions of one image.
    const int64_t want_pieces = ceil_div(4 * conc, G);
    const int64_t piece = std::min(kMaxPiece, block_size(M, want_pieces, kMinPiece));
    pieces.clear();
    for (int64_t v = v0; v < v0 + M;) {
      const int64_t b = v / P, pos = v % P;
      const int64_t n = std::min({piece, P - pos, v0 + M - v});
      pieces.push_back({b, pos, n, v - v0});
      v += n;
    }
    const int64_t tasks = G * static_cast<int64_t>(pieces.size());

    run_tasks(runner, tasks, [&](size_t task) {
      const int64_t h = static_cast<int64_t>(task) % G;
      const Piece& pc = pieces[static_cast<size_t>(task) / static_cast<size_t>(G)];
      float* col = Bm + h * Kp * M + pc.offset;
      im2col_columns(x + (pc.b * p.channels + h * Cg) * in_size, p.patch, pc.p0, pc.count, col, M);
      for (int64_t k = K; k < Kp; ++k) std::fill(col + k * M, col + k * M + pc.count, 0.0f);
      float* tmp = thread_scratch(ScratchSlot::Vectors, static_cast<size_t>(2 * pc.count));
      encode_columns(col, M, K, pc.count, enc, EncodeTarget::Voltages, scale + h * M + pc.offset, tmp);
    });

    gemm.run(G * T, Ng, M, tr, packed, Bm, Pm);

    run_tasks(runner, tasks, [&](size_t task) {
      const int64_t h = static_cast<int64_t>(task) % G;
      const Piece& pc = pieces[static_cast<size_t>(task) / static_cast<size_t>(G)];
      const int64_t n = pc.count;
      float* tmp = thread_scratch(ScratchSlot::Vectors, static_cast<size_t>(4 * n + tc));
      float* factor = tmp;
      const float* s = scale + h * M + pc.offset;
      for (int64_t i = 0; i < n; ++i) factor[i] = output_factor(a, s[i]);
      float* y0 = y + (pc.b * N + h * Ng) * P + pc.p0;  // row j at y0 + j * P
      if (adc) {
        for (int64_t j = 0; j < Ng; ++j) std::fill(y0 + j * P, y0 + j * P + n, 0.0f);
        for (int64_t t = 0; t < T; ++t) {
          const float* reads = Pm + (h * T + t) * Ng * M + pc.offset;
          for (int64_t c0 = 0; c0 < Ng; c0 += tc) {
            adc_accumulate_columns(reads + c0 * M, std::min(tc, Ng - c0), n, M, a.adc_bits, q,
                                   y0 + c0 * P, P, tmp + n);
          }
        }
      }
      for (int64_t j = 0; j < Ng; ++j) {
        float* yr = y0 + j * P;
        const float* src = adc ? yr : Pm + (h * Ng + j) * M + pc.offset;  // T = 1 without the ADC
        const float bj = bias ? bias[h * Ng + j] : 0.0f;
        for (int64_t i = 0; i < n; ++i) yr[i] = src[i] * factor[i] + bj;
      }
    });
  }
}

}  // namespace

void BlasBatchedGemm::run(int64_t batch, int64_t M, int64_t N, int64_t K, const float* A, const float* B,
                          float* C) const {
  for (int64_t b = 0; b < batch; ++b) {
    sgemm(false, M, N, K, A + b * M * K, K, B + b * K * N, N, 0.0f, C + b * M * N, N);
  }
}

TileGeometry tile_geometry(const OpAttributes& a, const LayerPlan& p) {
  TileGeometry g;
  g.groups = a.conv ? p.group : 1;
  g.K = p.K;
  g.Ng = a.conv ? p.group_cols : p.N;
  g.tr = a.uses_adc() && a.tile_rows > 0 ? std::min(a.tile_rows, p.K) : p.K;
  g.tr = std::max<int64_t>(g.tr, 1);
  g.T = std::max<int64_t>(1, ceil_div(p.K, g.tr));
  g.tc = a.tile_cols > 0 ? std::min(a.tile_cols, g.Ng) : g.Ng;
  g.tc = std::max<int64_t>(g.tc, 1);
  return g;
}

size_t batched_pack_floats(const TileGeometry& g, bool conv) {
  return static_cast<size_t>(conv ? g.groups * g.T * g.Ng * g.tr : g.Kp() * g.Ng);
}

void pack_batched(const float* D, const TileGeometry& g, bool conv, float* out) {
  if (!conv) {
    const int64_t N = g.Ng;
    std::copy(D, D + g.K * N, out);
    std::fill(out + g.K * N, out + g.Kp() * N, 0.0f);
    return;
  }
  const int64_t N = g.groups * g.Ng;
  for (int64_t h = 0; h < g.groups; ++h) {
    for (int64_t t = 0; t < g.T; ++t) {
      float* tile = out + (h * g.T + t) * g.Ng * g.tr;  // [Ng, tr]
      for (int64_t j = 0; j < g.Ng; ++j) {
        for (int64_t kk = 0; kk < g.tr; ++kk) {
          const int64_t k = t * g.tr + kk;
          tile[j * g.tr + kk] = k < g.K ? D[k * N + h * g.Ng + j] : 0.0f;
        }
      }
    }
  }
}

int64_t batched_chunk_vectors(const OpAttributes& a, const LayerPlan& p, const TileGeometry& g) {
  const int64_t V = vectors_of(a, p);
  int64_t chunk = std::max(kMinChunk, kChunkFloats / per_vector_floats(a, g));
  chunk = ceil_div(chunk, 16) * 16;
  // Even chunks: a last chunk of a few vectors would cost a round of phases for little work.
  const int64_t chunks = ceil_div(V, chunk);
  return std::max<int64_t>(1, ceil_div(V, std::max<int64_t>(1, chunks)));
}

size_t batched_scratch_floats(const OpAttributes& a, const LayerPlan& p, const TileGeometry& g) {
  return static_cast<size_t>(batched_chunk_vectors(a, p, g) * per_vector_floats(a, g));
}

void run_layer_batched(const OpAttributes& a, const LayerPlan& p, const TileGeometry& g, const float* packed,
                       const float* x, const float* bias, float* y, const TaskRunner& runner,
                       const BatchedGemm& gemm, float* scratch) {
  if (a.conv) {
    conv_batched(a, p, g, packed, x, bias, y, runner, gemm, scratch);
  } else {
    matmul_batched(a, p, g, packed, x, bias, y, runner, gemm, scratch);
  }
}

}  // namespace memcc
