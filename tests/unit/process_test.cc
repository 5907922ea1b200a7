// Tests of src/state/process: /proc parsers on synthetic text, capture of a
// forked child, RestoreProcessAttributes in a forked child, PrepareProcess.
#include <elf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

#include "paused_child.h"
#include "state/process.h"

namespace stasis::state {
namespace {

using testing::PausedChild;

// A /proc/<pid>/stat line whose field n (proc(5) numbering) is n * 1000,
// with an awkward comm.
std::string SyntheticStat(int n_fields) {
  std::string s = "4242 (a) b (c) ";
  for (int n = 3; n <= n_fields; ++n) s += (n == 3 ? "S" : std::to_string(n * 1000)) + " ";
  s.back() = '\n';
  return s;
}

TEST(ProcessParse, StatFieldsAfterLastParen) {
  auto f = ParseStatFields(SyntheticStat(52));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->ppid, 4000);
  EXPECT_EQ(f->pgrp, 5000);
  EXPECT_EQ(f->session, 6000);
  EXPECT_EQ(f->mm.start_code, 26000u);
  EXPECT_EQ(f->mm.end_code, 27000u);
  EXPECT_EQ(f->mm.start_stack, 28000u);
  EXPECT_EQ(f->mm.start_data, 45000u);
  EXPECT_EQ(f->mm.end_data, 46000u);
  EXPECT_EQ(f->mm.start_brk, 47000u);
  EXPECT_EQ(f->mm.arg_start, 48000u);
  EXPECT_EQ(f->mm.arg_end, 49000u);
  EXPECT_EQ(f->mm.env_start, 50000u);
  EXPECT_EQ(f->mm.env_end, 51000u);
  EXPECT_EQ(f->mm.brk, 0u);
}

TEST(ProcessParse, StatErrors) {
  EXPECT_FALSE(ParseStatFields(SyntheticStat(50)).ok());
  EXPECT_FALSE(ParseStatFields("no paren at all").ok());
  std::string bad = SyntheticStat(52);
  bad.replace(bad.find(" 26000 "), 7, " 26x00 ");
  auto f = ParseStatFields(bad);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("field 26"), std::string::npos) << f.status().message();
}

TEST(ProcessParse, StatusValueAndCmdline) {
  const std::string status = "Name:\tcat\nUmask:\t0022\nUid:\t1000\t1001\t1002\t1003\nCapEff:\t0000000000000400\n";
  auto v = StatusValue(status, "Umask");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "0022");
  v = StatusValue(status, "Uid");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "1000\t1001\t1002\t1003");
  EXPECT_FALSE(StatusValue(status, "CapAmb").ok());
  EXPECT_FALSE(StatusValue(status, "Nam").ok());

  using V = std::vector<std::string>;
  EXPECT_EQ(SplitCmdline(std::string("a\0b c\0", 6)), (V{"a", "b c"}));
  EXPECT_EQ(SplitCmdline(std::string("a\0\0x\0", 5)), (V{"a", "", "x"}));
  EXPECT_EQ(SplitCmdline(""), V{});
}

TEST(ProcessCapture, ForkedChild) {
  char tmpl[] = "/tmp/stasis-process-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  struct rlimit nofile;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &nofile), 0);
  PausedChild child([&] {
    if (chdir(dir.c_str()) != 0) _exit(2);
    umask(027);
    struct rlimit r = {200, nofile.rlim_max};
    setrlimit(RLIMIT_NOFILE, &r);
    prctl(PR_SET_NAME, "stasis-proc-t");
  });
  ASSERT_TRUE(child.ready());
  auto target = ProcTarget::Open(child.pid());
  ASSERT_TRUE(target.ok()) << target.status().message();
  auto cb = std::make_unique<agent::ControlBlock>();
  cb->brk = 0x5550000;
  image::ProcessImage img;
  Status st = CaptureProcess(*target, *cb, &img);
  ASSERT_TRUE(st.ok()) << st.message();

  EXPECT_EQ(img.pid, child.pid());
  EXPECT_EQ(img.ppid, getpid());
  EXPECT_EQ(img.pgid, getpgrp());
  EXPECT_EQ(img.sid, getsid(0));
  EXPECT_EQ(img.uid, getuid());
  EXPECT_EQ(img.gid, getgid());
  EXPECT_EQ(img.program, "stasis-proc-t");
  char self_exe[PATH_MAX] = {};
  ASSERT_GT(readlink("/proc/self/exe", self_exe, sizeof self_exe - 1), 0);
  EXPECT_EQ(img.exe, self_exe);
  ASSERT_FALSE(img.argv.empty());
  EXPECT_EQ(img.cwd, dir);
  EXPECT_EQ(img.umask, 027u);
  EXPECT_EQ(img.rlimits[RLIMIT_NOFILE].cur, 200u);
  EXPECT_EQ(img.rlimits[RLIMIT_NOFILE].max, nofile.rlim_max);
  EXPECT_FALSE(img.kernel_release.empty());
  EXPECT_FALSE(img.hostname.empty());

  const image::MmLayout& mm = img.mm;
  EXPECT_LT(mm.start_code, mm.end_code);
  EXPECT_LE(mm.start_data, mm.end_data);
  EXPECT_LT(mm.arg_start, mm.arg_end);
  EXPECT_LT(mm.env_start, mm.env_end);
  EXPECT_NE(mm.start_stack, 0u);
  EXPECT_NE(mm.start_brk, 0u);
  EXPECT_EQ(mm.brk, 0x5550000u);

  // auxv: (type, value) pairs ending with AT_NULL; AT_PAGESZ is there.
  ASSERT_GE(img.auxv.size(), 4u);
  ASSERT_EQ(img.auxv.size() % 2, 0u);
  EXPECT_EQ(img.auxv[img.auxv.size() - 2], static_cast<uint64_t>(AT_NULL));
  bool pagesz = false;
  for (size_t i = 0; i + 1 < img.auxv.size(); i += 2) {
    if (img.auxv[i] == AT_PAGESZ) pagesz = img.auxv[i + 1] == 4096;
  }
  EXPECT_TRUE(pagesz);
  rmdir(dir.c_str());
}

TEST(ProcessRestore, AttributesInForkedChild) {
  char tmpl[] = "/tmp/stasis-process-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  image::ProcessImage img;
  img.cwd = dir;
  img.umask = 077;
  img.personality = 0;
  for (int r = 0; r < 16; ++r) {
    struct rlimit now;
    ASSERT_EQ(getrlimit(r, &now), 0);
    img.rlimits[r] = {now.rlim_cur, now.rlim_max};
  }
  img.rlimits[RLIMIT_NOFILE].cur = 100;
  img.rlimits[RLIMIT_CORE] = {0, 0};

  int report[2];
  ASSERT_EQ(pipe(report), 0);
  pid_t pid = fork();
  if (pid == 0) {
    std::string errors;
    Status st = RestoreProcessAttributes(img);
    if (!st.ok()) errors += st.message() + "; ";
    char cwd[PATH_MAX] = {};
    if (getcwd(cwd, sizeof cwd) == nullptr || dir != cwd) errors += "cwd; ";
    if (umask(0) != 077) errors += "umask; ";
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    if (r.rlim_cur != 100) errors += "nofile; ";
    getrlimit(RLIMIT_CORE, &r);
    if (r.rlim_cur != 0 || r.rlim_max != 0) errors += "core; ";
    if (errors.empty()) errors = "OK";
    (void)!write(report[1], errors.data(), errors.size());
    _exit(0);
  }
  close(report[1]);
  std::string got;
  char buf[512];
  ssize_t n;
  while ((n = read(report[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  close(report[0]);
  waitpid(pid, nullptr, 0);
  EXPECT_EQ(got, "OK");
  rmdir(dir.c_str());
}

TEST(ProcessRestore, MissingCwdNamesTheDirectory) {
  image::ProcessImage img;
  img.cwd = "/nonexistent/stasis-cwd";
  Status st = RestoreProcessAttributes(img);  // fails first, changes nothing
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/nonexistent/stasis-cwd"), std::string::npos) << st.message();
}

TEST(ProcessPrepare, MmExeFdAndCaps) {
  auto args = std::make_unique<restore::BlobArgs>();
  image::ProcessImage img;
  char self_exe[PATH_MAX] = {};
  ASSERT_GT(readlink("/proc/self/exe", self_exe, sizeof self_exe - 1), 0);
  img.exe = self_exe;
  img.mm = {0x400000, 0x401000, 0x600000, 0x601000, 0x602000, 0x623000, 0x7ffd0000,
            0x7ffd1000, 0x7ffd1010, 0x7ffd1010, 0x7ffd1100};
  img.auxv = {AT_PAGESZ, 4096, AT_NULL, 0};
  img.caps.effective = 0x400;
  img.caps.permitted = 0x401;
  img.caps.inheritable = 0x2;
  const int exe_fd = 200;
  ASSERT_TRUE(PrepareProcess(img, exe_fd, args.get()).ok());
  EXPECT_EQ(args->mm_valid, 1);
  EXPECT_EQ(args->mm.start_code, 0x400000u);
  EXPECT_EQ(args->mm.env_end, 0x7ffd1100u);
  EXPECT_EQ(args->mm.brk, 0x623000u);
  EXPECT_EQ(args->mm.auxv_size, 32u);
  EXPECT_EQ(args->mm.auxv[1], 4096u);
  EXPECT_EQ(args->mm.exe_fd, exe_fd);
  EXPECT_GE(fcntl(exe_fd, F_GETFD), 0);
  ASSERT_EQ(args->n_fds_to_close, 1);
  EXPECT_EQ(args->fds_to_close[0], exe_fd);
  EXPECT_EQ(args->caps_effective, 0x400u);
  EXPECT_EQ(args->caps_permitted, 0x401u);
  EXPECT_EQ(args->caps_inheritable, 0x2u);
  close(exe_fd);

  // An exe that cannot be opened: no exe_fd, the layout still goes.
  img.exe = "/nonexistent/stasis-exe";
  args = std::make_unique<restore::BlobArgs>();
  ASSERT_TRUE(PrepareProcess(img, exe_fd, args.get()).ok());
  EXPECT_EQ(args->mm.exe_fd, -1);
  EXPECT_EQ(args->mm_valid, 1);

  // A layout that was never captured is not restored.
  img.mm = {};
  ASSERT_TRUE(PrepareProcess(img, -1, args.get()).ok());
  EXPECT_EQ(args->mm_valid, 0);

  img.auxv.assign(66, 0);
  EXPECT_FALSE(PrepareProcess(img, -1, args.get()).ok());
}

}  // namespace
}  // namespace stasis::state
