// A console progress bar for long work: redrawn in place on a terminal, one line per update
// otherwise (logs, CI). Shows done/total, a bar, caller-supplied fields and the ETA.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace yak {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, int64_t start = 0);
  // Moves to `done` and shows `fields` (e.g. "loss 2.31 lr 1.0e-04"). On a non-terminal only
  // every `line_every`-th update prints.
  void update(int64_t done, const std::string& fields = "");
  void finish(const std::string& fields = "");
  void set_line_every(int64_t n) { line_every_ = n < 1 ? 1 : n; }
  static std::string format_duration(double seconds);

 private:
  void draw(int64_t done, const std::string& fields, bool final);
  std::string label_;
  int64_t total_, start_, line_every_ = 1, updates_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace yak
