#include "yak/base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "yak/base/error.h"

namespace yak {

std::string run_command(const std::string& command, const std::string& input, double timeout_seconds,
                        const std::string& who, const std::string& cwd) {
  int in[2], out[2];
  check(pipe(in) == 0, who + ": cannot create pipes");
  if (pipe(out) != 0) {
    close(in[0]), close(in[1]);
    throw Error(who + ": cannot create pipes");
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    throw Error(who + ": cannot fork");
  }
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  signal(SIGPIPE, SIG_IGN);
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  size_t sent = 0;
  std::string got;
  bool in_open = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  for (;;) {
    if (in_open && sent == input.size()) close(in[1]), in_open = false;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {in_open ? in[1] : -1, POLLOUT, 0}};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0 || poll(fds, 2, static_cast<int>(left)) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      close(out[0]);
      if (in_open) close(in[1]);
      throw Error(who + ": no answer within " + std::to_string(timeout_seconds) + " s (killed)");
    }
    if (in_open && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = write(in[1], input.data() + sent, input.size() - sent);
      if (n > 0)
        sent += static_cast<size_t>(n);
      else if (n < 0 && errno != EAGAIN)
        close(in[1]), in_open = false;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[65536];
      const ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
  }
  close(out[0]);
  if (in_open) close(in[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
        who + ": exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1));
  return got;
}

}  // namespace yak
