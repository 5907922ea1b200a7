// Pipe contents; see pipes.h.  Sources: pipe(7), tee(2), fcntl(2)
// F_GETPIPE_SZ/F_SETPIPE_SZ, proc(5) /proc/<pid>/fd.
#include "state/pipes.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <set>

#include "common/scoped_fd.h"

namespace stasis::state {

uint64_t PipeInode(const std::string& path) {
  const std::string prefix = "pipe:[";
  if (path.compare(0, prefix.size(), prefix) != 0 || path.back() != ']') return 0;
  char* end = nullptr;
  unsigned long long ino = std::strtoull(path.c_str() + prefix.size(), &end, 10);
  if (end == nullptr || *end != ']') return 0;
  return ino;
}

StatusOr<std::vector<image::PipeContents>> CapturePipes(const ProcTarget& target,
                                                        const std::vector<image::FileDescriptor>& fds) {
  std::vector<image::PipeContents> out;
  std::set<uint64_t> done;
  for (const image::FileDescriptor& f : fds) {
    const uint64_t ino = PipeInode(f.path);
    if (f.kind != image::FileDescriptor::Kind::kPipe || ino == 0 || (f.flags & O_ACCMODE) != O_RDONLY) continue;
    if (!done.insert(ino).second) continue;
    const std::string where = "fd " + std::to_string(f.fd) + " (" + f.path + ")";
    ScopedFd src(::open(target.ProcPath("fd/" + std::to_string(f.fd)).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!src) return Status::Errno(where + ": reopening the pipe through /proc");
    int size = ::fcntl(src.get(), F_GETPIPE_SZ);
    if (size < 0) return Status::Errno(where + ": F_GETPIPE_SZ");
    int p[2];
    if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return Status::Errno(where + ": scratch pipe");
    ScopedFd rd(p[0]), wr(p[1]);
    if (::fcntl(wr.get(), F_SETPIPE_SZ, size) < size) return Status::Errno(where + ": F_SETPIPE_SZ " + std::to_string(size));
    image::PipeContents pc;
    pc.inode = ino;
    ssize_t n = ::tee(src.get(), wr.get(), static_cast<size_t>(size), SPLICE_F_NONBLOCK);
    if (n < 0 && errno != EAGAIN) return Status::Errno(where + ": tee");
    wr.reset();
    uint8_t buf[65536];
    for (;;) {
      ssize_t r = ::read(rd.get(), buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) break;
      if (r < 0) return Status::Errno(where + ": reading the copy");
      if (r == 0) break;
      pc.bytes.insert(pc.bytes.end(), buf, buf + r);
    }
    out.push_back(std::move(pc));
  }
  return out;
}

}  // namespace stasis::state
