#include <cstdio>
#include <cstring>
#include <exception>

#include "test_harness.h"

namespace memcc_test {
std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}
}  // namespace memcc_test

int main(int argc, char** argv) {
  const char* prefix = argc > 1 ? argv[1] : "";
  int run = 0, failed = 0;
  for (const auto& t : memcc_test::registry()) {
    if (std::strncmp(t.name, prefix, std::strlen(prefix)) != 0) continue;
    ++run;
    try {
      t.fn();
      std::printf("ok    %s\n", t.name);
    } catch (const std::exception& e) {
      ++failed;
      std::printf("FAIL  %s\n      %s\n", t.name, e.what());
    }
  }
  std::printf("%d test(s), %d failed\n", run, failed);
  if (run == 0) {
    std::printf("no test matches \"%s\"\n", prefix);
    return 1;
  }
  return failed ? 1 : 0;
}
