// Minimal leveled logging to stderr. The only global state besides the thread pool.
#pragma once
#include <string>

namespace yak::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3, Off = 4 };

void set_level(Level level);
Level level();
void write(Level level, const std::string& message);
inline void debug(const std::string& m) {
  write(Level::Debug, m);
}
inline void info(const std::string& m) {
  write(Level::Info, m);
}
inline void warn(const std::string& m) {
  write(Level::Warn, m);
}

}  // namespace yak::log
