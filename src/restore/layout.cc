// Address-space planning for a restart; see layout.h.
#include "restore/layout.h"

#include <algorithm>

#include "image/format.h"
#include "restore/blob/blob_args.h"

namespace stasis::restore {
namespace {

constexpr uint64_t kPage = image::kPageSize;
// Kept free below every growsdown stack so that it can still grow.
constexpr uint64_t kStackRoom = 256ull << 20;
// Distance kept between the region and anything else.
constexpr uint64_t kRegionGap = 1ull << 20;

uint64_t RoundUp(uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

Range Span(const std::vector<Range>& rs) {
  Range s{UINT64_MAX, 0};
  for (auto& r : rs) {
    s.start = std::min(s.start, r.start);
    s.end = std::max(s.end, r.end);
  }
  return s;
}

}  // namespace

bool Overlaps(const std::vector<Range>& busy, Range r) {
  for (const Range& b : busy)
    if (b.start < r.end && r.start < b.end) return true;
  return false;
}

std::optional<uint64_t> FindFree(const std::vector<Range>& busy, uint64_t size, uint64_t gap,
                                 uint64_t lo, uint64_t hi) {
  if (size == 0 || size > hi - lo) return std::nullopt;
  std::vector<Range> b;
  b.reserve(busy.size());
  for (const Range& r : busy) {
    if (r.end <= r.start) continue;
    b.push_back({r.start > gap ? r.start - gap : 0, r.end + gap < r.end ? UINT64_MAX : r.end + gap});
  }
  std::sort(b.begin(), b.end(), [](const Range& x, const Range& y) { return x.start < y.start; });
  std::vector<Range> m;  // merged
  for (const Range& r : b) {
    if (!m.empty() && r.start <= m.back().end) m.back().end = std::max(m.back().end, r.end);
    else m.push_back(r);
  }
  // Free gaps are [lo, m0.start), [m0.end, m1.start), ..., [mN.end, hi): take the highest.
  for (size_t i = m.size() + 1; i-- > 0;) {
    uint64_t g_lo = std::max(i == 0 ? lo : m[i - 1].end, lo);
    uint64_t g_hi = std::min(i == m.size() ? hi : m[i].start, hi);
    if (g_hi <= g_lo || g_hi - g_lo < size) continue;
    uint64_t at = (g_hi - size) & ~(kPage - 1);
    if (at >= g_lo) return at;
  }
  return std::nullopt;
}

uint64_t RegionPlan::StackTop(int thread) const {
  return region.start + stacks_off + (static_cast<uint64_t>(thread) + 1) * (kBlobThreadStackSize + kPage);
}

StatusOr<Layout> PlanLayout(const image::ProcessImage& img, const LayoutInput& in,
                            const std::vector<Range>& avoid) {
  using Kind = image::MemoryArea::Kind;
  std::vector<Range> targets, image_all, stack_room;
  for (const auto& a : img.areas) {
    image_all.push_back({a.start, a.end});
    if (a.kind != Kind::kVdso && a.kind != Kind::kVvar) targets.push_back({a.start, a.end});
    if (a.kind == Kind::kStack) stack_room.push_back({a.start > kStackRoom ? a.start - kStackRoom : 0, a.start});
  }
  for (const Range& s : in.current_stacks)
    stack_room.push_back({s.start > kStackRoom ? s.start - kStackRoom : 0, s.start});
  const Range old_vdso{img.vdso.vdso_start, img.vdso.vdso_end};
  const bool have_old = !img.vdso.vdso_bytes.empty() && old_vdso.end > old_vdso.start;
  if (have_old) image_all.push_back(old_vdso);

  Layout out;
  VdsoPlan& vp = out.vdso;
  const bool have_cur = in.current_vdso_start != 0 && !in.vdso_group.empty();
  if (have_old && !have_cur)
    return Status::Error("the running kernel provides no vDSO, but the checkpointed program used one");
  Range group = have_cur ? Span(in.vdso_group) : Range{};
  if (have_cur) {
    bool identity = false;
    if (have_old && in.vdso_identical && !in.force_proxy) {
      int64_t delta = static_cast<int64_t>(old_vdso.start - in.current_vdso_start);
      Range moved{group.start + delta, group.end + delta};
      if (!Overlaps(targets, moved) && !Overlaps(avoid, moved) && moved.start >= kUserLow &&
          moved.end <= kUserHigh) {
        identity = true;
        vp.delta = delta;
      }
    }
    if (!identity) {
      vp.proxy = have_old;
      if (!Overlaps(image_all, group) && !Overlaps(avoid, group)) {
        vp.delta = 0;
      } else {
        std::vector<Range> busy = in.current;
        busy.insert(busy.end(), image_all.begin(), image_all.end());
        busy.insert(busy.end(), avoid.begin(), avoid.end());
        busy.insert(busy.end(), stack_room.begin(), stack_room.end());
        auto at = FindFree(busy, group.size(), kPage);
        if (!at) return Status::Error("no free address range for the vDSO");
        vp.delta = static_cast<int64_t>(*at - group.start);
      }
    }
    vp.final_group = {group.start + vp.delta, group.end + vp.delta};
  }

  // Region layout: code | guard | args | (guard | stack)* | guard | proxy | (guard | slot)* | guard
  RegionPlan& rp = out.plan;
  uint64_t off = 0;
  rp.code_off = off;
  off += RoundUp(in.blob_size) + kPage;
  rp.args_off = off;
  off += RoundUp(in.args_size);
  rp.stacks_off = off;
  off += static_cast<uint64_t>(in.n_threads) * (kBlobThreadStackSize + kPage) + kPage;
  rp.proxy_off = off;
  if (have_old) off += RoundUp(old_vdso.size()) + kPage;
  rp.slot_off.assign(img.areas.size(), UINT64_MAX);
  for (size_t i = 0; i < img.areas.size(); ++i) {
    const auto& a = img.areas[i];
    if (a.kind == Kind::kVdso || a.kind == Kind::kVvar) continue;
    rp.slot_off[i] = off;
    off += a.size() + kPage;
  }
  const uint64_t region_size = off;

  std::vector<Range> busy = in.current;
  busy.insert(busy.end(), image_all.begin(), image_all.end());
  busy.insert(busy.end(), stack_room.begin(), stack_room.end());
  busy.insert(busy.end(), avoid.begin(), avoid.end());
  if (have_cur) busy.push_back(vp.final_group);
  auto at = FindFree(busy, region_size, kRegionGap);
  if (!at)
    return Status::Error("no address range of " + std::to_string(region_size >> 20) +
                         " MiB is free in both the current and the checkpointed layout");
  rp.region = {*at, *at + region_size};

  if (vp.delta != 0) {
    busy.push_back(rp.region);
    busy.push_back(group);
    auto s = FindFree(busy, group.size(), kPage);
    if (!s) return Status::Error("no free address range for moving the vDSO");
    vp.scratch = *s;
  }
  return out;
}

}  // namespace stasis::restore
