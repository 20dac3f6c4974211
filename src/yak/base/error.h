// yak::Error is the one exception type for bad input and failed operations.
// Messages name the file, the field and what was expected; the CLI maps it to exit code 2.
#pragma once
#include <stdexcept>
#include <string>

namespace yak {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Throws yak::Error when cond is false. Use for user-facing checks, not invariants.
inline void check(bool cond, const std::string& message) {
  if (!cond) throw Error(message);
}

}  // namespace yak
