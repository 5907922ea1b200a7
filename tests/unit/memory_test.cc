// Tests of src/state/memory: maps parsing, zero-page detection and
// pagemap-driven page capture of a forked child.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "state/memory.h"

namespace stasis::state {
namespace {

using image::MemoryArea;
using Kind = MemoryArea::Kind;

TEST(MemoryMaps, ParsesSyntheticMaps) {
  const std::string text =
      "55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 1234     /usr/bin/prog\n"
      "55d0c0a21000-55d0c0a42000 r-xp 00021000 08:01 1234     /usr/bin/prog\n"
      "55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0        [heap]\n"
      "7f0000000000-7f0000001000 rw-s 00000000 00:01 99       /dev/zero (deleted)\n"
      "7f0000001000-7f0000002000 rw-s 00001000 08:01 77       /data/my file.bin\n"
      "7f0000002000-7f0000004000 ---p 00000000 00:00 0 \n"
      "7f0000004000-7f0000005000 rw-p 00000000 00:00 0        [anon:glibc: malloc]\n"
      "7f0000005000-7f0000006000 rw-s 00000000 00:01 5        /SYSV00000000 (deleted)\n"
      "7f0000006000-7f0000007000 rw-p 00000000 08:01 78       /lib/x (deleted)\n"
      "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0        [stack]\n"
      "7ffc00100000-7ffc00104000 r--p 00000000 00:00 0        [vvar]\n"
      "7ffc00104000-7ffc00106000 r--p 00000000 00:00 0        [vvar_vclock]\n"
      "7ffc00106000-7ffc00108000 r-xp 00000000 00:00 0        [vdso]\n"
      "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n";
  auto r = ParseMaps(text);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto& a = *r;
  ASSERT_EQ(a.size(), 13u);  // [vsyscall] skipped
  EXPECT_EQ(a[0].kind, Kind::kFilePrivate);
  EXPECT_EQ(a[0].prot, unsigned{PROT_READ});
  EXPECT_EQ(a[1].file_offset, 0x21000u);
  EXPECT_EQ(a[1].prot, unsigned{PROT_READ | PROT_EXEC});
  EXPECT_EQ(a[2].kind, Kind::kAnonPrivate);
  EXPECT_TRUE(a[2].is_heap());
  EXPECT_EQ(a[3].kind, Kind::kAnonShared);
  EXPECT_EQ(a[4].kind, Kind::kFileShared);
  EXPECT_EQ(a[4].name, "/data/my file.bin");
  EXPECT_EQ(a[4].file_offset, 0x1000u);
  EXPECT_EQ(a[5].kind, Kind::kAnonPrivate);
  EXPECT_EQ(a[5].prot, 0u);
  EXPECT_EQ(a[5].name, "");
  EXPECT_EQ(a[6].kind, Kind::kAnonPrivate);
  EXPECT_EQ(a[7].kind, Kind::kAnonShared);
  EXPECT_EQ(a[8].kind, Kind::kFilePrivate);
  EXPECT_EQ(a[8].name, "/lib/x (deleted)");
  EXPECT_EQ(a[9].kind, Kind::kStack);
  EXPECT_EQ(a[10].kind, Kind::kVvar);
  EXPECT_EQ(a[11].kind, Kind::kVvar);
  EXPECT_EQ(a[12].kind, Kind::kVdso);
  EXPECT_EQ(a[12].start, 0x7ffc00106000u);
  EXPECT_EQ(a[12].end, 0x7ffc00108000u);
}

TEST(MemoryMaps, RejectsGarbage) {
  auto r = ParseMaps("hello world\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 1"), std::string::npos);
}

TEST(MemoryMaps, CapturesOwnProcess) {
  auto t = ProcTarget::Open(getpid());
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto r = CaptureAreas(*t);
  ASSERT_TRUE(r.ok()) << r.status().message();
  bool stack = false, vdso = false, lib = false;
  auto here = reinterpret_cast<uint64_t>(&stack);
  for (const auto& a : *r) {
    if (a.kind == Kind::kStack) stack = a.start <= here && here < a.end;
    if (a.kind == Kind::kVdso) vdso = true;
    if (a.kind == Kind::kFilePrivate && a.name.find("libc") != std::string::npos) {
      lib = true;
      EXPECT_GT(a.file_size, 0u);
      EXPECT_NE(a.file_mtime_ns, 0);
    }
  }
  EXPECT_TRUE(stack);
  EXPECT_TRUE(vdso);
  EXPECT_TRUE(lib);
  // Excluding a range drops the areas overlapping it.
  std::vector<std::pair<uint64_t, uint64_t>> ex = {{(*r)[0].start, (*r)[0].size()}};
  auto r2 = CaptureAreas(*t, ex);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->size() + 1, r->size());
}

TEST(MemoryZero, DetectsAnyNonZeroByte) {
  alignas(4096) static uint8_t page[4096];
  std::memset(page, 0, sizeof page);
  EXPECT_TRUE(IsZeroPage(page));
  for (size_t at : {size_t{0}, size_t{1}, size_t{100}, size_t{2047}, size_t{4000}, size_t{4095}}) {
    page[at] = 1;
    EXPECT_FALSE(IsZeroPage(page)) << at;
    page[at] = 0;
  }
}

// Collects pages instead of writing a file.
class FakeWriter : public image::ImageWriter {
 public:
  Status SetMetadata(const image::ProcessImage&) override { return Status::Ok(); }
  Status AddPages(uint32_t area, uint64_t first, const void* data, uint32_t n) override {
    for (uint32_t i = 0; i < n; ++i) {
      std::vector<uint8_t> p(4096);
      std::memcpy(p.data(), static_cast<const uint8_t*>(data) + i * 4096ull, 4096);
      pages[{area, first + i}] = std::move(p);
    }
    return Status::Ok();
  }
  StatusOr<uint64_t> Commit() override { return uint64_t{0}; }
  std::map<std::pair<uint32_t, uint64_t>, std::vector<uint8_t>> pages;
};

TEST(MemoryDump, StoresAnonNonZeroAndCowPagesOnly) {
  char path[] = "/tmp/stasis_memtest_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> content(4 * 4096, 0x5a);
  ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));

  // Areas prepared before the fork so both sides know the addresses.
  auto* anon = static_cast<uint8_t*>(mmap(nullptr, 6 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  auto* file = static_cast<uint8_t*>(mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  auto* shared = static_cast<uint8_t*>(mmap(nullptr, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(anon, MAP_FAILED);
  ASSERT_NE(file, MAP_FAILED);
  ASSERT_NE(shared, MAP_FAILED);
  close(fd);
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    anon[0] = 1;                   // page 0: data
    anon[1 * 4096] = 0;            // page 1: touched, all zero -> skipped
    anon[3 * 4096 + 4095] = 3;     // page 3: data in its last byte
    mprotect(anon + 3 * 4096, 4096, PROT_NONE);  // still readable through /proc/<pid>/mem
    volatile uint8_t x = file[0];  // page 0 of the file: present, file page -> skipped
    (void)x;
    file[2 * 4096] = 7;            // page 2: COW copy -> stored
    shared[4096] = 9;              // shared anon page 1 -> stored
    char c = 1;
    if (write(go[1], &c, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(go[0], &c, 1), 1);

  auto t = ProcTarget::Open(child);
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto areas = CaptureAreas(*t);
  ASSERT_TRUE(areas.ok()) << areas.status().message();
  FakeWriter w;
  auto n = DumpPages(*t, *areas, w);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  unlink(path);
  ASSERT_TRUE(n.ok()) << n.status().message();

  auto find = [&](uint8_t* p) -> int {
    for (size_t i = 0; i < areas->size(); ++i)
      if ((*areas)[i].start <= reinterpret_cast<uint64_t>(p) && reinterpret_cast<uint64_t>(p) < (*areas)[i].end)
        return static_cast<int>(i);
    return -1;
  };
  int ia = find(anon), ia3 = find(anon + 3 * 4096), ifile = find(file), ish = find(shared);
  ASSERT_GE(ia, 0);
  ASSERT_GE(ia3, 0);
  ASSERT_GE(ifile, 0);
  ASSERT_GE(ish, 0);
  const auto& A = *areas;
  EXPECT_EQ(A[ifile].kind, Kind::kFilePrivate);
  EXPECT_EQ(A[ish].kind, Kind::kAnonShared);
  EXPECT_EQ(A[ifile].file_size, 4u * 4096);
  auto page_of = [&](int area, uint8_t* p) { return (reinterpret_cast<uint64_t>(p) - A[area].start) / 4096; };

  auto has = [&](int area, uint64_t page) { return w.pages.count({static_cast<uint32_t>(area), page}) > 0; };
  auto byte = [&](int area, uint64_t page, size_t at) {
    return w.pages[std::make_pair(static_cast<uint32_t>(area), page)][at];
  };
  EXPECT_TRUE(has(ia, page_of(ia, anon)));
  EXPECT_EQ(byte(ia, page_of(ia, anon), 0), 1);
  EXPECT_FALSE(has(ia, page_of(ia, anon + 4096)));      // zero
  EXPECT_FALSE(has(ia, page_of(ia, anon + 2 * 4096)));  // untouched
  EXPECT_TRUE(has(ia3, page_of(ia3, anon + 3 * 4096))); // PROT_NONE page
  EXPECT_EQ(A[ia3].prot, 0u);
  EXPECT_FALSE(has(ifile, 0));
  EXPECT_TRUE(has(ifile, 2));
  EXPECT_EQ(byte(ifile, 2, 0), 7);
  EXPECT_EQ(byte(ifile, 2, 1), 0x5a);
  EXPECT_FALSE(has(ifile, 1));
  EXPECT_TRUE(has(ish, 1));
  EXPECT_FALSE(has(ish, 0));
  EXPECT_EQ(A[ia].stored_pages + A[ia3].stored_pages, 2u);
  EXPECT_EQ(A[ifile].stored_pages, 1u);
  uint64_t sum = 0;
  for (const auto& a : A) sum += a.stored_pages;
  EXPECT_EQ(sum, *n);
  EXPECT_EQ(w.pages.size(), *n);
}

TEST(MemoryCheck, ReportsChangedFile) {
  char path[] = "/tmp/stasis_memcheck_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "abcd", 4), 4);
  close(fd);
  struct stat st;
  ASSERT_EQ(stat(path, &st), 0);
  image::ProcessImage img;
  MemoryArea a;
  a.start = 0x10000;
  a.end = 0x11000;
  a.kind = Kind::kFilePrivate;
  a.name = path;
  a.file_size = 4;
  a.file_mtime_ns = st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
  img.areas.push_back(a);
  EXPECT_TRUE(CheckAreaFiles(img).ok()) << CheckAreaFiles(img).message();
  img.areas[0].file_size = 5;
  Status s = CheckAreaFiles(img);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos);
  EXPECT_NE(s.message().find("size"), std::string::npos);
  img.areas[0].file_size = 4;
  img.areas[0].file_mtime_ns += 1;
  s = CheckAreaFiles(img);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("modified"), std::string::npos);
  unlink(path);
  s = CheckAreaFiles(img);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos);
  img.areas[0].name = std::string(path) + " (deleted)";
  s = CheckAreaFiles(img);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("deleted"), std::string::npos);
}

}  // namespace
}  // namespace stasis::state
