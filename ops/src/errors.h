// The one exception type of the op library. Everything below the onnxruntime boundary reports a
// violated constraint by throwing it; the kernel turns it into an OrtStatus, so a bad model is an
// onnxruntime error with a readable message and never a crash.
#pragma once

#include <stdexcept>
#include <string>

namespace memcc {

class OpError : public std::runtime_error {
 public:
  explicit OpError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace memcc
