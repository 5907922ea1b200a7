// Anon-inode descriptors: classification, dispatch to the kind modules,
// dup and sharing detection.  Contracts in anon_inode.h; sources: proc(5)
// (fd, fdinfo), kcmp(2), pidfd_open(2), pidfd_getfd(2).
#include "state/anon_inode.h"

#include <dirent.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "state/epoll.h"
#include "state/eventfd.h"
#include "state/signalfd.h"
#include "state/timerfd.h"

namespace stasis::state {
namespace {

using Kind = image::FileDescriptor::Kind;

// Numeric entries of a /proc directory (pids or fds); empty if unreadable.
std::vector<int> NumericEntries(const std::string& dir) {
  std::vector<int> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long n = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && n >= 0) out.push_back(static_cast<int>(n));
  }
  ::closedir(d);
  return out;
}

long KcmpFile(pid_t a, pid_t b, int fa, int fb) {
  return ::syscall(SYS_kcmp, a, b, KCMP_FILE, fa, fb);
}

}  // namespace

Kind ClassifyAnonInode(const std::string& link) {
  if (link == "anon_inode:[eventfd]") return Kind::kEventfd;
  if (link == "anon_inode:[timerfd]") return Kind::kTimerfd;
  if (link == "anon_inode:[signalfd]") return Kind::kSignalfd;
  if (link == "anon_inode:[eventpoll]") return Kind::kEpoll;
  return Kind::kOther;
}

bool IsAnonKind(Kind kind) {
  return kind == Kind::kEventfd || kind == Kind::kTimerfd || kind == Kind::kSignalfd ||
         kind == Kind::kEpoll;
}

std::string AnonFdName(const image::FileDescriptor& f) {
  return "fd " + std::to_string(f.fd) + " (" + f.path + ")";
}

void AnonWarn(int warn_fd, const std::string& msg) {
  if (warn_fd < 0) return;
  const std::string line = "stasis restart: warning: " + msg + "\n";
  (void)!::write(warn_fd, line.data(), line.size());
}

bool FdinfoValue(const std::string& fdinfo, const std::string& key, std::string* value) {
  size_t at = 0;
  while (at < fdinfo.size()) {
    size_t eol = fdinfo.find('\n', at);
    if (eol == std::string::npos) eol = fdinfo.size();
    if (eol - at > key.size() && fdinfo.compare(at, key.size(), key) == 0 && fdinfo[at + key.size()] == ':') {
      size_t b = at + key.size() + 1, e = eol;
      while (b < e && (fdinfo[b] == ' ' || fdinfo[b] == '\t')) ++b;
      while (e > b && (fdinfo[e - 1] == ' ' || fdinfo[e - 1] == '\t')) --e;
      *value = fdinfo.substr(b, e - b);
      return true;
    }
    at = eol + 1;
  }
  return false;
}

StatusOr<ScopedFd> DupTargetFd(pid_t pid, int fd) {
  ScopedFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return Status::Errno("pidfd_open(" + std::to_string(pid) + ")");
  ScopedFd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
  if (!dup) return Status::Errno("pidfd_getfd(pid " + std::to_string(pid) + ", fd " + std::to_string(fd) + ")");
  return dup;
}

Status CaptureAnonFd(const ProcTarget& target, const std::string& fdinfo, image::FileDescriptor* f) {
  switch (f->kind) {
    case Kind::kEventfd: {
      ASSIGN_OR_RETURN(f->eventfd, ParseEventfdFdinfo(fdinfo));
      return Status::Ok();
    }
    case Kind::kTimerfd: {
      ASSIGN_OR_RETURN(f->timerfd, CaptureTimerfd(target, f->fd, fdinfo));
      return Status::Ok();
    }
    case Kind::kSignalfd: {
      ASSIGN_OR_RETURN(f->signalfd, ParseSignalfdFdinfo(fdinfo));
      return Status::Ok();
    }
    case Kind::kEpoll: {
      ASSIGN_OR_RETURN(f->epoll, CaptureEpoll(target, f->fd, fdinfo));
      return Status::Ok();
    }
    default:
      return Status::Ok();
  }
}

void RelateAnonFds(const ProcTarget& target, std::vector<image::FileDescriptor>* fds) {
  std::vector<image::FileDescriptor*> anon;
  for (image::FileDescriptor& f : *fds)
    if (IsAnonKind(f.kind)) anon.push_back(&f);
  if (anon.empty()) return;
  // Dups within the process: the lowest number sharing the open file.
  for (size_t i = 0; i < anon.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (anon[j]->kind != anon[i]->kind || anon[j]->same_file_as >= 0) continue;
      if (KcmpFile(target.pid, target.pid, anon[i]->fd, anon[j]->fd) == 0) {
        anon[i]->same_file_as = anon[j]->fd;
        break;
      }
    }
  }
  // Other processes of the namespace holding the same open file.
  const pid_t self = ::getpid();
  for (int other : NumericEntries("/proc")) {
    if (other == self || other == target.pid) continue;
    const std::string fd_dir = "/proc/" + std::to_string(other) + "/fd";
    for (int ofd : NumericEntries(fd_dir)) {
      auto link = ReadLink(fd_dir + "/" + std::to_string(ofd));
      if (!link.ok()) continue;
      const Kind kind = ClassifyAnonInode(*link);
      if (!IsAnonKind(kind)) continue;
      for (image::FileDescriptor* f : anon) {
        if (f->kind != kind || f->same_file_as >= 0) continue;
        if (KcmpFile(target.pid, other, f->fd, ofd) != 0) continue;
        if (kind != Kind::kEpoll) {  // one object for all holders (restore/objects.h)
          const bool first = f->shared_pid == 0;
          if (first) {
            f->shared_pid = target.pid;
            f->shared_fd = f->fd;
          }
          if (other < f->shared_pid || (other == f->shared_pid && ofd < f->shared_fd)) {
            f->shared_pid = other;
            f->shared_fd = ofd;
          }
          continue;
        }
        if (target.pid < other) {
          std::fprintf(stderr,
                       "stasis: warning: pid %d %s is shared with pid %d fd %d; each process gets "
                       "its own copy at restart, so they no longer share it\n",
                       static_cast<int>(target.pid), AnonFdName(*f).c_str(), other, ofd);
        }
      }
    }
  }
  // Dups carry their object's sharing: they are installed from it too.
  for (image::FileDescriptor* f : anon) {
    if (f->same_file_as < 0) continue;
    for (image::FileDescriptor* g : anon) {
      if (g->fd == f->same_file_as) {
        f->shared_pid = g->shared_pid;
        f->shared_fd = g->shared_fd;
      }
    }
  }
}

StatusOr<ScopedFd> RestoreAnonFd(const image::FileDescriptor& f, int warn_fd) {
  StatusOr<ScopedFd> r = Status::Error("not an anon-inode kind");
  switch (f.kind) {
    case Kind::kEventfd: r = RestoreEventfd(f); break;
    case Kind::kTimerfd: r = RestoreTimerfd(f, warn_fd); break;
    case Kind::kSignalfd: r = RestoreSignalfd(f); break;
    case Kind::kEpoll: r = RestoreEpoll(f); break;
    default: break;
  }
  if (!r.ok()) return r.status().With(AnonFdName(f));
  return r;
}

}  // namespace stasis::state
