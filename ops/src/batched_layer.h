// The encoded-input path of a layer as three phases per chunk of input vectors, so that the
// multiply in the middle is one batched GEMM that a fast library (onnxruntime's own MatMul, i.e.
// MLAS) runs on its own threads:
//
//   1. build (parallel): encode the chunk's input vectors (steps 1-4; im2col first in conv mode)
//      into one operand of the batched product, split into row tiles (zero-padded to tr rows);
//   2. multiply: one batched GEMM per chunk gives every tile's currents (step 5);
//   3. epilogue (parallel): ADC per tile read (step 6), sum over row tiles (step 7), step 8.
//
// Matmul mode:  A[T, M, tr] (encoded rows)   x  B[T, tr, N]  (D, rows zero-padded to T*tr)
//               -> P[T, M, N].
// Conv mode:    A[G*T, Ng, tr] (D^T per group and row tile)  x  B[G*T, tr, M] (patches as
//               columns, as im2col writes them) -> P[G*T, Ng, M]: column-major reads, so the ADC
//               runs vectorised across the chunk's vectors and Y ([B, N, positions]) is written
//               row by row.
//
// Without an ADC the same phases run with one row tile (tiles do not change the result).
// ORT-free: the tests run it with a BLAS-backed BatchedGemm.
#pragma once

#include <cstddef>
#include <cstdint>

#include "layer_compute.h"
#include "layer_plan.h"
#include "op_attributes.h"

namespace memcc {

// C[b] = A[b] * B[b] for b < batch; A[b] is [M, K], B[b] is [K, N], C[b] is [M, N], all
// contiguous row-major, one after another.
class BatchedGemm {
 public:
  virtual ~BatchedGemm() = default;
  virtual void run(int64_t batch, int64_t M, int64_t N, int64_t K, const float* A, const float* B,
                   float* C) const = 0;
};

// A loop of single-threaded OpenBLAS sgemm calls (tests, and the engine without onnxruntime's).
class BlasBatchedGemm : public BatchedGemm {
 public:
  void run(int64_t batch, int64_t M, int64_t N, int64_t K, const float* A, const float* B,
           float* C) const override;
};

struct TileGeometry {
  int64_t groups = 1;  // G (1 in matmul mode)
  int64_t K = 0;       // rows of a crossbar (Kg in conv mode)
  int64_t Ng = 0;      // columns per group (N in matmul mode)
  int64_t tr = 0;      // rows per row tile (K without the ADC)
  int64_t T = 1;       // row tiles
  int64_t tc = 0;      // columns per column tile
  int64_t Kp() const { return T * tr; }
};

TileGeometry tile_geometry(const OpAttributes& attrs, const LayerPlan& plan);

// The conductance operand of the batched product, from D ([K, N], unscaled):
// matmul mode [T*tr, N] (D with zero rows appended); conv mode [G, T, Ng, tr].
size_t batched_pack_floats(const TileGeometry& geo, bool conv);
void pack_batched(const float* D, const TileGeometry& geo, bool conv, float* out);

// Input vectors per chunk for a scratch budget, and the scratch run_layer_batched needs.
int64_t batched_chunk_vectors(const OpAttributes& attrs, const LayerPlan& plan, const TileGeometry& geo);
size_t batched_scratch_floats(const OpAttributes& attrs, const LayerPlan& plan, const TileGeometry& geo);

// y from x through the three phases; `packed` from pack_batched, `scratch` of
// batched_scratch_floats. Requires at least one input vector and K, N > 0 (run_layer handles
// the empty cases). Handles every attribute combination, ADC or not.
void run_layer_batched(const OpAttributes& attrs, const LayerPlan& plan, const TileGeometry& geo,
                       const float* packed, const float* x, const float* bias, float* y,
                       const TaskRunner& runner, const BatchedGemm& gemm, float* scratch);

}  // namespace memcc
