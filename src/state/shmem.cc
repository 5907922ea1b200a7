// Shared memory objects; see shmem.h.  Sources: proc(5) (maps), shm_open(3),
// memfd_create(2), shm_overview(7).
#include "state/shmem.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

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

Status CaptureShmemFds(const ProcTarget& target, std::vector<image::FileDescriptor>* fds, ShmemPages* done) {
  constexpr uint64_t kPage = 4096;
  for (image::FileDescriptor& f : *fds) {
    // Only objects that cannot be reopened by path; a /dev/shm file that
    // still exists is an ordinary file (reopened, or --save-files).
    if (f.kind != image::FileDescriptor::Kind::kRegular || f.stdio_alias >= 0) continue;
    if (!StartsWith(f.path, "/memfd:") && !(StartsWith(f.path, "/dev/shm/") && EndsWith(f.path, kDeleted))) continue;
    const std::string who = "pid " + std::to_string(target.pid) + ": fd " + std::to_string(f.fd) + " (" + f.path + ")";
    ScopedFd fd(::open(target.ProcPath("fd/" + std::to_string(f.fd)).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return Status::Errno(who + ": reopening through /proc");
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return Status::Errno(who + ": fstat");
    f.shmem_id = ShmemId(f.path, true, st.st_dev, st.st_ino);
    f.shmem_size = static_cast<uint64_t>(st.st_size);
    if (f.shmem_id == 0) continue;
    std::vector<bool>* seen = nullptr;
    const uint64_t npages = (f.shmem_size + kPage - 1) / kPage;
    if (done != nullptr) {
      seen = &(*done)[f.shmem_id];
      if (seen->size() < npages) seen->resize(npages, false);
    }
    std::vector<uint8_t> page(kPage);
    off_t at = 0;
    while (static_cast<uint64_t>(at) < f.shmem_size) {
      off_t data = ::lseek(fd.get(), at, SEEK_DATA);
      if (data < 0) break;  // ENXIO: no data after `at`
      off_t hole = ::lseek(fd.get(), data, SEEK_HOLE);
      if (hole < 0) hole = static_cast<off_t>(f.shmem_size);
      for (uint64_t pg = static_cast<uint64_t>(data) / kPage; pg * kPage < static_cast<uint64_t>(hole); ++pg) {
        if (seen && (*seen)[pg]) continue;
        ssize_t n = ::pread(fd.get(), page.data(), kPage, static_cast<off_t>(pg * kPage));
        if (n < 0) return Status::Errno(who + ": read");
        if (n < static_cast<ssize_t>(kPage)) std::fill(page.begin() + (n > 0 ? n : 0), page.end(), 0);
        if (seen) (*seen)[pg] = true;
        if (std::all_of(page.begin(), page.end(), [](uint8_t b) { return b == 0; })) continue;
        if (f.shmem_data.empty() || f.shmem_data.back().offset + f.shmem_data.back().bytes.size() != pg * kPage)
          f.shmem_data.push_back({pg * kPage, {}});
        f.shmem_data.back().bytes.insert(f.shmem_data.back().bytes.end(), page.begin(), page.end());
      }
      at = hole;
    }
  }
  return Status::Ok();
}

Status FillShmemObject(int fd, const std::vector<image::ShmemRun>& runs, const std::string& what) {
  for (const image::ShmemRun& r : runs) {
    size_t off = 0;
    while (off < r.bytes.size()) {
      ssize_t n = ::pwrite(fd, r.bytes.data() + off, r.bytes.size() - off, static_cast<off_t>(r.offset + off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status::Errno(what + ": writing " + std::to_string(r.bytes.size()) + " saved bytes");
      off += static_cast<size_t>(n);
    }
  }
  return Status::Ok();
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
