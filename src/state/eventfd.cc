// eventfd descriptors; contracts in eventfd.h.  Sources: eventfd(2),
// proc(5), kernel fs/eventfd.c (fdinfo format).
#include "state/eventfd.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "state/anon_inode.h"

namespace stasis::state {

StatusOr<image::EventfdState> ParseEventfdFdinfo(const std::string& fdinfo) {
  image::EventfdState s;
  std::string v;
  if (!FdinfoValue(fdinfo, "eventfd-count", &v)) return Status::Error("fdinfo: no eventfd-count: line");
  char* end = nullptr;
  errno = 0;
  s.count = std::strtoull(v.c_str(), &end, 16);
  if (v.empty() || *end != '\0' || errno != 0 || v[0] == '-')
    return Status::Error("fdinfo: bad eventfd-count: \"" + v + "\"");
  if (s.count == UINT64_MAX) return Status::Error("fdinfo: eventfd-count out of range");
  if (FdinfoValue(fdinfo, "eventfd-semaphore", &v)) {
    if (v != "0" && v != "1") return Status::Error("fdinfo: bad eventfd-semaphore: \"" + v + "\"");
    s.semaphore = v == "1";
  }
  return s;
}

StatusOr<ScopedFd> RestoreEventfd(const image::FileDescriptor& f) {
  int flags = EFD_CLOEXEC;
  if (f.flags & O_NONBLOCK) flags |= EFD_NONBLOCK;
  if (f.eventfd.semaphore) flags |= EFD_SEMAPHORE;
  ScopedFd fd(::eventfd(0, flags));
  if (!fd) return Status::Errno("eventfd");
  if (f.eventfd.count != 0) {
    const uint64_t v = f.eventfd.count;
    ssize_t n;
    do n = ::write(fd.get(), &v, sizeof v); while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof v))
      return Status::Errno("eventfd: writing the counter " + std::to_string(v));
  }
  return fd;
}

}  // namespace stasis::state
