// Address-space planning for a restart (pure functions, unit tested): where
// the restorer region, the memory-area slots, the vDSO scratch range and
// the new vDSO/vvar group go.  Everything chosen here must be free both in
// the pre-restorer's current layout and in the image's layout, because the
// blob first drops the current layout (except the region and the vDSO
// group) and then builds the image's.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/status.h"
#include "image/model.h"

namespace stasis::restore {

struct Range {
  uint64_t start = 0, end = 0;  // [start, end), bytes
  uint64_t size() const { return end - start; }
};

// Lowest and highest (exclusive) user addresses the restorer uses on x86_64
// with 4-level paging (mmap_min_addr is usually 64 KiB).
constexpr uint64_t kUserLow = 0x10000;
constexpr uint64_t kUserHigh = 0x7ffffffff000ull;

bool Overlaps(const std::vector<Range>& busy, Range r);

// The highest `size`-byte, `align`-aligned range in [lo, hi) that keeps at
// least `gap` bytes from every busy range.  nullopt if there is none.
std::optional<uint64_t> FindFree(const std::vector<Range>& busy, uint64_t size, uint64_t gap,
                                 uint64_t lo = kUserLow, uint64_t hi = kUserHigh);

// How the current kernel's vDSO/vvar group is handled.
struct VdsoPlan {
  bool proxy = false;       // build a proxy at the old vDSO address
  int64_t delta = 0;        // move of the whole current group, bytes
  uint64_t scratch = 0;     // free range of group size for a two-step move (delta != 0)
  Range final_group;        // where the group ends up
};

// Layout of the restorer region.  Offsets are from region.start.
struct RegionPlan {
  Range region;
  uint64_t code_off = 0, args_off = 0, stacks_off = 0, proxy_off = 0;
  // Slot offset of each image area (index as img.areas); UINT64_MAX for
  // areas without a slot (vdso, vvar).
  std::vector<uint64_t> slot_off;
  uint64_t StackTop(int thread) const;  // 16-byte aligned top of a thread's blob stack
};

struct LayoutInput {
  std::vector<Range> current;          // every mapping of the pre-restorer (/proc/self/maps)
  std::vector<Range> current_stacks;   // its [stack] (room to grow is kept below)
  std::vector<Range> vdso_group;       // the current kernel's vdso/vvar areas, sorted
  bool vdso_identical = false;         // current [vdso] bytes == image's
  bool force_proxy = false;
  uint64_t current_vdso_start = 0;     // 0: the kernel has no vDSO
  uint64_t blob_size = 0, args_size = 0;
  int n_threads = 1;
};

struct Layout {
  VdsoPlan vdso;
  RegionPlan plan;
};

// Decides vDSO handling (see src/state/vdso.h) and the region layout.
// `avoid` are extra ranges to keep clear (e.g. a region that could not be
// reserved in an earlier attempt).  Errors: no room in the address space.
StatusOr<Layout> PlanLayout(const image::ProcessImage& img, const LayoutInput& in,
                            const std::vector<Range>& avoid = {});

}  // namespace stasis::restore
