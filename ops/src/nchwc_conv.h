// Ideal 2-D convolutions through onnxruntime's NCHWc kernels (com.microsoft.nchwc ReorderInput,
// Conv, ReorderOutput; MLAS's blocked-channel convolutions, which a plain digital model gets from
// onnxruntime's NCHWc graph transformer), invoked from inside the op: X is reordered to NCHWc
// (unless the variant reads NCHW), convolved with a filter packed once in the NCHWc layout
// (nchwc_layout.h) and the result reordered back to NCHW into Y.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <onnxruntime_c_api.h>

#include "nchwc_layout.h"
#include "op_attributes.h"
#include "ort_native.h"

namespace memcc {

class NchwcConv {
 public:
  // `info` must outlive the object (the kernel's copy of its kernel info).
  NchwcConv(const OrtApi& api, const OrtKernelInfo* info, const OrtMemoryInfo* cpu, const OpAttributes& attrs);
  NchwcConv(const NchwcConv&) = delete;
  NchwcConv& operator=(const NchwcConv&) = delete;

  // The layout for a layer with C input and N output channels. On the first call finds MLAS's
  // block size (by reordering a 4-channel tensor and counting the channels written); a plan
  // that does not apply when onnxruntime has no NCHWc kernels (e.g. no AVX2) or the shapes do not
  // fit. Never throws.
  NchwcPlan plan(OrtKernelContext* context, int64_t channels, int64_t out_channels);

  // Y = activation(conv(X) + bias) with `filter` packed by pack_nchwc_filter for `plan` (the
  // node's activation attribute runs inside the conv kernel). `pads` are resolved
  // ([begin..., end...]). False, with nothing written, when onnxruntime refuses a kernel for
  // these pads (the caller runs the plain Conv); throws OpError when an invoked kernel fails.
  // X (x_shape) runs in chunks of a few images. With max_pool (non-overlapping windows, step 10)
  // the conv's NCHWc outputs go through onnxruntime's NCHWc MaxPool and y gets the pooled
  // outputs, shape pooled_shape.
  bool run(OrtKernelContext* context, const NchwcPlan& plan, const float* filter, const float* x,
           const std::vector<int64_t>& x_shape, const float* bias, const std::vector<int64_t>& pads,
           const std::vector<int64_t>& y_shape, float* y, const std::vector<int64_t>& max_pool = {},
           const std::vector<int64_t>& pooled_shape = {});

  // The last error of a kernel creation (for MEMCC_OPS_ENGINE=native messages); empty if none.
  std::string error() const;

 private:
  // Shared, so that a call keeps its ops even if the (bounded) caches drop them meanwhile.
  std::shared_ptr<const NativeOp> conv_for(const std::vector<int64_t>& pads, int64_t group);  // mutex_ held
  std::shared_ptr<const NativeOp> reorder_output_for(int64_t channels);                      // mutex_ held
  std::shared_ptr<const NativeOp> max_pool_for(const std::vector<int64_t>& window);           // mutex_ held
  int64_t find_block(OrtKernelContext* context);                             // mutex_ held

  const OrtApi& api_;
  const OrtKernelInfo* info_;
  const OrtMemoryInfo* cpu_;
  const OpAttributes& attrs_;
  mutable std::mutex mutex_;
  int64_t block_ = 0;  // 0: not yet known; < 0: NCHWc unavailable
  std::unique_ptr<NativeOp> reorder_input_;
  std::map<int64_t, std::shared_ptr<const NativeOp>> reorder_outputs_;
  std::shared_ptr<const NativeOp> max_pool_;  // the node has one window
  bool max_pool_failed_ = false;
  std::map<std::pair<std::vector<int64_t>, int64_t>, std::shared_ptr<const NativeOp>> convs_;
  std::vector<std::pair<std::vector<int64_t>, int64_t>> failed_convs_;
  std::string error_;
};

}  // namespace memcc
