#include "memristive_matmul_kernel.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <utility>

#include "activation.h"
#include "batched_layer.h"
#include "conv_geometry.h"
#include "crossbar_mac.h"
#include "errors.h"
#include "layer_compute.h"
#include "layer_plan.h"
#include "max_pool.h"
#include "ort_access.h"
#include "runtime_effects.h"
#include "scratch.h"
#include "simd_dispatch.h"
#include "small_gemm.h"

namespace memcc {
namespace {

// Runs tasks on the session's intra-op pool, so the session's thread settings hold.
class OrtTaskRunner : public TaskRunner {
 public:
  OrtTaskRunner(const OrtApi& api, OrtKernelContext* context) : api_(api), context_(context) {}

  void run(size_t total, const std::function<void(size_t)>& fn) const override {
    check(api_, api_.KernelContext_ParallelFor(context_, &trampoline, total, 0,
                                               const_cast<std::function<void(size_t)>*>(&fn)));
  }
  // The intra-op thread count is not visible to a custom op; the machine's is an upper bound,
  // and run_layer keeps tasks large enough that a smaller pool loses little.
  int concurrency() const override {
    static const int n = std::max(1u, std::thread::hardware_concurrency());
    return n;
  }

 private:
  static void trampoline(void* fn, size_t i) { (*static_cast<std::function<void(size_t)>*>(fn))(i); }
  const OrtApi& api_;
  OrtKernelContext* context_;
};

}  // namespace

MemristiveMatMulKernel::MemristiveMatMulKernel(const OrtApi& api, const OrtKernelInfo* info)
    : MemristiveMatMulKernel(api, read_kernel_setup(api, info, ""), info) {}

MemristiveMatMulKernel::MemristiveMatMulKernel(const OrtApi& api, KernelSetup setup, const OrtKernelInfo* info)
    : api_(api),
      node_name_(std::move(setup.node_name)),
      attrs_(std::move(setup.attrs)),
      packed_(setup.g_is_constant) {
  create_native_ops(info);
}

MemristiveMatMulKernel::~MemristiveMatMulKernel() {
  nchwc_.reset();
  conv_ops_.clear();
  gemm_.reset();
  matmul_.reset();
  if (info_copy_) api_.ReleaseKernelInfo(info_copy_);
  if (cpu_) api_.ReleaseMemoryInfo(cpu_);
}

namespace {

// MEMCC_OPS_ENGINE=blas turns onnxruntime's kernels off (tests of the fallback engine,
// comparisons); =native makes a missing onnxruntime kernel an error instead of a silent fallback
// (tests); anything else, or unset, uses them where they are available.
bool engine_env_is(const char* value) {
  const char* v = std::getenv("MEMCC_OPS_ENGINE");
  return v && std::strcmp(v, value) == 0;
}
bool native_disabled() { return engine_env_is("blas"); }
bool native_required() { return engine_env_is("native"); }
// MEMCC_OPS_NCHWC=0 keeps ideal convs on the plain Conv (comparisons, tests); =require makes an
// ideal 2-D conv that cannot run on the NCHWc kernels an error (tests of that path).
bool nchwc_env_is(const char* value) {
  const char* v = std::getenv("MEMCC_OPS_NCHWC");
  return v && std::strcmp(v, value) == 0;
}
bool nchwc_disabled() { return nchwc_env_is("0"); }
bool nchwc_required() { return nchwc_env_is("require"); }

// Opset versions to try, newest first: CreateOp needs one that a registered kernel covers.
const std::vector<int> kGemmVersions = {13, 11, 9};
const std::vector<int> kMatMulVersions = {13, 9, 1};
const std::vector<int> kConvVersions = {22, 11, 1};
const std::vector<int> kMaxPoolVersions = {22, 12, 11, 10, 8};

// Layers that read no tiles and whose encoded input e(x) is x itself (no DAC, linear I-V,
// input_range = 0) or a function of each element alone (a fixed input_range: the DAC and f then
// act element by element, and a conv patch's voltages do not depend on the patch): y is one
// product of e(X) with weight_scale * D, which onnxruntime's Gemm / Conv compute; read noise
// without an ADC adds one more product of the same shape, e(X)^2 against
// (weight_scale sigma)^2 sum_s G'^2 (docs/op-spec.md, step 5), and a Gaussian term per output.
// With input_range = 0 and a DAC or f, the voltages depend on each vector's (patch's) max |x|:
// those layers stay on the im2col / OpenBLAS path.
bool native_product(const OpAttributes& a) {
  return !a.uses_adc() && (a.input_range > 0.0f || (a.dac_bits == 0 && !a.nonlinear_iv()));
}

// Whether an ideal conv can run on the NCHWc kernels: they apply the activation themselves,
// which read noise must precede.
bool nchwc_usable(const OpAttributes& a) { return !a.read_noise() || a.activation == Activation::None; }

MEMCC_SIMD_CLONES
void square_elements(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * x[i];
}

// Engine choice thresholds for the encoded / ADC modes (see engine_for).
constexpr int64_t kNarrowGroup = 4;
constexpr int64_t kMinBatchedRows = 256;
// Floats to a cache line: the alignment of the packed NCHWc filter.
constexpr size_t kFilterAlign = 16;

}  // namespace

void MemristiveMatMulKernel::create_native_ops(const OrtKernelInfo* info) {
  if (native_disabled()) return;
  OrtStatus* status = api_.CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &cpu_);
  if (status) {
    api_.ReleaseStatus(status);
    cpu_ = nullptr;
    return;
  }
  std::string error;
  // Not every engine is used by every node; creating the few an attribute set can use is cheap.
  const bool ideal = native_product(attrs_);
  if (!attrs_.conv && ideal) {
    using K = NativeAttr::Kind;
    const std::vector<NativeAttr> gemm_attrs = {{"transA", {0}, K::Int, 0.0f},
                                                {"transB", {0}, K::Int, 0.0f},
                                                {"alpha", {}, K::Float, 1.0f},
                                                {"beta", {}, K::Float, 1.0f}};
    gemm_ = NativeOp::create(api_, info, "Gemm", kGemmVersions, gemm_attrs, 3, 1, &error);
  }
  if (!ideal) {
    matmul_ = NativeOp::create(api_, info, "MatMul", kMatMulVersions, {}, 2, 1, &error);
  }
  if (attrs_.conv && ideal) {
    status = api_.CopyKernelInfo(info, &info_copy_);
    if (status) {
      api_.ReleaseStatus(status);
      info_copy_ = nullptr;
    }
    // Pads that do not depend on the input size: create the op now, so that a failure is
    // known before the first run.
    if (info_copy_ && (attrs_.auto_pad == AutoPad::NotSet || attrs_.auto_pad == AutoPad::Valid)) {
      ConvPads pads = attrs_.auto_pad == AutoPad::Valid ? ConvPads(attrs_.pads.size(), 0) : attrs_.pads;
      std::lock_guard<std::mutex> lock(mutex_);
      if (!conv_op_for(pads)) error = conv_error_;
    }
    if (info_copy_ && attrs_.kernel_shape.size() == 2 && !nchwc_disabled()) {
      nchwc_.reset(new NchwcConv(api_, info_copy_, cpu_, attrs_));
    }
  }
  if (attrs_.pools()) {
    // Step 10 on the layer's NCHW outputs: onnxruntime's own MaxPool, what the digital model
    // would run after the layer (every attribute given: the standalone-op API fills in no
    // schema defaults). The NCHWc conv pools in its own layout instead (nchwc_conv.h).
    using K = NativeAttr::Kind;
    const size_t n = attrs_.max_pool.size();
    const std::vector<NativeAttr> pool_attrs = {{"kernel_shape", attrs_.max_pool, K::Ints, 0.0f},
                                                {"strides", attrs_.max_pool, K::Ints, 0.0f},
                                                {"pads", std::vector<int64_t>(2 * n, 0), K::Ints, 0.0f},
                                                {"dilations", std::vector<int64_t>(n, 1), K::Ints, 0.0f},
                                                {"ceil_mode", {0}, K::Int, 0.0f},
                                                {"storage_order", {0}, K::Int, 0.0f},
                                                {"auto_pad", {}, K::String, 0.0f, "NOTSET"}};
    std::string pool_error;
    max_pool_op_ = NativeOp::create(api_, info, "MaxPool", kMaxPoolVersions, pool_attrs, 1, 1, &pool_error);
  }
  if (native_required()) {
    const bool missing = attrs_.conv ? (ideal ? !info_copy_ || conv_failed_ : !matmul_) : (ideal ? !gemm_ : !matmul_);
    if (missing) throw OpError(where() + "MEMCC_OPS_ENGINE=native: onnxruntime kernel unavailable: " + error);
  }
}

// Called with mutex_ held.
const NativeOp* MemristiveMatMulKernel::conv_op_for(const ConvPads& pads) {
  auto it = conv_ops_.find(pads);
  if (it != conv_ops_.end()) return it->second.get();
  if (conv_failed_ || !info_copy_) return nullptr;
  using K = NativeAttr::Kind;
  const std::vector<NativeAttr> attrs = {
      {"kernel_shape", attrs_.kernel_shape, K::Ints, 0.0f}, {"strides", attrs_.strides, K::Ints, 0.0f},
      {"dilations", attrs_.dilations, K::Ints, 0.0f},       {"pads", pads, K::Ints, 0.0f},
      {"group", {attrs_.group}, K::Int, 0.0f},
  };
  std::string error;
  auto op = NativeOp::create(api_, info_copy_, "Conv", kConvVersions, attrs, 3, 1, &error);
  if (!op) {
    conv_failed_ = true;
    conv_error_ = error;
    return nullptr;
  }
  // A long-running session sees few distinct input sizes; bound the cache anyway.
  if (conv_ops_.size() >= 16) conv_ops_.erase(conv_ops_.begin());
  return conv_ops_.emplace(pads, std::move(op)).first->second.get();
}

std::string MemristiveMatMulKernel::where() const { return node_prefix(node_name_, ""); }

MemristiveMatMulKernel::Engine MemristiveMatMulKernel::engine_for(const LayerPlan& plan) const {
  const bool ideal = native_product(attrs_);
  if (ideal) {
    // Conv availability is per pads; run_native_ideal falls back itself when it has no op.
    if (attrs_.conv ? info_copy_ != nullptr && !conv_failed_ : gemm_ != nullptr) return Engine::NativeIdeal;
    return Engine::Blas;
  }
  if (!matmul_) return Engine::Blas;
  // Read noise is added per tile read inside the fused path (layer_compute); the batched path
  // has no such step.
  if (attrs_.read_noise()) return Engine::Blas;
  // Measured (ops/README.md, "Engines"): the three-phase batched path pays a pass over the
  // encoded inputs and the tile currents, three pool rounds per chunk and MLAS's per-call packing
  // of D; OpenBLAS's fused per-task path keeps all of that in cache. The batched path wins when
  // the fused one is inefficient: narrow groups (depthwise: tiny sgemm calls per task) and
  // matmul layers with many rows.
  if (attrs_.conv) return plan.group_cols <= kNarrowGroup ? Engine::NativeBatched : Engine::Blas;
  return plan.rows >= kMinBatchedRows ? Engine::NativeBatched : Engine::Blas;
}

std::shared_ptr<const MemristiveMatMulKernel::Packed> MemristiveMatMulKernel::packed_for(
    const float* g, const std::vector<int64_t>& g_shape, const LayerPlan& plan, Engine engine, double time,
    const NchwcPlan& nchwc) {
  const TileGeometry geometry = tile_geometry(attrs_, plan);
  const bool drifts = drift_enabled(attrs_);
  // Column panels of `matrix`: the ideal matmul engine's GEMM, the tile reads of the fused
  // matmul ADC path (D, packed once rather than by OpenBLAS per call), and the encoded matmul
  // path without an ADC when it has few rows.
  const bool wants_small =
      !attrs_.conv && (engine == Engine::NativeIdeal || (engine == Engine::Blas && attrs_.reads_tiles()) ||
                       (engine == Engine::Blas && plan.rows <= kSmallGemmMaxRows));
  // D (and with read noise the variance matrix) in column blocks for the conv ADC path's tile
  // reads, and the matrix for the encoded conv path without an ADC (per-patch DAC or f; one
  // column tile), where the AVX-512 kernel runs them (elsewhere OpenBLAS, which packs per call,
  // still beats plain C++).
  const int64_t tile_cols = attrs_.reads_tiles() && attrs_.tile_cols > 0 ? std::min(attrs_.tile_cols, plan.group_cols)
                                                                         : plan.group_cols;
  const bool wants_tiles = attrs_.conv && engine == Engine::Blas &&
                           (attrs_.reads_tiles() || attrs_.encodes_input()) && small_gemm_best_isa() == GemmIsa::Avx512;
  auto pack = [&] {
    auto p = std::make_shared<Packed>();
    p->set(g, g_shape, time);
    const int64_t S = g_shape[0], K = g_shape[1], N = g_shape[2];
    // Drift first: every matrix below is made of the conductances at `time`.
    std::vector<float> drifted;
    if (drifts) {
      drifted.resize(static_cast<size_t>(S * K * N));
      drift_conductances(attrs_, g, S, K, N, time, drifted.data());
      g = drifted.data();
    }
    if (attrs_.read_noise()) {
      p->variance.resize(static_cast<size_t>(K * N));
      noise_variance(g, S, K, N, variance_sigma(attrs_), p->variance.data());
      p->variance_packed = pack_variance(p->variance.data(), K, N);
    }
    p->matrix.resize(static_cast<size_t>(K * N));
    effective_matrix(g, S, K, N, attrs_.g_ref, matrix_scale(attrs_), p->matrix.data());
    if (engine == Engine::NativeIdeal && attrs_.conv) {
      p->weights.resize(p->matrix.size());
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t n = 0; n < N; ++n) p->weights[static_cast<size_t>(n * K + k)] = p->matrix[k * N + n];
      }
      if (nchwc.applies()) {
        const int64_t kernel_size = K / plan.patch.channels;
        p->nchwc = nchwc;
        // MLAS loads the filter 64 bytes at a time: one straddling cache lines (a vector's
        // storage is only 16-byte aligned) made the layer's conv ~15 % slower.
        p->nchwc_filter.resize(nchwc_filter_floats(nchwc, kernel_size) + kFilterAlign);
        const uintptr_t at = reinterpret_cast<uintptr_t>(p->nchwc_filter.data());
        p->nchwc_filter_at = static_cast<size_t>((kFilterAlign - at / sizeof(float) % kFilterAlign) % kFilterAlign);
        pack_nchwc_filter(nchwc, p->weights.data(), kernel_size, p->nchwc_filter.data() + p->nchwc_filter_at);
      }
      if (!p->variance.empty()) {
        p->variance_weights.resize(p->variance.size());
        for (int64_t k = 0; k < K; ++k) {
          for (int64_t n = 0; n < N; ++n) {
            p->variance_weights[static_cast<size_t>(n * K + k)] = p->variance[static_cast<size_t>(k * N + n)];
          }
        }
        if (nchwc.applies()) {
          p->nchwc_variance.resize(nchwc_filter_floats(nchwc, K / plan.patch.channels));
          pack_nchwc_filter(nchwc, p->variance_weights.data(), K / plan.patch.channels, p->nchwc_variance.data());
        }
        p->variance_conv = pack_variance_conv(p->variance.data(), K, N, plan.group, plan.patch.channels);
      }
    }
    if (wants_small) p->small = pack_small_gemm(p->matrix.data(), K, N);
    if (wants_tiles) {
      p->conv_tiles = pack_conv_tiles(p->matrix.data(), K, plan.group, plan.group_cols, tile_cols);
      if (!p->variance.empty()) {
        p->variance_tiles = pack_conv_tiles(p->variance.data(), K, plan.group, plan.group_cols, tile_cols);
        p->tile_variance = pack_tile_variance(p->variance.data(), K, plan.group, plan.group_cols, tile_cols);
      }
    }
    if (engine == Engine::NativeBatched) {
      // The batched engine reads currents: D itself, the step-8 factor comes after.
      std::vector<float> D(static_cast<size_t>(K * N));
      effective_matrix(g, S, K, N, attrs_.g_ref, 1.0f, D.data());
      p->geometry = geometry;
      p->batched.resize(batched_pack_floats(geometry, attrs_.conv));
      pack_batched(D.data(), geometry, attrs_.conv, p->batched.data());
    }
    return std::shared_ptr<const Packed>(std::move(p));
  };
  auto usable = [&](const Packed& p) {
    if (!p.made_from(g, g_shape, time, drifts)) return false;
    if (engine == Engine::NativeIdeal && attrs_.conv && p.weights.empty()) return false;
    if (wants_small && p.small.empty()) return false;
    if (wants_tiles && (p.conv_tiles.empty() || p.conv_tiles.groups != plan.group || p.conv_tiles.tc != tile_cols ||
                        (!p.variance.empty() && p.variance_tiles.empty()))) {
      return false;
    }
    if (engine == Engine::NativeIdeal && p.nchwc != nchwc) return false;
    if (engine == Engine::NativeIdeal && attrs_.conv && !p.variance.empty() &&
        (p.variance_weights.empty() || (p.nchwc.applies() && p.nchwc_variance.empty()))) {
      return false;
    }
    if (engine == Engine::NativeBatched) {
      // The geometry depends on G's shape only (and the group), which the source key covers,
      // unless the packing was made for another engine.
      const TileGeometry& a = p.geometry;
      if (p.batched.empty() || a.groups != geometry.groups || a.K != geometry.K || a.Ng != geometry.Ng ||
          a.tr != geometry.tr || a.T != geometry.T) {
        return false;
      }
    }
    return true;
  };
  return packed_.get(usable, pack);
}

bool MemristiveMatMulKernel::run_native_ideal(OrtKernelContext* context, const LayerPlan& plan,
                                              const Packed& packed, const OrtValue* x, const OrtValue* bias,
                                              float* y, const ReadNoise* noise, float* pooled_y, bool* pooled) {
  const int64_t K = plan.K, N = plan.N;
  const float* x_data = tensor_data(api_, x);
  const float* bias_data = plan.has_bias ? tensor_data(api_, bias) : nullptr;
  const bool noisy = noise && noise->variance && attrs_.read_noise();
  const bool encode = attrs_.encodes_input() && attrs_.input_range > 0.0f;
  const TensorView xv = tensor_view(api_, x);
  int64_t x_count = 1, y_count = 1;
  for (int64_t d : xv.shape) x_count *= d;
  for (int64_t d : plan.y_shape) y_count *= d;
  ContextScratch scratch(api_, context, cpu_,
                         static_cast<size_t>((encode ? x_count : 0) + (noisy ? x_count + y_count : 0)));
  float* next = scratch.data();
  if (encode) {
    // A fixed input range: every element encoded once (not once per conv patch it belongs to).
    encode_elementwise(attrs_, x_data, x_count, next, OrtTaskRunner(api_, context));
    x_data = next;
    next += x_count;
  }
  const NativeOp* conv = nullptr;
  if (attrs_.conv) {
    // Conv: X as it is, W = (weight_scale * D)^T as [N, C/group, k...], the pads resolved here.
    const std::vector<int64_t> spatial(xv.shape.begin() + 2, xv.shape.end());
    const ConvSpatial geo = conv_output_geometry(spatial, attrs_.kernel_shape, attrs_.strides, attrs_.pads,
                                                 attrs_.dilations, attrs_.auto_pad);
    ConvPads pads = geo.pad_begin;
    pads.insert(pads.end(), geo.pad_end.begin(), geo.pad_end.end());
    // The NCHWc kernels run the product of e(X) (they also apply the activation, so with read
    // noise, added before it, only without one) and then the variance product of e(X)^2.
    const bool use_nchwc = packed.nchwc.applies() && nchwc_usable(attrs_) && (!noisy || !packed.nchwc_variance.empty());
    const bool nchwc_expected = nchwc_usable(attrs_);
    if (use_nchwc && !noisy && pooled_y) {
      // The activation and the pooling on the NCHWc tensors (onnxruntime's NCHWc MaxPool, as the
      // digital model gets it): only the pooled outputs are reordered back.
      if (nchwc_->run(context, packed.nchwc, packed.nchwc_filter.data() + packed.nchwc_filter_at, x_data, xv.shape,
                      bias_data, pads, plan.y_shape, pooled_y, attrs_.max_pool, plan.out_shape)) {
        *pooled = true;
        return true;
      }
    }
    if (use_nchwc) {
      if (nchwc_->run(context, packed.nchwc, packed.nchwc_filter.data() + packed.nchwc_filter_at, x_data, xv.shape,
                      bias_data, pads, plan.y_shape, y)) {
        if (!noisy) return true;
        float* sq = next;
        float* var = sq + x_count;
        if (variance_conv(packed.variance_conv, plan, x_data, var, OrtTaskRunner(api_, context))) {
          add_noise_terms(attrs_, plan, *noise, var, y, OrtTaskRunner(api_, context));
          return false;
        }
        square_elements(x_data, x_count, sq);
        if (nchwc_->run(context, packed.nchwc, packed.nchwc_variance.data(), sq, xv.shape, nullptr, pads,
                        plan.y_shape, var)) {
          add_noise_terms(attrs_, plan, *noise, var, y, OrtTaskRunner(api_, context));
          return false;
        }
        // Not expected (the same kernel just ran): the product again, on the plain Conv below.
      }
    }
    if (nchwc_expected && nchwc_required()) {
      throw OpError("MEMCC_OPS_NCHWC=require: the NCHWc kernels do not run this conv" +
                    (nchwc_ && !nchwc_->error().empty() ? ": " + nchwc_->error()
                                                         : std::string(" (no NCHWc variant for these channels)")));
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      conv = conv_op_for(pads);
    }
    if (!conv) {
      if (native_required()) throw OpError("MEMCC_OPS_ENGINE=native: onnxruntime Conv unavailable: " + conv_error_);
      return run_layer(attrs_, plan, packed.matrix.data(), x_data, bias_data, y, OrtTaskRunner(api_, context), noise);
    }
  }
  // out = in * kn (+ bias): Gemm in matmul mode (kn is [K, N]), Conv in conv mode (nk, [N, K]).
  auto product = [&](const float* in, const float* kn, const float* nk, const float* b, float* out) {
    std::unique_ptr<TensorRef> c;
    if (b) c.reset(new TensorRef(api_, cpu_, b, {N}));
    TensorRef result(api_, cpu_, out, attrs_.conv ? plan.y_shape : std::vector<int64_t>{plan.rows, N});
    OrtValue* outs[] = {result.get()};
    if (!attrs_.conv) {
      TensorRef a(api_, cpu_, in, {plan.rows, K});
      TensorRef w(api_, cpu_, kn, {K, N});
      const OrtValue* ins[] = {a.get(), w.get(), c ? c->get() : nullptr};
      gemm_->invoke(context, ins, 3, outs, 1);  // an absent C as a null input
      return;
    }
    std::vector<int64_t> w_shape = {N, plan.patch.channels};
    w_shape.insert(w_shape.end(), attrs_.kernel_shape.begin(), attrs_.kernel_shape.end());
    TensorRef a(api_, cpu_, in, xv.shape);
    TensorRef w(api_, cpu_, nk, w_shape);
    const OrtValue* ins[] = {a.get(), w.get(), c ? c->get() : nullptr};
    conv->invoke(context, ins, 3, outs, 1);  // an absent B as a null input
  };
  if (!attrs_.conv && plan.rows <= kSmallGemmMaxRows && !packed.small.empty()) {
    // Few rows: our GEMM on W packed once (an invoked Gemm repacks it per call), with the bias
    // and, without read noise (added before the activation), the activation in its epilogue.
    small_gemm(packed.small, x_data, plan.rows, bias_data, noisy ? Activation::None : attrs_.activation, y,
               OrtTaskRunner(api_, context));
    if (!noisy) return true;
  } else {
    product(x_data, packed.matrix.data(), packed.weights.data(), bias_data, y);
  }
  if (!noisy) return false;
  if (!attrs_.conv) {
    // The variance products per block of rows (on variance_gemm where the CPU has AMX-BF16) and
    // the terms added while the block is in cache.
    add_noise_from_inputs(plan, *noise, x_data, y, OrtTaskRunner(api_, context));
    return false;
  }
  // Read noise: the variance of every output is the product of e(x)^2 with the variance matrix.
  float* sq = next;
  float* var = sq + x_count;
  // The variance conv on the tile unit (bfloat16 factors, within the spec's bound) where it
  // serves, else the float32 Conv of e(X)^2.
  if (!variance_conv(packed.variance_conv, plan, x_data, var, OrtTaskRunner(api_, context))) {
    square_elements(x_data, x_count, sq);
    product(sq, packed.variance.data(), packed.variance_weights.data(), nullptr, var);
  }
  add_noise_terms(attrs_, plan, *noise, var, y, OrtTaskRunner(api_, context));
  return false;
}

void MemristiveMatMulKernel::compute_or_throw(OrtKernelContext* context) {
  // This execution's index c (read noise), counted whatever happens below.
  const uint64_t execution = executions_.fetch_add(1, std::memory_order_relaxed);
  const CallInputs in = read_call_inputs(api_, context, attrs_);
  if (in.y_count == 0) return;
  const OrtValue* const* values = in.values;
  const double time = in.time;
  const TensorView& g = in.g;
  const LayerPlan& plan = in.plan;
  // With max_pool the layer's outputs go to scratch and are pooled into Y at the end. The
  // thread's own buffer, not the context's allocator: a fresh allocation of a whole layer's
  // outputs per call cost its page faults every time (about 0.6 ms on the bench's tiled CNN).
  int64_t y_count = 1;
  for (int64_t d : plan.y_shape) y_count *= d;
  const bool pools = attrs_.pools();
  float* y_data = pools ? thread_scratch(ScratchSlot::Unpooled, static_cast<size_t>(y_count)) : in.y;

  const float* g_data = tensor_data(api_, values[1]);
  const int64_t vectors = attrs_.conv ? plan.batch * plan.patch.positions() : plan.rows;
  // Empty products (no vectors, K = 0 or N = 0) are run_layer's: it fills Y with the bias.
  const Engine engine = vectors > 0 && plan.K > 0 && plan.N > 0 ? engine_for(plan) : Engine::Blas;
  NchwcPlan nchwc;
  if (engine == Engine::NativeIdeal && nchwc_usable(attrs_) && nchwc_) {
    nchwc = nchwc_->plan(context, plan.channels, plan.N);
  }
  const auto packed = packed_for(g_data, g.shape, plan, engine, time, nchwc);
  ReadNoise noise;
  noise.variance = packed->variance.empty() ? nullptr : packed->variance.data();
  noise.packed = packed->variance_packed.empty() ? nullptr : &packed->variance_packed;
  noise.conv_tiles = packed->variance_tiles.empty() ? nullptr : &packed->variance_tiles;
  noise.tile_variance = packed->tile_variance.empty() ? nullptr : &packed->tile_variance;
  noise.key = static_cast<uint64_t>(attrs_.noise_seed);
  noise.execution = execution;
  float* y = static_cast<float*>(y_data);
  const float* x_data = tensor_data(api_, values[0]);
  const float* bias_data = plan.has_bias ? tensor_data(api_, values[2]) : nullptr;
  const OrtTaskRunner runner(api_, context);
  bool activated = false, pooled = false;
  switch (engine) {
    case Engine::NativeIdeal:
      activated = run_native_ideal(context, plan, *packed, values[0], values[2], y, &noise, pools ? in.y : nullptr,
                                   &pooled);
      break;
    case Engine::NativeBatched: {
      const TileGeometry& geo = packed->geometry;
      ContextScratch scratch(api_, context, cpu_, batched_scratch_floats(attrs_, plan, geo));
      run_layer_batched(attrs_, plan, geo, packed->batched.data(), x_data, bias_data, y, runner,
                        NativeBatchedGemm(api_, context, cpu_, *matmul_), scratch.data());
      break;
    }
    case Engine::Blas:
      activated = run_layer(attrs_, plan, packed->matrix.data(), x_data, bias_data, y, runner, &noise,
                            packed->small.empty() ? nullptr : &packed->small,
                            packed->conv_tiles.empty() ? nullptr : &packed->conv_tiles);
      break;
  }
  if (pooled) return;
  if (!activated) apply_activation(attrs_.activation, y, y_count, runner);
  if (!pools) return;
  if (max_pool_op_) {
    TensorRef from(api_, cpu_, y, plan.y_shape);
    TensorRef to(api_, cpu_, in.y, plan.out_shape);
    const OrtValue* ins[] = {from.get()};
    OrtValue* outs[] = {to.get()};
    max_pool_op_->invoke(context, ins, 1, outs, 1);
    return;
  }
  max_pool(y, plan.y_shape, attrs_.max_pool, in.y, runner);
}

OrtStatus* MemristiveMatMulKernel::compute(OrtKernelContext* context) noexcept {
  return status_of(api_, where(), [&] { compute_or_throw(context); });
}

}  // namespace memcc
