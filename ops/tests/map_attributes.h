// An AttributeSource over a map, standing in for onnxruntime's kernel info in the tests.
#pragma once

#include <map>
#include <string>
#include <variant>

#include "op_attributes.h"

namespace memcc_test {

using AttrValue = std::variant<float, int64_t, std::vector<int64_t>, std::string>;

class MapAttributes : public memcc::AttributeSource {
 public:
  MapAttributes& set(const std::string& name, AttrValue v) {
    values_[name] = std::move(v);
    return *this;
  }
  bool present(const char* name) const override { return values_.count(name) > 0; }
  std::optional<float> get_float(const char* name) const override { return get<float>(name); }
  std::optional<int64_t> get_int(const char* name) const override { return get<int64_t>(name); }
  std::optional<std::vector<int64_t>> get_ints(const char* name) const override {
    return get<std::vector<int64_t>>(name);
  }
  std::optional<std::string> get_string(const char* name) const override { return get<std::string>(name); }

 private:
  template <typename T>
  std::optional<T> get(const char* name) const {
    auto it = values_.find(name);
    if (it == values_.end() || !std::holds_alternative<T>(it->second)) return std::nullopt;
    return std::get<T>(it->second);
  }
  std::map<std::string, AttrValue> values_;
};

}  // namespace memcc_test
