// Tests of src/restore: the embedded blob and the address-space planning.
#include <gtest/gtest.h>

#include "restore/blob/blob_args.h"
#include "restore/blob/blob_embed.h"
#include "restore/layout.h"

namespace stasis::restore {
namespace {

using image::MemoryArea;
using Kind = MemoryArea::Kind;

TEST(RestoreBlob, IsEmbeddedWithEntryAtZero) {
  // The build (src/restore/blob/CMakeLists.txt) already refused any
  // relocation; here: it exists and starts with blob_entry (xor %ebp,%ebp).
  ASSERT_GT(stasis_blob_end - stasis_blob_start, 64);
  EXPECT_LT(stasis_blob_end - stasis_blob_start, 64 * 1024);
  EXPECT_EQ(stasis_blob_start[0], 0x31);
  EXPECT_EQ(stasis_blob_start[1], 0xed);
}

TEST(RestoreLayout, FindFreeTakesHighestGap) {
  std::vector<Range> busy = {{0x100000, 0x200000}, {0x300000, 0x400000}};
  auto at = FindFree(busy, 0x10000, 0, 0x10000, 0x500000);
  ASSERT_TRUE(at);
  EXPECT_EQ(*at, 0x4f0000u);
  // Gaps keep 0x1000 from busy ranges: 0x201000..0x2ff000 is the highest that fits.
  at = FindFree(busy, 0x80000, 0x1000, 0x10000, 0x400000);
  ASSERT_TRUE(at);
  EXPECT_EQ(*at, 0x2ff000u - 0x80000u);
  at = FindFree(busy, 0xff000, 0x1000, 0x10000, 0x400000);
  EXPECT_FALSE(at);  // no gap is that large
  EXPECT_FALSE(FindFree(busy, 0x400000, 0, 0x10000, 0x400000));
  // Overlapping busy ranges are merged.
  busy = {{0x100000, 0x300000}, {0x200000, 0x250000}};
  at = FindFree(busy, 0x10000, 0, 0x100000, 0x300000);
  EXPECT_FALSE(at);
}

image::ProcessImage SyntheticImage() {
  image::ProcessImage img;
  img.pid = 7;
  img.threads.resize(2);
  auto add = [&](uint64_t s, uint64_t e, Kind k, const char* name) {
    MemoryArea a;
    a.start = s;
    a.end = e;
    a.kind = k;
    a.name = name;
    img.areas.push_back(a);
  };
  add(0x555500000000, 0x555500010000, Kind::kFilePrivate, "/bin/true");
  add(0x555500100000, 0x555500200000, Kind::kAnonPrivate, "[heap]");
  add(0x7f0000000000, 0x7f0000100000, Kind::kAnonPrivate, "");
  add(0x7ffd00000000, 0x7ffd00021000, Kind::kStack, "[stack]");
  add(0x7ffd00100000, 0x7ffd00104000, Kind::kVvar, "[vvar]");
  add(0x7ffd00104000, 0x7ffd00106000, Kind::kVdso, "[vdso]");
  img.vdso.vdso_start = 0x7ffd00104000;
  img.vdso.vdso_end = 0x7ffd00106000;
  img.vdso.vdso_bytes.assign(0x2000, 1);
  return img;
}

LayoutInput SyntheticCurrent() {
  LayoutInput in;
  in.current = {{0x560000000000, 0x560000100000}, {0x7f1000000000, 0x7f1000800000},
                {0x7ffe00000000, 0x7ffe00021000}, {0x7ffe00100000, 0x7ffe00106000}};
  in.current_stacks = {{0x7ffe00000000, 0x7ffe00021000}};
  in.vdso_group = {{0x7ffe00100000, 0x7ffe00104000}, {0x7ffe00104000, 0x7ffe00106000}};
  in.current_vdso_start = 0x7ffe00104000;
  in.blob_size = 5000;
  in.args_size = sizeof(BlobArgs);
  in.n_threads = 2;
  return in;
}

void ExpectDisjoint(const image::ProcessImage& img, const LayoutInput& in, const Layout& l) {
  std::vector<Range> all = in.current;
  for (const auto& a : img.areas) all.push_back({a.start, a.end});
  EXPECT_FALSE(Overlaps(all, l.plan.region));
  for (size_t i = 0; i < img.areas.size(); ++i) {
    if (l.plan.slot_off[i] == UINT64_MAX) continue;
    uint64_t s = l.plan.region.start + l.plan.slot_off[i];
    EXPECT_LE(s + img.areas[i].size(), l.plan.region.end);
  }
  EXPECT_LE(l.plan.StackTop(1), l.plan.region.start + l.plan.proxy_off);
  EXPECT_GE(l.plan.region.start + l.plan.args_off, l.plan.region.start + 5000);
  EXPECT_EQ(l.plan.StackTop(0) % 16, 0u);
}

TEST(RestoreLayout, IdenticalVdsoMovesTheGroup) {
  auto img = SyntheticImage();
  auto in = SyntheticCurrent();
  in.vdso_identical = true;
  auto l = PlanLayout(img, in);
  ASSERT_TRUE(l.ok()) << l.status().message();
  EXPECT_FALSE(l->vdso.proxy);
  EXPECT_EQ(in.current_vdso_start + l->vdso.delta, img.vdso.vdso_start);
  EXPECT_NE(l->vdso.scratch, 0u);
  std::vector<Range> all = in.current;
  all.push_back(l->plan.region);
  for (const auto& a : img.areas)
    if (a.kind != Kind::kVdso && a.kind != Kind::kVvar) all.push_back({a.start, a.end});
  EXPECT_FALSE(Overlaps(all, {l->vdso.scratch, l->vdso.scratch + 0x6000}));
  EXPECT_EQ(l->plan.slot_off[4], UINT64_MAX);
  EXPECT_EQ(l->plan.slot_off[5], UINT64_MAX);
  ExpectDisjoint(img, in, *l);
}

TEST(RestoreLayout, DifferentVdsoUsesProxyAndKeepsGroupWhenFree) {
  auto img = SyntheticImage();
  auto in = SyntheticCurrent();
  in.vdso_identical = false;
  auto l = PlanLayout(img, in);
  ASSERT_TRUE(l.ok()) << l.status().message();
  EXPECT_TRUE(l->vdso.proxy);
  EXPECT_EQ(l->vdso.delta, 0);
  ExpectDisjoint(img, in, *l);
  // Forced proxy even if identical.
  in.vdso_identical = true;
  in.force_proxy = true;
  l = PlanLayout(img, in);
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->vdso.proxy);
}

TEST(RestoreLayout, GroupCollidingWithImageIsMoved) {
  auto img = SyntheticImage();
  auto in = SyntheticCurrent();
  // An image area right where the current vDSO group is.
  MemoryArea a;
  a.start = 0x7ffe00100000;
  a.end = 0x7ffe00200000;
  a.kind = Kind::kAnonPrivate;
  img.areas.push_back(a);
  in.vdso_identical = false;
  auto l = PlanLayout(img, in);
  ASSERT_TRUE(l.ok()) << l.status().message();
  EXPECT_TRUE(l->vdso.proxy);
  EXPECT_NE(l->vdso.delta, 0);
  std::vector<Range> targets;
  for (const auto& x : img.areas) targets.push_back({x.start, x.end});
  EXPECT_FALSE(Overlaps(targets, l->vdso.final_group));
  EXPECT_FALSE(Overlaps({l->plan.region}, l->vdso.final_group));
  ExpectDisjoint(img, in, *l);
}

}  // namespace
}  // namespace stasis::restore
