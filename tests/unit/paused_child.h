// A forked child for tests that inspect a live process from outside: it runs
// `setup`, reports readiness through a pipe and then sleeps until the
// PausedChild is destroyed (SIGKILL + waitpid).  The child dies with the
// test process (PR_SET_PDEATHSIG).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>

namespace stasis::testing {

class PausedChild {
 public:
  explicit PausedChild(const std::function<void()>& setup) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(p[0]);
      setup();
      if (write(p[1], "x", 1) != 1) _exit(1);
      close(p[1]);
      for (;;) pause();
    }
    close(p[1]);
    char c;
    ready_ = read(p[0], &c, 1) == 1;
    close(p[0]);
  }
  PausedChild(const PausedChild&) = delete;
  PausedChild& operator=(const PausedChild&) = delete;
  ~PausedChild() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }
  bool ready() const { return ready_; }

 private:
  pid_t pid_ = -1;
  bool ready_ = false;
};

}  // namespace stasis::testing
