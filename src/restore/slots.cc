// Slots of the restorer region; see slots.h.  Technique after CRIU's
// premapping of private areas (criu/mem.c); the code is our own.
#include "restore/slots.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "common/scoped_fd.h"
#include "restore/blob/blob_embed.h"
#include "state/memory.h"

namespace stasis::restore {
namespace {

using Kind = image::MemoryArea::Kind;
constexpr uint64_t kPage = image::kPageSize;

uint64_t RoundUp(uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

std::string Hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

std::string AreaName(const image::MemoryArea& a) {
  return "area " + Hex(a.start) + "-" + Hex(a.end) + " (" + state::AreaKindName(a.kind) +
         (a.name.empty() ? "" : " " + a.name) + ")";
}

StatusOr<std::string> ReadSelfMaps() {
  ScopedFd fd(::open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Errno("/proc/self/maps");
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Errno("/proc/self/maps");
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

Status MapAnon(uint64_t at, uint64_t len, int prot, int flags, const std::string& what) {
  void* p = ::mmap(reinterpret_cast<void*>(at), len, prot, flags | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) return Status::Errno("mmap " + what + " at " + Hex(at));
  return Status::Ok();
}

// One area's slot at `slot`.
Status MapSlot(const image::MemoryArea& a, uint64_t slot, const std::map<uint64_t, int>& shmem_fds) {
  if (a.shmem_id != 0) {
    auto it = shmem_fds.find(a.shmem_id);
    if (it == shmem_fds.end()) return Status::Error(AreaName(a) + ": its shared memory object was not recreated");
    void* p = ::mmap(reinterpret_cast<void*>(slot), a.size(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                     it->second, static_cast<off_t>(a.file_offset));
    if (p == MAP_FAILED) return Status::Errno(AreaName(a) + ": mmap of the recreated shared memory");
    return Status::Ok();
  }
  switch (a.kind) {
    case Kind::kAnonPrivate:
    case Kind::kStack:
      return MapAnon(slot, a.size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, AreaName(a));
    case Kind::kAnonShared:
      return MapAnon(slot, a.size(), PROT_READ | PROT_WRITE, MAP_SHARED, AreaName(a));
    case Kind::kFilePrivate:
    case Kind::kFileShared: {
      const bool shared = a.kind == Kind::kFileShared;
      // A shared area can only become writable (blob mprotect) if the file
      // was opened for writing; try that first even for read-only areas,
      // since the program may mprotect them later.
      int fd = -1;
      if (shared) fd = ::open(a.name.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0 && !(shared && (a.prot & PROT_WRITE))) fd = ::open(a.name.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return Status::Errno(AreaName(a) + ": open " + a.name);
      ScopedFd owner(fd);
      int prot = shared ? PROT_READ : PROT_READ | PROT_WRITE;
      void* p = ::mmap(reinterpret_cast<void*>(slot), a.size(), prot,
                       (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED, fd, static_cast<off_t>(a.file_offset));
      if (p == MAP_FAILED) return Status::Errno(AreaName(a) + ": mmap " + a.name);
      return Status::Ok();
    }
    case Kind::kVdso:
    case Kind::kVvar:
      break;
  }
  return Status::Ok();
}

}  // namespace

StatusOr<Slots> BuildSlots(const image::ProcessImage& img, bool force_proxy,
                           const std::map<uint64_t, int>& shmem_fds) {
  Slots s;
  ASSIGN_OR_RETURN(s.vdso_group, state::CurrentVdsoAreas());
  if (s.vdso_group.size() > static_cast<size_t>(kBlobMaxVdsoAreas))
    return Status::Error("the running kernel has " + std::to_string(s.vdso_group.size()) + " vDSO/vvar areas");
  LayoutInput in;
  for (const auto& v : s.vdso_group) {
    in.vdso_group.push_back({v.start, v.end});
    if (v.name != "[vdso]") continue;
    in.current_vdso_start = v.start;
    const auto& old = img.vdso.vdso_bytes;
    in.vdso_identical = old.size() == v.end - v.start &&
                        std::memcmp(old.data(), reinterpret_cast<const void*>(v.start), old.size()) == 0;
  }
  in.force_proxy = force_proxy;
  in.blob_size = static_cast<uint64_t>(stasis_blob_end - stasis_blob_start);
  in.args_size = sizeof(BlobArgs);
  in.n_threads = static_cast<int>(img.threads.size());

  std::vector<Range> avoid;
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(std::string maps, ReadSelfMaps());
    auto cur = state::ParseMaps(maps);
    if (!cur.ok()) return cur.status().With("/proc/self/maps");
    in.current.clear();
    in.current_stacks.clear();
    for (const auto& a : *cur) {
      in.current.push_back({a.start, a.end});
      if (a.kind == Kind::kStack) in.current_stacks.push_back({a.start, a.end});
    }
    ASSIGN_OR_RETURN(s.layout, PlanLayout(img, in, avoid));
    const Range& r = s.layout.plan.region;
    void* p = ::mmap(reinterpret_cast<void*>(r.start), r.size(), PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == reinterpret_cast<void*>(r.start)) break;
    if (p != MAP_FAILED) ::munmap(p, r.size());  // old kernels ignore the flag
    if (attempt == 3) return Status::Errno("reserving the restorer region at " + Hex(r.start));
    avoid.push_back(r);
  }

  const RegionPlan& rp = s.layout.plan;
  const uint64_t base = rp.region.start;
  RETURN_IF_ERROR(MapAnon(base + rp.args_off, RoundUp(sizeof(BlobArgs)), PROT_READ | PROT_WRITE, MAP_PRIVATE,
                          "blob arguments"));
  for (int i = 0; i < in.n_threads; ++i) {
    RETURN_IF_ERROR(MapAnon(rp.StackTop(i) - kBlobThreadStackSize, kBlobThreadStackSize,
                            PROT_READ | PROT_WRITE, MAP_PRIVATE, "blob stack"));
  }
  for (size_t i = 0; i < img.areas.size(); ++i) {
    if (rp.slot_off[i] == UINT64_MAX) continue;
    RETURN_IF_ERROR(MapSlot(img.areas[i], base + rp.slot_off[i], shmem_fds));
  }

  if (s.layout.vdso.proxy) {
    const state::KernelVdsoArea* cur = nullptr;
    for (const auto& v : s.vdso_group)
      if (v.name == "[vdso]") cur = &v;
    if (cur == nullptr) return Status::Error("no [vdso] in the running process");
    std::vector<uint8_t> bytes;
    RETURN_IF_ERROR(state::BuildVdsoProxy(img.vdso, reinterpret_cast<const uint8_t*>(cur->start),
                                          cur->end - cur->start, cur->start + s.layout.vdso.delta, &bytes));
    s.proxy_len = RoundUp(bytes.size());
    RETURN_IF_ERROR(MapAnon(base + rp.proxy_off, s.proxy_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, "vDSO proxy"));
    std::memcpy(reinterpret_cast<void*>(base + rp.proxy_off), bytes.data(), bytes.size());
  }
  return s;
}

Status LoadPages(image::ImageReader& reader, const Slots& slots) {
  const image::ProcessImage& img = reader.metadata();
  const RegionPlan& rp = slots.layout.plan;
  auto sink = [&](uint32_t idx, uint64_t first, const uint8_t* data, uint32_t n) -> Status {
    if (idx >= img.areas.size()) return Status::Error("pages for area " + std::to_string(idx) + ", which does not exist");
    const image::MemoryArea& a = img.areas[idx];
    if (rp.slot_off[idx] == UINT64_MAX || (a.kind == Kind::kFileShared && a.shmem_id == 0))
      return Status::Error(AreaName(a) + ": the image holds pages for an area that has none");
    const uint64_t npages = a.size() / kPage;
    if (first > npages || n > npages - first)
      return Status::Error(AreaName(a) + ": pages " + std::to_string(first) + "+" + std::to_string(n) +
                           " are outside the area");
    if (a.kind == Kind::kFilePrivate && a.file_size > 0) {
      // Touching a file page wholly beyond EOF raises SIGBUS.
      uint64_t file_pages = (a.file_size + kPage - 1) / kPage;
      uint64_t first_file_page = a.file_offset / kPage;
      if (first_file_page + first + n > file_pages)
        return Status::Error(AreaName(a) + ": copy-on-write page beyond the end of the file");
    }
    void* dst = reinterpret_cast<void*>(rp.region.start + rp.slot_off[idx] + first * kPage);
    // Fault the destination in with one call instead of one page fault per
    // page (MADV_POPULATE_WRITE, Linux 5.14); best effort.
    (void)::madvise(dst, n * kPage, MADV_POPULATE_WRITE);
    std::memcpy(dst, data, n * kPage);
    return Status::Ok();
  };
  auto summary = reader.ReadPages(sink);
  if (!summary.ok()) return summary.status();
  return Status::Ok();
}

Status FillAreaArgs(const image::ProcessImage& img, const Slots& slots, BlobArgs* args) {
  const RegionPlan& rp = slots.layout.plan;
  std::vector<BlobArea> areas;
  for (size_t i = 0; i < img.areas.size(); ++i) {
    if (rp.slot_off[i] == UINT64_MAX) continue;
    const auto& a = img.areas[i];
    areas.push_back({rp.region.start + rp.slot_off[i], a.start, a.size(), a.prot,
                     a.kind == Kind::kStack ? kBlobAreaGrowsDown : 0u});
  }
  if (slots.layout.vdso.proxy) {
    areas.push_back({rp.region.start + rp.proxy_off, img.vdso.vdso_start, slots.proxy_len,
                     static_cast<uint32_t>(PROT_READ | PROT_EXEC), 0u});
  }
  if (areas.size() > static_cast<size_t>(kBlobMaxAreas))
    return Status::Error(std::to_string(areas.size()) + " memory areas; at most " +
                         std::to_string(kBlobMaxAreas) + " can be restored");
  std::sort(areas.begin(), areas.end(), [](const BlobArea& x, const BlobArea& y) { return x.start < y.start; });
  args->n_areas = static_cast<int32_t>(areas.size());
  std::copy(areas.begin(), areas.end(), args->areas);

  args->n_vdso = static_cast<int32_t>(slots.vdso_group.size());
  for (size_t i = 0; i < slots.vdso_group.size(); ++i)
    args->vdso_current[i] = {slots.vdso_group[i].start, slots.vdso_group[i].end - slots.vdso_group[i].start};
  args->vdso_scratch = slots.layout.vdso.scratch;
  args->vdso_delta = slots.layout.vdso.delta;
  return Status::Ok();
}

}  // namespace stasis::restore
