// Per-thread scratch memory. Tasks run on onnxruntime's pool threads; each thread keeps a few
// buffers that only grow, so after the first call no task allocates.
#pragma once

#include <cstddef>

namespace memcc {

// Squares and NoiseReads serve the read-noise path (f(v)^2 of a block and its tile variances);
// Unpooled holds a layer's outputs before max pooling (the thread that runs the node's compute).
enum class ScratchSlot { Inputs = 0, Accumulator = 1, Reads = 2, Vectors = 3, Squares = 4, NoiseReads = 5, Unpooled = 6 };
constexpr int kScratchSlots = 7;

// A buffer of at least `count` floats, private to the calling thread, valid until the next
// request for the same slot on this thread. Contents are unspecified.
float* thread_scratch(ScratchSlot slot, size_t count);

}  // namespace memcc
