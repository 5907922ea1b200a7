// ProcTarget: /proc paths and memory reads of a process being checkpointed.
//
// Memory is read with pread(2) on /proc/<pid>/mem (proc(5)), which needs
// PTRACE_MODE_ATTACH_FSCREDS access to the target; the supervisor is an
// ancestor of every job process in the same user namespace, so it has it.
// Unlike process_vm_readv(2), /proc/<pid>/mem also reads PROT_NONE pages.
#include "state/proc_target.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace stasis::state {

std::string ProcTarget::ProcPath(const std::string& rel) const {
  return "/proc/" + std::to_string(pid) + "/" + rel;
}

Status ProcTarget::ReadMemory(uint64_t addr, void* buf, size_t len) const {
  auto describe = [&](uint64_t at) {
    char text[96];
    std::snprintf(text, sizeof text, "pid %d: reading %zu bytes at 0x%llx", static_cast<int>(pid),
                  len, static_cast<unsigned long long>(at));
    return std::string(text);
  };
  if (!mem.valid()) return Status::Error(describe(addr) + ": /proc/<pid>/mem is not open");
  auto* out = static_cast<uint8_t*>(buf);
  size_t done = 0;
  while (done < len) {
    // User addresses on x86_64 are below 2^47, so they fit an off_t.
    ssize_t n = ::pread(mem.get(), out + done, len - done, static_cast<off_t>(addr + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      // proc(5): reading an unmapped address of /proc/<pid>/mem gives EIO.
      if (errno == EIO) return Status::Error(describe(addr + done) + ": address not mapped");
      return Status::Errno(describe(addr + done));
    }
    if (n == 0) return Status::Error(describe(addr + done) + ": unexpected end (address not mapped)");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

StatusOr<ProcTarget> ProcTarget::Open(pid_t pid) {
  ProcTarget t;
  t.pid = pid;
  std::string path = t.ProcPath("mem");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Errno("pid " + std::to_string(pid) + ": open " + path);
  t.mem.reset(fd);
  return t;
}

StatusOr<std::string> ReadProcFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Errno(path);
  ScopedFd owner(fd);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Errno(path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

StatusOr<std::string> ReadLink(const std::string& path) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) return Status::Errno("readlink " + path);
    // A result that fills the buffer may be truncated: retry larger.
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

}  // namespace stasis::state
