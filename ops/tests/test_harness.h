// A minimal test harness, so the C++ tests need nothing beyond the compiler (no gtest in CI).
// TEST(name) registers a function; CHECK* macros throw on failure; main() runs the tests whose
// names start with argv[1] (all without an argument) and reports each failure.
#pragma once

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace memcc_test {

struct TestCase {
  const char* name;
  void (*fn)();
};

std::vector<TestCase>& registry();

struct Registrar {
  Registrar(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const char* file, int line, const std::string& what) {
  std::ostringstream out;
  out << file << ':' << line << ": " << what;
  throw Failure(out.str());
}

}  // namespace memcc_test

#define TEST(name)                                                       \
  static void test_##name();                                             \
  static ::memcc_test::Registrar registrar_##name(#name, &test_##name); \
  static void test_##name()

#define CHECK(cond)                                                       \
  do {                                                                    \
    if (!(cond)) ::memcc_test::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_EQ(a, b)                                                                      \
  do {                                                                                      \
    const auto va_ = (a);                                                                   \
    const auto vb_ = (b);                                                                   \
    if (!(va_ == vb_)) {                                                                    \
      std::ostringstream m_;                                                                \
      m_ << "CHECK_EQ(" #a ", " #b "): " << va_ << " != " << vb_;                           \
      ::memcc_test::fail(__FILE__, __LINE__, m_.str());                                     \
    }                                                                                       \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                               \
  do {                                                                                      \
    const double va_ = (a), vb_ = (b), vt_ = (tol);                                         \
    if (!(std::fabs(va_ - vb_) <= vt_)) {                                                   \
      std::ostringstream m_;                                                                \
      m_.precision(9);                                                                      \
      m_ << "CHECK_NEAR(" #a ", " #b "): " << va_ << " vs " << vb_ << " (tol " << vt_ << ")"; \
      ::memcc_test::fail(__FILE__, __LINE__, m_.str());                                     \
    }                                                                                       \
  } while (0)

// expr must throw memcc::OpError whose message contains `text`.
#define CHECK_THROWS(expr, text)                                                             \
  do {                                                                                       \
    bool thrown_ = false;                                                                    \
    try {                                                                                    \
      (void)(expr);                                                                          \
    } catch (const memcc::OpError& e_) {                                                     \
      thrown_ = true;                                                                        \
      if (std::string(e_.what()).find(text) == std::string::npos) {                          \
        ::memcc_test::fail(__FILE__, __LINE__,                                               \
                           std::string("message of " #expr " lacks \"") + (text) + "\": " + e_.what()); \
      }                                                                                      \
    }                                                                                        \
    if (!thrown_) ::memcc_test::fail(__FILE__, __LINE__, "no OpError from " #expr);          \
  } while (0)
