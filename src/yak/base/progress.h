// A console progress bar for long work: redrawn in place on a terminal; otherwise (logs, CI) one
// line every few seconds and at the end, never one per step. Shows done/total, a bar,
// caller-supplied fields and the ETA.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace yak {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, int64_t start = 0);
  // Moves to `done` and shows `fields` (e.g. "loss 2.31 lr 1.0e-04"). On a non-terminal a line
  // is printed when `line_seconds` passed since the last one (and for the last step).
  void update(int64_t done, const std::string& fields = "");
  void finish(const std::string& fields = "");
  void set_line_seconds(double s) { line_seconds_ = s; }
  static std::string format_duration(double seconds);

 private:
  void draw(int64_t done, const std::string& fields, bool final);
  std::string label_;
  int64_t total_, start_;
  double line_seconds_ = 5.0;
  bool tty_, printed_ = false;
  std::chrono::steady_clock::time_point t0_, last_line_;
};

}  // namespace yak
