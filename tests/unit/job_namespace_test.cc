// The job's user+pid+mount namespace (src/job/namespace.h): pids start at 1,
// uid unchanged, /proc is the namespace's own, exit codes, start reports,
// signal forwarding and parent death.
#include "job/namespace.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace stasis::job {
namespace {

bool UserNamespacesWork() {
  pid_t pid = fork();
  if (pid == 0) _exit(unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

#define SKIP_WITHOUT_USERNS() \
  if (!UserNamespacesWork()) GTEST_SKIP() << "unprivileged user namespaces unavailable"

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `script` with /bin/sh inside the namespace, stdout to a temp file.
struct ShellResult {
  StatusOr<int> code = Status::Error("not run");
  std::string out;
};
ShellResult RunShell(const std::string& script) {
  char path[] = "/tmp/stasis_ns_test_XXXXXX";
  int fd = mkstemp(path);
  ShellResult r;
  r.code = RunInJobNamespace([&](InitContext& ctx) {
    if (getpid() != 1) {
      ctx.reporter->Failed(Status::Error("init is not pid 1"));
      return 1;
    }
    pid_t child = fork();
    if (child == 0) {
      ResetSignalsForExec(ctx);
      dup2(fd, 1);
      execl("/bin/sh", "sh", "-c", script.c_str(), nullptr);
      _exit(127);
    }
    ctx.reporter->Started();
    int status = 0;
    waitpid(child, &status, 0);
    return ExitCodeFromWaitStatus(status);
  });
  close(fd);
  r.out = ReadFile(path);
  unlink(path);
  return r;
}

TEST(JobNamespace, FirstChildIsPid2AndUidIsUnchanged) {
  SKIP_WITHOUT_USERNS();
  ShellResult r = RunShell(
      "echo $$; grep -E '^(Uid|Gid|NSpid):' /proc/self/status; cat /proc/1/cmdline | tr '\\0' ' ';"
      " echo; ls /proc | grep -cE '^[0-9]+$'");
  ASSERT_TRUE(r.code.ok()) << r.code.status().message();
  EXPECT_EQ(*r.code, 0) << r.out;
  std::istringstream in(r.out);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "2") << r.out;
  std::string uid = std::to_string(getuid()), gid = std::to_string(getgid());
  EXPECT_NE(r.out.find("Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("Gid:\t" + gid + "\t" + gid), std::string::npos) << r.out;
  // NSpid shows one pid per level; the last is the namespace's own: 2 (sh ran as pid 2,
  // grep is its child -- at least 3).
  EXPECT_NE(r.out.find("NSpid:\t"), std::string::npos) << r.out;
  // Only the namespace's processes are visible in its /proc: init, sh, ls, grep.
  std::string last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  EXPECT_LE(std::stoi(last), 5) << r.out;
}

TEST(JobNamespace, ExitCodesPropagate) {
  SKIP_WITHOUT_USERNS();
  ShellResult r = RunShell("exit 42");
  ASSERT_TRUE(r.code.ok()) << r.code.status().message();
  EXPECT_EQ(*r.code, 42);
  r = RunShell("kill -9 $$");
  ASSERT_TRUE(r.code.ok()) << r.code.status().message();
  EXPECT_EQ(*r.code, 128 + SIGKILL);
}

TEST(JobNamespace, FailureBeforeStartIsAnError) {
  SKIP_WITHOUT_USERNS();
  auto r = RunInJobNamespace([](InitContext& ctx) {
    ctx.reporter->Failed(Status::Error("image.stasis: block 3: checksum mismatch"));
    return 1;
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "image.stasis: block 3: checksum mismatch");

  r = RunInJobNamespace([](InitContext&) { return 3; });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("status 3 before the program started"), std::string::npos)
      << r.status().message();
}

TEST(JobNamespace, ReportsOuterPid) {
  SKIP_WITHOUT_USERNS();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  auto r = RunInJobNamespace([&](InitContext& ctx) {
    ctx.reporter->Started();
    pid_t pids[2] = {ctx.outer_pid, ctx.launcher_pid};
    return write(fds[1], pids, sizeof(pids)) == sizeof(pids) ? 0 : 1;
  });
  close(fds[1]);
  pid_t pids[2] = {};
  ASSERT_EQ(read(fds[0], pids, sizeof(pids)), static_cast<ssize_t>(sizeof(pids)));
  close(fds[0]);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, 0);
  EXPECT_GT(pids[0], 1);
  EXPECT_NE(pids[0], getpid());
  EXPECT_EQ(pids[1], getpid());
}

// The launcher gets SIGTERM by kill(2); init sees it on its signalfd.
TEST(JobNamespace, ForwardsSignalsToInit) {
  SKIP_WITHOUT_USERNS();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t launcher = fork();
  if (launcher == 0) {
    close(ready[0]);
    auto r = RunInJobNamespace([&](InitContext& ctx) {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      int sfd = signalfd(-1, &set, 0);
      ctx.reporter->Started();
      (void)!write(ready[1], "r", 1);
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof(si)) != sizeof(si)) return 1;
      return si.ssi_signo == SIGTERM ? 77 : 2;
    });
    _exit(r.ok() ? *r : 99);
  }
  close(ready[1]);
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  kill(launcher, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(launcher, &status, 0), launcher);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 77);
}

// SIGKILL of the launcher takes the whole job down (PR_SET_PDEATHSIG).
TEST(JobNamespace, JobDiesWithKilledLauncher) {
  SKIP_WITHOUT_USERNS();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t launcher = fork();
  if (launcher == 0) {
    close(ready[0]);
    auto r = RunInJobNamespace([&](InitContext& ctx) {
      ctx.reporter->Started();
      (void)!write(ready[1], &ctx.outer_pid, sizeof(ctx.outer_pid));
      for (;;) pause();
      return 0;
    });
    _exit(r.ok() ? *r : 99);
  }
  close(ready[1]);
  pid_t init_outer = 0;
  ASSERT_EQ(read(ready[0], &init_outer, sizeof(init_outer)),
            static_cast<ssize_t>(sizeof(init_outer)));
  close(ready[0]);
  ASSERT_EQ(kill(init_outer, 0), 0);
  kill(launcher, SIGKILL);
  waitpid(launcher, nullptr, 0);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    std::string stat = ReadFile("/proc/" + std::to_string(init_outer) + "/stat");
    size_t paren = stat.rfind(')');
    gone = stat.empty() || (paren != std::string::npos && stat.substr(paren + 2, 1) == "Z");
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "init (outer pid " << init_outer << ") survived its launcher";
}

}  // namespace
}  // namespace stasis::job
