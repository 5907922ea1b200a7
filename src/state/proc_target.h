// A process being checkpointed, seen from the supervisor: its pid (in the
// job's pid namespace, which is also the supervisor's) and an open
// /proc/<pid>/mem for reading its memory, including PROT_NONE pages.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/scoped_fd.h"
#include "common/status.h"

namespace stasis::state {

struct ProcTarget {
  pid_t pid = 0;
  ScopedFd mem;  // O_RDONLY /proc/<pid>/mem

  // "/proc/<pid>/<rel>"
  std::string ProcPath(const std::string& rel) const;
  // Reads exactly `len` bytes at `addr` of the target.  Error names pid and address.
  Status ReadMemory(uint64_t addr, void* buf, size_t len) const;
  // Opens /proc/<pid>/mem.  Error names the pid (ESRCH/ENOENT: gone; EACCES:
  // no ptrace access, see proc(5)).
  static StatusOr<ProcTarget> Open(pid_t pid);
};

// Whole contents of a file whose st_size is meaningless (/proc, /sys): reads
// until EOF.  Error: "<path>: <strerror>".
StatusOr<std::string> ReadProcFile(const std::string& path);

// readlink(2) of any length (proc(5) magic links: fd/N, exe, cwd).
StatusOr<std::string> ReadLink(const std::string& path);

}  // namespace stasis::state
