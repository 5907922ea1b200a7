// Shared memory objects; see shmem.h.  Sources: proc(5) (maps), shm_open(3),
// memfd_create(2), shm_overview(7).
#include "state/shmem.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace stasis::state {
namespace {

bool StartsWith(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const std::string kDeleted = " (deleted)";

}  // namespace

uint64_t ShmemId(const std::string& name, bool shared, uint64_t dev, uint64_t inode) {
  if (!shared || name == "[vdso]" || StartsWith(name, "[vvar") || name == "[stack]" || name == "[heap]") return 0;
  const bool anon = name.empty() || name[0] == '[' || StartsWith(name, "/dev/zero") ||
                    StartsWith(name, "/SYSV") || StartsWith(name, "/memfd:");
  if (!anon && !StartsWith(name, "/dev/shm/") && !EndsWith(name, kDeleted)) return 0;
  uint64_t id = (dev << 40) ^ inode;
  return id != 0 ? id : 1;
}

std::string ShmemPath(const image::MemoryArea& a) {
  if (a.kind != image::MemoryArea::Kind::kFileShared || !StartsWith(a.name, "/dev/shm/") ||
      EndsWith(a.name, kDeleted))
    return "";
  return a.name;
}

StatusOr<ScopedFd> CreateShmemObject(const std::string& name, const std::string& path, uint64_t size) {
  const std::string what = "shared memory " + (name.empty() ? std::string("(anonymous)") : name);
  ScopedFd fd;
  if (path.empty()) {
    std::string label = "stasis:" + (name.empty() ? std::string("shared") : name);
    if (EndsWith(label, kDeleted)) label.resize(label.size() - kDeleted.size());
    if (label.size() > 240) label.resize(240);  // memfd names are at most 249 bytes
    fd.reset(::memfd_create(label.c_str(), MFD_CLOEXEC));
    if (!fd) return Status::Errno(what + ": memfd_create");
  } else {
    fd.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return Status::Errno(what + ": open " + path);
    if (::ftruncate(fd.get(), 0) != 0) return Status::Errno(what + ": emptying " + path);
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
    return Status::Errno(what + ": sizing to " + std::to_string(size) + " bytes");
  return fd;
}

}  // namespace stasis::state
