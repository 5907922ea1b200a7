// Pipe contents; see pipes.h.  Sources: pipe(7), tee(2), fcntl(2)
// F_GETPIPE_SZ/F_SETPIPE_SZ, proc(5) /proc/<pid>/fd.
#include "state/pipes.h"

#include <fcntl.h>
#include <sys/stat.h>
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

uint64_t FifoKey(const std::string& path) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a: stable across runs
  for (unsigned char c : path) h = (h ^ c) * 1099511628211ull;
  return h != 0 ? h : 1;
}

uint64_t PipeKey(const image::FileDescriptor& f) {
  if (f.kind == image::FileDescriptor::Kind::kPipe) return PipeInode(f.path);
  if (f.kind == image::FileDescriptor::Kind::kFifo) return FifoKey(f.path);
  return 0;
}

StatusOr<std::array<ScopedFd, 3>> CreatePipe(const PipeSpec& spec) {
  std::array<ScopedFd, 3> ends;
  ScopedFd writer;  // where the bytes go in
  if (spec.fifo_path.empty()) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return Status::Errno(spec.what + ": pipe2");
    ends[0].reset(p[0]);
    writer.reset(p[1]);
  } else {
    struct stat st;
    if (::stat(spec.fifo_path.c_str(), &st) != 0 && ::mkfifo(spec.fifo_path.c_str(), 0600) != 0)
      return Status::Errno(spec.what + ": mkfifo " + spec.fifo_path);
    // O_RDWR never waits for the other side (fifo(7)); it keeps the pipe
    // alive while the ends are opened.
    writer.reset(::open(spec.fifo_path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!writer) return Status::Errno(spec.what + ": open " + spec.fifo_path);
    if (::fstat(writer.get(), &st) != 0 || !S_ISFIFO(st.st_mode))
      return Status::Error(spec.what + ": " + spec.fifo_path + " is not a FIFO any more");
  }
  if (spec.bytes.size() > 65536 &&
      ::fcntl(writer.get(), F_SETPIPE_SZ, static_cast<int>(spec.bytes.size())) < static_cast<int>(spec.bytes.size()))
    return Status::Errno(spec.what + ": F_SETPIPE_SZ " + std::to_string(spec.bytes.size()));
  size_t off = 0;
  while (off < spec.bytes.size()) {
    ssize_t n = ::write(writer.get(), spec.bytes.data() + off, spec.bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Errno(spec.what + ": refilling " + std::to_string(spec.bytes.size()) + " bytes");
    off += static_cast<size_t>(n);
  }
  if (spec.fifo_path.empty()) {
    if (spec.want[1]) ends[1] = std::move(writer);
  } else {
    const int modes[3] = {O_RDONLY, O_WRONLY, O_RDWR};
    for (int e = 0; e < 3; ++e) {
      if (!spec.want[e]) continue;
      ends[e].reset(::open(spec.fifo_path.c_str(), modes[e] | O_NONBLOCK | O_CLOEXEC));
      if (!ends[e]) return Status::Errno(spec.what + ": open " + spec.fifo_path);
    }
  }
  for (int e = 0; e < 3; ++e) {
    if (!ends[e]) continue;
    int fl = ::fcntl(ends[e].get(), F_GETFL);
    fl = spec.nonblock[e] ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    if (::fcntl(ends[e].get(), F_SETFL, fl) != 0) return Status::Errno(spec.what + ": F_SETFL");
  }
  return ends;
}

StatusOr<std::vector<image::PipeContents>> CapturePipes(const ProcTarget& target,
                                                        const std::vector<image::FileDescriptor>& fds) {
  std::vector<image::PipeContents> out;
  std::set<uint64_t> done;
  for (const image::FileDescriptor& f : fds) {
    const uint64_t ino = PipeKey(f);
    if (ino == 0 || f.stdio_alias >= 0 || (f.flags & O_ACCMODE) == O_WRONLY) continue;
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
