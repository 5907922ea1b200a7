// signalfd descriptors; contracts in signalfd.h.  Sources: signalfd(2),
// proc(5), kernel fs/signalfd.c (fdinfo format).
#include "state/signalfd.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "state/anon_inode.h"

namespace stasis::state {

StatusOr<image::SignalfdState> ParseSignalfdFdinfo(const std::string& fdinfo) {
  std::string v;
  if (!FdinfoValue(fdinfo, "sigmask", &v)) return Status::Error("fdinfo: no sigmask: line");
  // Leading zeros pad to the kernel's _NSIG (64 on x86_64); more
  // significant digits than 16 must be zero.
  size_t first = v.find_first_not_of('0');
  const std::string digits = first == std::string::npos ? "0" : v.substr(first);
  char* end = nullptr;
  errno = 0;
  const uint64_t mask = std::strtoull(digits.c_str(), &end, 16);
  if (v.empty() || *end != '\0' || errno != 0 || digits.size() > 16 || digits[0] == '-' ||
      digits[0] == '+')
    return Status::Error("fdinfo: bad sigmask: \"" + v + "\"");
  return image::SignalfdState{mask};
}

StatusOr<ScopedFd> RestoreSignalfd(const image::FileDescriptor& f) {
  // The kernel's sigset is the first 64 bits of glibc's sigset_t (bit
  // signo-1); copied directly because sigaddset(3) refuses glibc's internal
  // signals 32 and 33, which a raw-syscall user may still have asked for.
  sigset_t set;
  sigemptyset(&set);
  static_assert(sizeof set >= sizeof f.signalfd.sigmask);
  std::memcpy(&set, &f.signalfd.sigmask, sizeof f.signalfd.sigmask);
  int flags = SFD_CLOEXEC;
  if (f.flags & O_NONBLOCK) flags |= SFD_NONBLOCK;
  ScopedFd fd(::signalfd(-1, &set, flags));
  if (!fd) return Status::Errno("signalfd");
  return fd;
}

}  // namespace stasis::state
