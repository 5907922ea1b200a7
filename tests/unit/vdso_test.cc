// Tests of src/state/vdso: symbol parsing of this process's own vDSO, the
// proxy trampolines (called for real), and capture through /proc.
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include <gtest/gtest.h>

#include "state/vdso.h"

namespace stasis::state {
namespace {

struct OwnVdso {
  const uint8_t* base = nullptr;
  uint64_t len = 0;
};

OwnVdso FindOwnVdso() {
  OwnVdso v;
  auto areas = CurrentVdsoAreas();
  if (!areas.ok()) return v;
  for (const auto& a : *areas) {
    if (a.name == "[vdso]") {
      v.base = reinterpret_cast<const uint8_t*>(a.start);
      v.len = a.end - a.start;
    }
  }
  return v;
}

TEST(Vdso, CurrentAreasIncludeVdsoAndVvar) {
  auto areas = CurrentVdsoAreas();
  ASSERT_TRUE(areas.ok()) << areas.status().message();
  bool vdso = false, vvar = false;
  for (size_t i = 0; i < areas->size(); ++i) {
    vdso |= (*areas)[i].name == "[vdso]";
    vvar |= (*areas)[i].name.rfind("[vvar", 0) == 0;
    if (i > 0) {
      EXPECT_LT((*areas)[i - 1].start, (*areas)[i].start);
    }
  }
  EXPECT_TRUE(vdso);
  EXPECT_TRUE(vvar);
  EXPECT_EQ(FindOwnVdso().base, reinterpret_cast<const uint8_t*>(getauxval(AT_SYSINFO_EHDR)));
}

TEST(Vdso, ParsesOwnSymbols) {
  OwnVdso v = FindOwnVdso();
  ASSERT_NE(v.base, nullptr);
  auto syms = VdsoSymbols(v.base, v.len);
  ASSERT_TRUE(syms.ok()) << syms.status().message();
  std::map<std::string, uint64_t> by;
  for (auto& s : *syms) by[s.name] = s.offset;
  for (const char* n : {"__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "__vdso_getcpu",
                        "clock_gettime"}) {
    ASSERT_TRUE(by.count(n)) << n;
    EXPECT_LT(by[n], v.len) << n;
  }
  EXPECT_EQ(by["clock_gettime"], by["__vdso_clock_gettime"]);
  // Calling through the parsed offset works.
  using Fn = int (*)(clockid_t, struct timespec*);
  auto fn = reinterpret_cast<Fn>(const_cast<uint8_t*>(v.base) + by["__vdso_clock_gettime"]);
  struct timespec a, b;
  ASSERT_EQ(fn(CLOCK_MONOTONIC, &a), 0);
  ASSERT_EQ(clock_gettime(CLOCK_MONOTONIC, &b), 0);
  EXPECT_LE(a.tv_sec, b.tv_sec);
}

TEST(Vdso, RejectsNonElf) {
  uint8_t junk[256] = {1, 2, 3};
  EXPECT_FALSE(VdsoSymbols(junk, sizeof junk).ok());
  EXPECT_FALSE(VdsoSymbols(junk, 10).ok());
}

TEST(Vdso, ProxyCallsTheNewVdso) {
  OwnVdso v = FindOwnVdso();
  ASSERT_NE(v.base, nullptr);
  image::VdsoInfo old;
  auto syms = VdsoSymbols(v.base, v.len);
  ASSERT_TRUE(syms.ok());
  old.symbols = *syms;
  // Pretend the old vDSO was somewhere else with the same symbol offsets.
  old.vdso_start = 0x100000;
  old.vdso_end = old.vdso_start + v.len;
  std::vector<uint8_t> proxy;
  Status st = BuildVdsoProxy(old, v.base, v.len, reinterpret_cast<uint64_t>(v.base), &proxy);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(proxy.size(), v.len);
  void* mem = mmap(nullptr, v.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  std::memcpy(mem, proxy.data(), proxy.size());
  ASSERT_EQ(mprotect(mem, v.len, PROT_READ | PROT_EXEC), 0);
  uint64_t off = 0;
  for (auto& s : old.symbols)
    if (s.name == "__vdso_clock_gettime") off = s.offset;
  const auto* p = static_cast<const uint8_t*>(mem) + off;
  EXPECT_EQ(p[0], 0x48);
  EXPECT_EQ(p[1], 0xB8);
  EXPECT_EQ(p[10], 0xFF);
  EXPECT_EQ(p[11], 0xE0);
  using Fn = int (*)(clockid_t, struct timespec*);
  auto fn = reinterpret_cast<Fn>(const_cast<uint8_t*>(p));
  struct timespec a, b, c;
  ASSERT_EQ(clock_gettime(CLOCK_REALTIME, &a), 0);
  ASSERT_EQ(fn(CLOCK_REALTIME, &b), 0);
  ASSERT_EQ(clock_gettime(CLOCK_REALTIME, &c), 0);
  auto ns = [](const timespec& t) { return t.tv_sec * 1000000000ll + t.tv_nsec; };
  EXPECT_LE(ns(a), ns(b));
  EXPECT_LE(ns(b), ns(c));
  EXPECT_LT(ns(c) - ns(a), 1000000000ll);
  munmap(mem, v.len);

  // A symbol the new vDSO lacks is an error naming it.
  old.symbols.push_back({"__vdso_no_such_function", 0x40});
  st = BuildVdsoProxy(old, v.base, v.len, reinterpret_cast<uint64_t>(v.base), &proxy);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("__vdso_no_such_function"), std::string::npos);
}

TEST(Vdso, CapturesThroughProc) {
  auto t = ProcTarget::Open(getpid());
  ASSERT_TRUE(t.ok()) << t.status().message();
  OwnVdso v = FindOwnVdso();
  image::MemoryArea a;
  a.start = reinterpret_cast<uint64_t>(v.base);
  a.end = a.start + v.len;
  a.kind = image::MemoryArea::Kind::kVdso;
  auto info = CaptureVdso(*t, {a});
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->vdso_start, a.start);
  EXPECT_EQ(info->vdso_bytes.size(), v.len);
  EXPECT_EQ(std::memcmp(info->vdso_bytes.data(), v.base, v.len), 0);
  EXPECT_FALSE(info->symbols.empty());
}

}  // namespace
}  // namespace stasis::state
