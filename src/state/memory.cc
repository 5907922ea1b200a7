// Memory areas, capture side (the restore side lives in src/restore/, which
// builds slots from these areas): /proc/<pid>/maps, /proc/<pid>/pagemap and
// /proc/<pid>/mem, see proc(5) and Documentation/admin-guide/mm/pagemap.rst.
#include "state/memory.h"

#include <emmintrin.h>  // SSE2: part of the x86_64 baseline
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>

#include "common/scoped_fd.h"
#include "state/shmem.h"

namespace stasis::state {
namespace {

using image::MemoryArea;
using Kind = image::MemoryArea::Kind;

constexpr uint64_t kPage = image::kPageSize;
// pagemap entry bits (pagemap.rst).
constexpr uint64_t kPmPresent = 1ull << 63;
constexpr uint64_t kPmSwapped = 1ull << 62;
constexpr uint64_t kPmFileOrShared = 1ull << 61;
// One pagemap read covers 64 Ki pages (256 MiB of address space, 512 KiB).
constexpr uint64_t kPmChunk = 64 * 1024;
// Memory is read in pieces of up to 8 MiB: large enough to amortise the
// per-call cost of /proc/<pid>/mem, small enough to stay cache friendly.
constexpr uint64_t kBufPages = 2048;
// Zero gaps shorter than this between stored pages are stored (see DumpPages).
constexpr uint64_t kZeroGapPages = 8;

std::string Hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

bool StartsWith(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Errno(path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Errno(path);
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// pread that retries short reads; `what` names the source in errors.
Status PreadFull(int fd, void* buf, size_t len, uint64_t off, const std::string& what) {
  auto* p = static_cast<uint8_t*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, p + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Errno(what + " at " + Hex(off + done));
    }
    if (n == 0) return Status::Error(what + " at " + Hex(off + done) + ": unexpected end");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Reads target memory.  Readable areas go through process_vm_readv(2),
// which copies straight from the target's pages (about twice as fast as
// /proc/<pid>/mem, which bounces every page through a kernel buffer);
// PROT_NONE/write-only areas, or a failure, fall back to /proc/<pid>/mem,
// which reads any page (FOLL_FORCE).
Status ReadTarget(const ProcTarget& t, bool readable, void* buf, size_t len, uint64_t addr,
                  const std::string& what) {
  if (readable) {
    size_t done = 0;
    while (done < len) {
      struct iovec local = {static_cast<uint8_t*>(buf) + done, len - done};
      struct iovec remote = {reinterpret_cast<void*>(addr + done), len - done};
      ssize_t n = ::process_vm_readv(t.pid, &local, 1, &remote, 1, 0);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    if (done == len) return Status::Ok();
    buf = static_cast<uint8_t*>(buf) + done;
    addr += done;
    len -= done;
  }
  return PreadFull(t.mem.get(), buf, len, addr, what);
}

Kind Classify(const std::string& name, bool shared) {
  if (name == "[heap]") return Kind::kAnonPrivate;
  if (name == "[stack]") return Kind::kStack;
  if (name == "[vdso]") return Kind::kVdso;
  if (StartsWith(name, "[vvar")) return Kind::kVvar;
  if (StartsWith(name, "[anon_shmem:")) return Kind::kAnonShared;
  // "", "[anon:<name>]" (PR_SET_VMA_ANON_NAME) and other bracketed names.
  if (name.empty() || name[0] == '[') return shared ? Kind::kAnonShared : Kind::kAnonPrivate;
  // Shared anonymous memory is shmem named after /dev/zero; SysV segments
  // and memfds cannot be reopened by path either: their pages are stored
  // and the object recreated once for all processes (shmem.h).
  if (StartsWith(name, "/dev/zero") || StartsWith(name, "/SYSV") || StartsWith(name, "/memfd:"))
    return shared ? Kind::kAnonShared : Kind::kAnonPrivate;
  return shared ? Kind::kFileShared : Kind::kFilePrivate;
}

bool IsDeletedName(const std::string& name) {
  static const std::string kDeleted = " (deleted)";
  return name.size() >= kDeleted.size() && name.compare(name.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0;
}

bool IsFileKind(Kind k) { return k == Kind::kFilePrivate || k == Kind::kFileShared; }

bool IsAnonKind(Kind k) {
  return k == Kind::kAnonPrivate || k == Kind::kStack || k == Kind::kAnonShared;
}

}  // namespace

const char* AreaKindName(Kind kind) {
  switch (kind) {
    case Kind::kAnonPrivate: return "anon-private";
    case Kind::kAnonShared: return "anon-shared";
    case Kind::kFilePrivate: return "file-private";
    case Kind::kFileShared: return "file-shared";
    case Kind::kStack: return "stack";
    case Kind::kVdso: return "vdso";
    case Kind::kVvar: return "vvar";
  }
  return "?";
}

bool IsZeroPage(const void* page) {
  const auto* w = static_cast<const uint64_t*>(page);
  // Most non-zero pages differ in their first or last word: cheap early out.
  if (w[0] != 0 || w[kPage / 8 - 1] != 0) return false;
  const auto* v = static_cast<const __m128i*>(page);
  const __m128i zero = _mm_setzero_si128();
  for (size_t i = 0; i < kPage / 16; i += 8) {
    __m128i a = _mm_or_si128(_mm_or_si128(_mm_loadu_si128(v + i), _mm_loadu_si128(v + i + 1)),
                             _mm_or_si128(_mm_loadu_si128(v + i + 2), _mm_loadu_si128(v + i + 3)));
    __m128i b = _mm_or_si128(_mm_or_si128(_mm_loadu_si128(v + i + 4), _mm_loadu_si128(v + i + 5)),
                             _mm_or_si128(_mm_loadu_si128(v + i + 6), _mm_loadu_si128(v + i + 7)));
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_or_si128(a, b), zero)) != 0xffff) return false;
  }
  return true;
}

StatusOr<std::vector<MemoryArea>> ParseMaps(const std::string& text) {
  std::vector<MemoryArea> out;
  size_t pos = 0;
  int lineno = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    if (line.empty()) continue;
    unsigned long long start, end, off, inode;
    char perms[8] = {};
    unsigned dmaj, dmin;
    int consumed = 0;
    // "start-end perms offset major:minor inode   name" (proc(5)).
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu%n", &start, &end, perms, &off,
                    &dmaj, &dmin, &inode, &consumed) != 7 ||
        std::strlen(perms) != 4 || start >= end || start % kPage || end % kPage) {
      return Status::Error("maps line " + std::to_string(lineno) + ": cannot parse \"" + line +
                           "\"");
    }
    size_t n = static_cast<size_t>(consumed);
    while (n < line.size() && line[n] == ' ') ++n;
    std::string name = line.substr(n);
    if (name == "[vsyscall]") continue;
    MemoryArea a;
    a.start = start;
    a.end = end;
    a.prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
             (perms[2] == 'x' ? PROT_EXEC : 0);
    a.kind = Classify(name, perms[3] == 's');
    a.shmem_id = ShmemId(name, perms[3] == 's', makedev(dmaj, dmin), inode);
    a.name = std::move(name);
    a.file_offset = IsFileKind(a.kind) || a.shmem_id != 0 ? off : 0;
    out.push_back(std::move(a));
  }
  return out;
}

StatusOr<std::vector<MemoryArea>> CaptureAreas(
    const ProcTarget& target, const std::vector<std::pair<uint64_t, uint64_t>>& exclude) {
  std::string maps_path = target.ProcPath("maps");
  ASSIGN_OR_RETURN(std::string text, ReadWholeFile(maps_path));
  auto parsed = ParseMaps(text);
  if (!parsed.ok()) return parsed.status().With(maps_path);
  std::vector<MemoryArea> areas;
  std::map<std::string, std::pair<uint64_t, int64_t>> identity;  // name -> size, mtime
  for (auto& a : *parsed) {
    bool excluded = false;
    if (a.shmem_id != 0 && a.kind == Kind::kFileShared && !IsDeletedName(a.name)) {
      // A /dev/shm object: its size at checkpoint is what restart recreates.
      struct stat st;
      if (::stat(a.name.c_str(), &st) == 0) a.file_size = static_cast<uint64_t>(st.st_size);
    }
    for (auto& [s, len] : exclude) {
      if (a.start < s + len && s < a.end) excluded = true;
    }
    if (excluded) continue;
    if (IsFileKind(a.kind) && a.shmem_id == 0) {
      auto it = identity.find(a.name);
      if (it == identity.end()) {
        // map_files/ names the very file mapped, even if renamed or deleted;
        // the path is the fallback when map_files is not accessible.
        char rel[64];
        std::snprintf(rel, sizeof rel, "map_files/%" PRIx64 "-%" PRIx64, a.start, a.end);
        struct stat st;
        if (::stat(target.ProcPath(rel).c_str(), &st) != 0 && ::stat(a.name.c_str(), &st) != 0) {
          std::memset(&st, 0, sizeof st);  // CheckAreaFiles will report the file
        }
        int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        it = identity.emplace(a.name, std::make_pair(static_cast<uint64_t>(st.st_size), mtime)).first;
      }
      a.file_size = it->second.first;
      a.file_mtime_ns = it->second.second;
    }
    areas.push_back(std::move(a));
  }
  return areas;
}

StatusOr<uint64_t> DumpPages(const ProcTarget& target, std::vector<MemoryArea>& areas,
                             image::ImageWriter& writer, ShmemPages* shmem_done) {
  if (!target.mem.valid()) return Status::Error("pid " + std::to_string(target.pid) + ": mem not open");
  std::string pm_path = target.ProcPath("pagemap");
  ScopedFd pm(::open(pm_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!pm) return Status::Errno("open " + pm_path);
  std::string mem_what = "pid " + std::to_string(target.pid) + ": reading memory";

  // Page-aligned reusable buffer; mmap so it does not fragment the heap.
  void* raw = ::mmap(nullptr, kBufPages * kPage, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return Status::Errno("mmap page buffer");
  struct Unmap {
    void* p;
    ~Unmap() { ::munmap(p, kBufPages * kPage); }
  } unmap{raw};
  auto* buf = static_cast<uint8_t*>(raw);
  std::vector<uint64_t> pmbuf(kPmChunk);

  uint64_t total = 0;
  for (size_t idx = 0; idx < areas.size(); ++idx) {
    MemoryArea& a = areas[idx];
    a.stored_pages = 0;
    const bool shmem = a.shmem_id != 0;
    bool anon = IsAnonKind(a.kind) || shmem;
    if (!anon && a.kind != Kind::kFilePrivate) continue;
    const uint64_t npages = a.size() / kPage;
    // Shared objects: pages [first_obj, first_obj + npages) of the object;
    // those stored by an earlier process of this checkpoint are skipped.
    std::vector<bool>* done = nullptr;
    const uint64_t first_obj = a.file_offset / kPage;
    if (shmem && shmem_done != nullptr) {
      done = &(*shmem_done)[a.shmem_id];
      if (done->size() < first_obj + npages) done->resize(first_obj + npages, false);
    }
    auto fail_ctx = [&](const Status& s) {
      return s.With("area " + Hex(a.start) + "-" + Hex(a.end) + " " + a.name);
    };

    // Reads pages [first, first+n) of the area and emits the ones to store.
    auto emit_run = [&](uint64_t first, uint64_t n) -> Status {
      while (n > 0) {
        uint64_t m = n < kBufPages ? n : kBufPages;
        RETURN_IF_ERROR(ReadTarget(target, (a.prot & PROT_READ) != 0, buf, m * kPage, a.start + first * kPage, mem_what));
        if (!anon) {
          RETURN_IF_ERROR(writer.AddPages(static_cast<uint32_t>(idx), first, buf, static_cast<uint32_t>(m)));
          a.stored_pages += m;
        } else {
          // Emit runs of non-zero pages.  A short zero gap (< kZeroGapPages)
          // between stored pages is kept inside the run: blocks stay large
          // for the writer's compression threads (zstd shrinks a zero page
          // to a few bytes), while long zero stretches are still skipped.
          uint64_t i = 0;
          while (i < m) {
            while (i < m && IsZeroPage(buf + i * kPage)) ++i;
            if (i == m) break;
            uint64_t j = i + 1, last_nonzero = i;
            while (j < m && j - last_nonzero <= kZeroGapPages) {
              if (!IsZeroPage(buf + j * kPage)) last_nonzero = j;
              ++j;
            }
            uint64_t end = last_nonzero + 1;
            RETURN_IF_ERROR(writer.AddPages(static_cast<uint32_t>(idx), first + i, buf + i * kPage,
                                            static_cast<uint32_t>(end - i)));
            a.stored_pages += end - i;
            i = end;
          }
        }
        first += m;
        n -= m;
      }
      return Status::Ok();
    };

    if (shmem) {
      // Every page of the object, present here or not (see shmem.h).
      uint64_t i = 0;
      while (i < npages) {
        while (i < npages && done && (*done)[first_obj + i]) ++i;
        uint64_t j = i;
        while (j < npages && !(done && (*done)[first_obj + j])) ++j;
        if (j > i) {
          Status s = emit_run(i, j - i);
          if (!s.ok()) return fail_ctx(s);
          if (done)
            for (uint64_t k = i; k < j; ++k) (*done)[first_obj + k] = true;
        }
        i = j;
      }
      total += a.stored_pages;
      continue;
    }
    for (uint64_t c = 0; c < npages; c += kPmChunk) {
      uint64_t cnt = npages - c < kPmChunk ? npages - c : kPmChunk;
      Status st = PreadFull(pm.get(), pmbuf.data(), cnt * 8, (a.start / kPage + c) * 8, pm_path);
      if (!st.ok()) return fail_ctx(st);
      uint64_t i = 0;
      while (i < cnt) {
        auto wanted = [&](uint64_t e) {
          if (!(e & (kPmPresent | kPmSwapped))) return false;
          // Private file mapping: bit 61 set = still the file's page.
          return anon || !(e & kPmFileOrShared);
        };
        while (i < cnt && !wanted(pmbuf[i])) ++i;
        uint64_t j = i;
        while (j < cnt && wanted(pmbuf[j])) ++j;
        if (j > i) {
          Status s = emit_run(c + i, j - i);
          if (!s.ok()) return fail_ctx(s);
        }
        i = j;
      }
    }
    total += a.stored_pages;
  }
  return total;
}

Status CheckAreaFiles(const image::ProcessImage& img) {
  std::map<std::string, bool> checked;
  for (const MemoryArea& a : img.areas) {
    if (!IsFileKind(a.kind) || a.shmem_id != 0 || checked.count(a.name)) continue;
    checked[a.name] = true;
    const std::string where = "mapped file " + a.name + " (area " + Hex(a.start) + "-" + Hex(a.end) + ")";
    const char kDeleted[] = " (deleted)";
    if (a.name.size() > sizeof kDeleted - 1 &&
        a.name.compare(a.name.size() - (sizeof kDeleted - 1), std::string::npos, kDeleted) == 0) {
      return Status::Error(where + ": the file had been deleted before the checkpoint; it cannot be mapped again");
    }
    struct stat st;
    if (::stat(a.name.c_str(), &st) != 0) return Status::Errno(where + ": stat");
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode) && !S_ISCHR(st.st_mode)) {
      return Status::Error(where + ": not a regular file any more");
    }
    if (!S_ISREG(st.st_mode)) continue;  // devices: size/mtime are meaningless
    int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    auto sz = static_cast<uint64_t>(st.st_size);
    if (a.kind == Kind::kFileShared) {
      // A MAP_SHARED file is the area's data: the program itself changes its
      // mtime (and may grow it) after the checkpoint, so only require that
      // it still covers every shared area of it.
      for (const MemoryArea& b : img.areas) {
        if (b.name == a.name && b.kind == Kind::kFileShared && b.file_offset != 0 && sz <= b.file_offset) {
          return Status::Error(where + ": file is now " + std::to_string(sz) +
                               " bytes, shorter than the mapped offset " + std::to_string(b.file_offset));
        }
      }
      continue;
    }
    if (sz != a.file_size) {
      return Status::Error(where + ": size changed since the checkpoint (was " +
                           std::to_string(a.file_size) + " bytes, now " + std::to_string(sz) + ")");
    }
    if (mtime != a.file_mtime_ns) {
      return Status::Error(where + ": modified since the checkpoint (mtime was " +
                           std::to_string(a.file_mtime_ns) + " ns, now " + std::to_string(mtime) + " ns)");
    }
  }
  return Status::Ok();
}

}  // namespace stasis::state
