#include "nchwc_conv.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "errors.h"

namespace memcc {
namespace {

constexpr const char* kNchwcDomain = "com.microsoft.nchwc";
const std::vector<int> kNchwcVersions = {1};
using K = NativeAttr::Kind;
// Floats of NCHWc tensors per invocation (1 MiB): measured on the bench CNN, larger chunks leave
// the L2 cache and smaller ones pay the per-invocation cost (ops/README.md, "Engines").
constexpr int64_t kChunkFloats = int64_t{1} << 18;

}  // namespace

NchwcConv::NchwcConv(const OrtApi& api, const OrtKernelInfo* info, const OrtMemoryInfo* cpu,
                     const OpAttributes& attrs)
    : api_(api), info_(info), cpu_(cpu), attrs_(attrs) {}

std::string NchwcConv::error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

int64_t NchwcConv::find_block(OrtKernelContext* context) {
  if (block_ != 0) return block_;
  block_ = -1;
  std::string error;
  reorder_input_ = NativeOp::create(api_, info_, "ReorderInput", kNchwcVersions, {{"channels_last", {0}, K::Int, 0.0f}},
                                    1, 1, &error, kNchwcDomain);
  if (!reorder_input_) {
    error_ = error;
    return block_;
  }
  // ReorderInput pads the channels to a whole block with zeros: reorder 4 channels of one pixel
  // into a buffer far larger than any block and count what it wrote. (The standalone-op context
  // writes into a preallocated output without checking its shape against the kernel's.)
  constexpr int64_t kProbe = 1024;
  const float in[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  std::vector<float> out(kProbe, std::numeric_limits<float>::quiet_NaN());
  try {
    TensorRef x(api_, cpu_, in, {1, 4, 1, 1});
    TensorRef y(api_, cpu_, out.data(), {1, kProbe, 1, 1});
    const OrtValue* ins[] = {x.get()};
    OrtValue* outs[] = {y.get()};
    reorder_input_->invoke(context, ins, 1, outs, 1);
  } catch (const OpError& e) {
    error_ = e.what();
    reorder_input_.reset();
    return block_;
  }
  int64_t written = 0;
  while (written < kProbe && !std::isnan(out[static_cast<size_t>(written)])) ++written;
  bool ok = written >= 4 && written < kProbe && (written & (written - 1)) == 0;
  for (int64_t i = 0; ok && i < written; ++i) ok = out[static_cast<size_t>(i)] == (i < 4 ? in[i] : 0.0f);
  if (!ok) {
    error_ = "ReorderInput wrote an unexpected block (" + std::to_string(written) + " values)";
    reorder_input_.reset();
    return block_;
  }
  block_ = written;
  return block_;
}

NchwcPlan NchwcConv::plan(OrtKernelContext* context, int64_t channels, int64_t out_channels) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t block = find_block(context);
  if (block <= 0) return NchwcPlan();
  NchwcPlan p = nchwc_plan(block, channels, out_channels, attrs_.group, attrs_.kernel_shape.size());
  if (p.applies() && !reorder_output_for(out_channels)) return NchwcPlan();
  return p;
}

std::shared_ptr<const NativeOp> NchwcConv::reorder_output_for(int64_t channels) {
  auto it = reorder_outputs_.find(channels);
  if (it != reorder_outputs_.end()) return it->second;
  std::string error;
  auto op = NativeOp::create(api_, info_, "ReorderOutput", kNchwcVersions,
                             {{"channels", {channels}, K::Int, 0.0f}, {"channels_last", {0}, K::Int, 0.0f}}, 1, 1,
                             &error, kNchwcDomain);
  if (!op) {
    error_ = error;
    return nullptr;
  }
  if (reorder_outputs_.size() >= 16) reorder_outputs_.erase(reorder_outputs_.begin());
  return reorder_outputs_.emplace(channels, std::shared_ptr<const NativeOp>(std::move(op))).first->second;
}

std::shared_ptr<const NativeOp> NchwcConv::max_pool_for(const std::vector<int64_t>& window) {
  if (max_pool_ || max_pool_failed_) return max_pool_;
  std::string error;
  // Every attribute given: the standalone-op API does not fill in the schema's defaults.
  const std::vector<int64_t> ones(window.size(), 1), zeros(2 * window.size(), 0);
  auto op = NativeOp::create(api_, info_, "MaxPool", kNchwcVersions,
                             {{"kernel_shape", window, K::Ints, 0.0f},
                              {"strides", window, K::Ints, 0.0f},
                              {"dilations", ones, K::Ints, 0.0f},
                              {"pads", zeros, K::Ints, 0.0f},
                              {"ceil_mode", {0}, K::Int, 0.0f},
                              {"auto_pad", {}, K::String, 0.0f, "NOTSET"}},
                             1, 1, &error, kNchwcDomain);
  if (!op) {
    error_ = error;
    max_pool_failed_ = true;
    return nullptr;
  }
  max_pool_.reset(op.release());
  return max_pool_;
}

std::shared_ptr<const NativeOp> NchwcConv::conv_for(const std::vector<int64_t>& pads, int64_t group) {
  auto key = std::make_pair(pads, group);
  auto it = convs_.find(key);
  if (it != convs_.end()) return it->second;
  if (std::find(failed_convs_.begin(), failed_convs_.end(), key) != failed_convs_.end()) return nullptr;
  std::vector<NativeAttr> attrs = {
      {"kernel_shape", attrs_.kernel_shape, K::Ints, 0.0f}, {"strides", attrs_.strides, K::Ints, 0.0f},
      {"dilations", attrs_.dilations, K::Ints, 0.0f},       {"pads", pads, K::Ints, 0.0f},
      {"group", {group}, K::Int, 0.0f},
  };
  // MLAS applies the activation to each output block while it is in registers.
  if (attrs_.activation == Activation::Relu) attrs.push_back({"activation", {}, K::String, 0.0f, "Relu"});
  std::string error;
  auto op = NativeOp::create(api_, info_, "Conv", kNchwcVersions, attrs, 3, 1, &error, kNchwcDomain);
  if (!op) {
    error_ = error;
    if (failed_convs_.size() < 16) failed_convs_.push_back(key);
    return nullptr;
  }
  // A long-running session sees few distinct input sizes; bound the cache anyway.
  if (convs_.size() >= 16) convs_.erase(convs_.begin());
  return convs_.emplace(std::move(key), std::shared_ptr<const NativeOp>(std::move(op))).first->second;
}

bool NchwcConv::run(OrtKernelContext* context, const NchwcPlan& plan, const float* filter, const float* x,
                    const std::vector<int64_t>& x_shape, const float* bias, const std::vector<int64_t>& pads,
                    const std::vector<int64_t>& y_shape, float* y, const std::vector<int64_t>& max_pool,
                    const std::vector<int64_t>& pooled_shape) {
  const bool pools = !max_pool.empty();
  if (pools && (max_pool.size() != 2 || pooled_shape.size() != 4)) return false;
  std::shared_ptr<const NativeOp> conv, reorder_output, pool;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    conv = conv_for(pads, plan.group);
    reorder_output = reorder_output_for(plan.out_channels);
    if (pools) pool = max_pool_for(max_pool);
    if (!conv || !reorder_output || (plan.reorders_input() && !reorder_input_) || (pools && !pool)) return false;
  }
  const int64_t B = x_shape[0], C = x_shape[1];
  const int64_t H = x_shape[2], W = x_shape[3];
  const int64_t OH = y_shape[2], OW = y_shape[3];
  // What goes back to y: the conv's outputs, or their pooled windows.
  const int64_t RH = pools ? pooled_shape[2] : OH, RW = pools ? pooled_shape[3] : OW;
  const int64_t x_image = plan.reorders_input() ? plan.conv_channels * H * W : 0;
  const int64_t y_image = plan.conv_out_channels * OH * OW;
  const int64_t p_image = pools ? plan.conv_out_channels * RH * RW : 0;
  // A few images per invocation, so that a chunk's NCHWc tensors are still in the L2 cache when
  // the reorders read them back (whole-batch tensors make both reorders run from memory).
  const int64_t chunk = std::max<int64_t>(
      1, std::min<int64_t>(B, kChunkFloats / std::max<int64_t>(1, x_image + y_image + p_image)));
  const size_t bias_floats = bias ? static_cast<size_t>(plan.conv_out_channels) : 0;
  ContextScratch scratch(api_, context, cpu_,
                         static_cast<size_t>(chunk * (x_image + y_image + p_image)) + bias_floats);
  float* xs = scratch.data();
  float* ys = xs + chunk * x_image;
  float* ps = ys + chunk * y_image;
  float* bs = ps + chunk * p_image;

  std::unique_ptr<TensorRef> b;
  if (bias) {
    pad_nchwc_bias(plan, bias, bs);
    b.reset(new TensorRef(api_, cpu_, bs, {plan.conv_out_channels}));
  }
  std::vector<int64_t> w_shape = {plan.conv_out_channels, plan.filter_channels};
  w_shape.insert(w_shape.end(), attrs_.kernel_shape.begin(), attrs_.kernel_shape.end());
  TensorRef w(api_, cpu_, filter, w_shape);
  for (int64_t b0 = 0; b0 < B; b0 += chunk) {
    const int64_t nb = std::min(chunk, B - b0);
    TensorRef x_chunk(api_, cpu_, x + b0 * C * H * W, {nb, C, H, W});
    const OrtValue* conv_x = x_chunk.get();
    std::unique_ptr<TensorRef> x_nchwc;
    if (plan.reorders_input()) {
      x_nchwc.reset(new TensorRef(api_, cpu_, xs, {nb, plan.conv_channels, H, W}));
      const OrtValue* ins[] = {x_chunk.get()};
      OrtValue* outs[] = {x_nchwc->get()};
      reorder_input_->invoke(context, ins, 1, outs, 1);
      conv_x = x_nchwc->get();
    }
    TensorRef y_nchwc(api_, cpu_, ys, {nb, plan.conv_out_channels, OH, OW});
    {
      const OrtValue* ins[] = {conv_x, w.get(), b ? b->get() : nullptr};
      OrtValue* outs[] = {y_nchwc.get()};
      conv->invoke(context, ins, 3, outs, 1);
    }
    const OrtValue* back = y_nchwc.get();
    std::unique_ptr<TensorRef> p_nchwc;
    if (pools) {
      p_nchwc.reset(new TensorRef(api_, cpu_, ps, {nb, plan.conv_out_channels, RH, RW}));
      const OrtValue* ins[] = {y_nchwc.get()};
      OrtValue* outs[] = {p_nchwc->get()};
      pool->invoke(context, ins, 1, outs, 1);
      back = p_nchwc->get();
    }
    TensorRef out(api_, cpu_, y + b0 * y_shape[1] * RH * RW, {nb, y_shape[1], RH, RW});
    const OrtValue* ins[] = {back};
    OrtValue* outs[] = {out.get()};
    reorder_output->invoke(context, ins, 1, outs, 1);
  }
  return true;
}

}  // namespace memcc
