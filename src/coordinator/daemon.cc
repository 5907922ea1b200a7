#include "coordinator/daemon.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/scoped_fd.h"

namespace stasis::coordinator {

StatusOr<Daemonizer> Daemonizer::Start(const std::string& log_file) {
  // Open the log before forking so that a bad path is reported directly.
  ScopedFd out(::open(log_file.empty() ? "/dev/null" : log_file.c_str(),
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!out) return Status::Errno("--log " + log_file);
  ScopedFd in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!in) return Status::Errno("/dev/null");
  int pfd[2];
  if (::pipe2(pfd, O_CLOEXEC) != 0) return Status::Errno("pipe");
  ScopedFd rd(pfd[0]), wr(pfd[1]);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return Status::Errno("fork");
  if (pid > 0) {
    wr.reset();
    std::string msg;
    char buf[512];
    for (;;) {
      ssize_t n = ::read(rd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      msg.append(buf, static_cast<size_t>(n));
    }
    if (msg == "ok") ::_exit(0);
    if (msg.empty()) msg = "stasis coordinator: the daemon exited before it was ready";
    std::fprintf(stderr, "%s\n", msg.c_str());
    ::_exit(1);
  }
  rd.reset();
  ::setsid();
  // Do not keep the caller's working directory (a mount) busy; every path
  // the coordinator uses is absolute by now.
  if (::chdir("/") != 0) {
  }
  ::dup2(in.get(), 0);
  ::dup2(out.get(), 1);
  ::dup2(out.get(), 2);
  return Daemonizer(wr.release());
}

void Daemonizer::Ready() {
  if (fd_ < 0) return;
  ssize_t r = ::write(fd_, "ok", 2);
  (void)r;
  ::close(fd_);
  fd_ = -1;
}

void Daemonizer::Failed(const std::string& message) {
  if (fd_ < 0) return;
  ssize_t r = ::write(fd_, message.data(), message.size());
  (void)r;
  ::close(fd_);
  fd_ = -1;
}

}  // namespace stasis::coordinator
