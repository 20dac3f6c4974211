#include "yak/base/log.h"

#include <atomic>
#include <cstdio>

namespace yak::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::Warn)};
}

void set_level(Level l) {
  g_level = static_cast<int>(l);
}
Level level() {
  return static_cast<Level>(g_level.load());
}

void write(Level l, const std::string& message) {
  if (static_cast<int>(l) < g_level) return;
  static const char* names[] = {"debug", "info", "warning", "error"};
  std::fprintf(stderr, "yak: %s: %s\n", names[static_cast<int>(l)], message.c_str());
}

}  // namespace yak::log
