// Job-unique pid ranges (src/job/pid_range.h): stable bases inside the
// portable range, and ns_last_pid really moves the next pid in a job's
// pid namespace.
#include "job/pid_range.h"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "job/namespace.h"

namespace stasis::job {
namespace {

TEST(JobPidRange, BaseIsStableAndInRange) {
  EXPECT_EQ(JobPidBase("0123abcd"), JobPidBase("0123abcd"));
  std::set<pid_t> bases;
  for (int i = 0; i < 200; ++i) {
    pid_t b = JobPidBase(std::to_string(i * 7919) + "job");
    EXPECT_GE(b, kPidBaseMin);
    EXPECT_LT(b + kPidRoom, 32768);
    bases.insert(b);
  }
  EXPECT_GT(bases.size(), 190u) << "job ids should spread over the range";
}

TEST(JobPidRange, LastPidAfterRestore) {
  EXPECT_EQ(LastPidAfterRestore(5000, {2, 3, 7}), 4999);  // an image from before ranges
  EXPECT_EQ(LastPidAfterRestore(5000, {5000, 5003, 5001}), 5003);
  EXPECT_EQ(LastPidAfterRestore(5000, {}), 4999);
}

TEST(JobPidRange, NextForkInTheJobNamespaceGetsTheBase) {
  pid_t probe = fork();
  if (probe == 0) _exit(unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
  int st = 0;
  waitpid(probe, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) GTEST_SKIP() << "unprivileged user namespaces unavailable";

  const pid_t base = JobPidBase("feedbeef");
  StatusOr<int> code = RunInJobNamespace([&](InitContext& ctx) {
    Status s = SetLastPid(base - 1);
    if (!s.ok()) {
      ctx.reporter->Failed(s);
      return 1;
    }
    ctx.reporter->Started();
    pid_t first = fork();
    if (first == 0) _exit(0);
    pid_t second = fork();
    if (second == 0) _exit(0);
    waitpid(first, nullptr, 0);
    waitpid(second, nullptr, 0);
    return first == base && second == base + 1 ? 0 : 1;
  });
  ASSERT_TRUE(code.ok()) << code.status().message();
  EXPECT_EQ(*code, 0) << "children did not get pids " << base << ", " << base + 1;
}

}  // namespace
}  // namespace stasis::job
