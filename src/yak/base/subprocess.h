// Runs a shell command with text on stdin and collects its stdout, with a time limit. Used by
// plug-ins that talk JSON over pipes (reward commands, ask function plug-ins).
#pragma once
#include <string>

namespace yak {

// Runs `/bin/sh -c command`, writes `input` to its stdin and returns everything it printed on
// stdout. Throws yak::Error naming `who` when it cannot start, runs past `timeout_seconds` (it is
// killed) or exits with a non-zero status. A non-empty `cwd` is the command's working directory.
std::string run_command(const std::string& command, const std::string& input, double timeout_seconds,
                        const std::string& who, const std::string& cwd = "");

}  // namespace yak
