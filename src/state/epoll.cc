// epoll instances; contracts and the restore policy in epoll.h.  Sources:
// epoll(7), epoll_ctl(2), proc(5), kcmp(2) (KCMP_EPOLL_TFD), kernel
// fs/eventpoll.c (fdinfo format, ADD adds EPOLLERR|EPOLLHUP).
#include "state/epoll.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>

#include "state/anon_inode.h"

namespace stasis::state {

StatusOr<std::vector<image::EpollTarget>> ParseEpollFdinfo(const std::string& fdinfo) {
  std::vector<image::EpollTarget> out;
  size_t at = 0;
  while (at < fdinfo.size()) {
    size_t eol = fdinfo.find('\n', at);
    if (eol == std::string::npos) eol = fdinfo.size();
    const std::string line = fdinfo.substr(at, eol - at);
    at = eol + 1;
    if (line.rfind("tfd:", 0) != 0) continue;
    int fd = -1;
    unsigned int events = 0;
    unsigned long long data = 0;
    int used = 0;
    if (std::sscanf(line.c_str(), "tfd: %d events: %x data: %llx%n", &fd, &events, &data, &used) != 3 ||
        fd < 0 || line.find('-') < static_cast<size_t>(used))
      return Status::Error("fdinfo: bad epoll target line \"" + line + "\"");
    out.push_back(image::EpollTarget{fd, events, data, true});
  }
  return out;
}

StatusOr<image::EpollState> CaptureEpoll(const ProcTarget& target, int epfd, const std::string& fdinfo) {
  image::EpollState s;
  ASSIGN_OR_RETURN(s.targets, ParseEpollFdinfo(fdinfo));
  // KCMP_EPOLL_TFD's toff: which of the registrations with this number
  // (fdinfo and the kernel's lookup walk the same tree in the same order).
  std::map<int, uint32_t> seen;
  for (image::EpollTarget& t : s.targets) {
    struct kcmp_epoll_slot slot;
    slot.efd = static_cast<uint32_t>(epfd);
    slot.tfd = static_cast<uint32_t>(t.fd);
    slot.toff = seen[t.fd]++;
    long r = ::syscall(SYS_kcmp, target.pid, target.pid, KCMP_EPOLL_TFD, t.fd, &slot);
    if (r == 0) continue;
    if (r < 0 && (errno == ENOSYS || errno == EPERM)) continue;  // cannot tell: assume it is
    t.restorable = false;
    std::fprintf(stderr,
                 "stasis: warning: pid %d fd %d (epoll): the target registered as fd %d is %s; "
                 "it will not be watched after a restart\n",
                 static_cast<int>(target.pid), epfd, t.fd,
                 r < 0 && errno == EBADF ? "no longer open under that number (closed, kept open by a dup)"
                                         : "no longer the file open under that number");
  }
  return s;
}

StatusOr<ScopedFd> RestoreEpoll(const image::FileDescriptor& f) {
  ScopedFd fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!fd) return Status::Errno("epoll_create1");
  // epoll_create1 has no non-blocking flag; a program may have set one.
  if ((f.flags & O_NONBLOCK) && ::fcntl(fd.get(), F_SETFL, O_NONBLOCK) != 0) return Status::Errno("fcntl O_NONBLOCK");
  return fd;
}

void RestoreEpollTargets(const image::ProcessImage& img) {
  int warn_fd = -1;
  for (const image::FileDescriptor& f : img.fds)
    if (f.fd == 2 && f.stdio_alias == 2) warn_fd = 2;
  for (const image::FileDescriptor& f : img.fds) {
    if (f.kind != image::FileDescriptor::Kind::kEpoll || f.same_file_as >= 0) continue;
    if (f.fd == img.agent.socket_fd) continue;
    for (const image::EpollTarget& t : f.epoll.targets) {
      const std::string who = "fd " + std::to_string(f.fd) + " (epoll): target fd " + std::to_string(t.fd);
      if (!t.restorable) {
        AnonWarn(warn_fd, who + " was not the watched file at checkpoint; not watched");
        continue;
      }
      struct epoll_event ev;
      std::memset(&ev, 0, sizeof ev);
      ev.events = t.events;
      ev.data.u64 = t.data;
      if (::epoll_ctl(f.fd, EPOLL_CTL_ADD, t.fd, &ev) != 0)
        AnonWarn(warn_fd, who + ": EPOLL_CTL_ADD: " + std::strerror(errno) + "; not watched");
    }
  }
}

}  // namespace stasis::state
