#include "yak/base/progress.h"

#include <unistd.h>

#include <cstdio>

namespace yak {

ProgressBar::ProgressBar(std::string label, int64_t total, int64_t start)
    : label_(std::move(label)),
      total_(total),
      start_(start),
      tty_(isatty(STDERR_FILENO)),
      t0_(std::chrono::steady_clock::now()) {}

std::string ProgressBar::format_duration(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  const auto t = static_cast<long long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", t / 60, t % 60);
  return buf;
}

void ProgressBar::draw(int64_t done, const std::string& fields, bool final) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  const int64_t run = done - start_;
  const double eta = run > 0 ? elapsed / run * static_cast<double>(total_ - done) : -1;
  constexpr int width = 24;
  const int fill = total_ > 0 ? static_cast<int>(width * done / total_) : width;
  std::string bar(static_cast<size_t>(fill), '=');
  if (fill < width) bar += '>' + std::string(static_cast<size_t>(width - fill - 1), ' ');
  std::fprintf(stderr, "%s%s %lld/%lld [%s] %s | %s elapsed, ETA %s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), bar.c_str(), fields.c_str(),
               format_duration(elapsed).c_str(), final ? "00:00" : format_duration(eta).c_str(),
               tty_ && !final ? "" : "\n");
  std::fflush(stderr);
}

void ProgressBar::update(int64_t done, const std::string& fields) {
  const auto now = std::chrono::steady_clock::now();
  if (!tty_ && printed_ && done != total_ && std::chrono::duration<double>(now - last_line_).count() < line_seconds_)
    return;
  printed_ = true;
  last_line_ = now;
  draw(done, fields, false);
}

void ProgressBar::finish(const std::string& fields) {
  draw(total_, fields, true);
}

}  // namespace yak
