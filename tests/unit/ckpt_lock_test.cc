// The checkpoint directory lock (src/cli/ckpt_lock.h): one job per
// directory, a message naming the holder, and a lock file that cannot be
// turned against another file (symlink, hard link, other owner).
#include "cli/ckpt_lock.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace stasis::cli {
namespace {

class CkptLock : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/stasis-lock-test-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    dir_ = t;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string Lock() const { return dir_ + "/.stasis.lock"; }
  std::string dir_;
};

TEST_F(CkptLock, SecondLockerFailsWithAClearError) {
  ::setenv("SLURM_JOB_ID", "4711", 1);
  auto first = LockCkptDir(dir_, "launch", "127.0.0.1:7779");
  ::unsetenv("SLURM_JOB_ID");
  ASSERT_TRUE(first.ok()) << first.status().message();
  // flock(2) locks belong to the open file description: a second open in
  // the same process conflicts like another process would.
  std::optional<LockHolder> holder;
  auto second = LockCkptDir(dir_, "restart", "127.0.0.1:7780", &holder, /*wait_ms=*/0);
  ASSERT_FALSE(second.ok());
  const std::string msg = second.status().message();
  EXPECT_NE(msg.find("checkpoint directory " + dir_ + " is in use by another job"), std::string::npos) << msg;
  EXPECT_NE(msg.find("stasis launch, pid " + std::to_string(getpid()) + " on " + ThisHost() +
                     " (Slurm job 4711), coordinator 127.0.0.1:7779"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("use another --ckptdir"), std::string::npos) << msg;
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->pid, getpid());
  EXPECT_EQ(holder->host, ThisHost());
  EXPECT_EQ(holder->command, "launch");
  EXPECT_EQ(holder->coordinator, "127.0.0.1:7779");
  // The failed attempt did not overwrite the holder's line.
  std::ifstream in(Lock());
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind(std::to_string(getpid()) + " 4711 ", 0), 0u) << line;
}

TEST_F(CkptLock, ReleasedWhenTheHolderCloses) {
  {
    auto lock = LockCkptDir(dir_, "run", "");
    ASSERT_TRUE(lock.ok()) << lock.status().message();
  }
  auto again = LockCkptDir(dir_, "run", "");
  EXPECT_TRUE(again.ok()) << again.status().message();
}

TEST_F(CkptLock, ReleasedWhenTheHolderExits) {
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto lock = LockCkptDir(dir_, "run", "");
    char c = lock.ok() ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(2);
    if (read(go[0], &c, 1) != 1) _exit(3);
    _exit(0);  // exits without unlocking: the kernel releases the lock
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  auto busy = LockCkptDir(dir_, "run", "", nullptr, /*wait_ms=*/0);
  ASSERT_FALSE(busy.ok());
  EXPECT_NE(busy.status().message().find("stasis run, pid " + std::to_string(pid) + " on "), std::string::npos)
      << busy.status().message();
  ASSERT_EQ(write(go[1], "x", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto after = LockCkptDir(dir_, "run", "");
  EXPECT_TRUE(after.ok()) << after.status().message();
  for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);
}

TEST_F(CkptLock, UnusableDirectoryIsAnError) {
  auto lock = LockCkptDir(dir_ + "/missing", "run", "");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find("cannot open the lock file " + dir_ + "/missing/.stasis.lock"),
            std::string::npos)
      << lock.status().message();
}

TEST_F(CkptLock, SymlinkIsNotFollowed) {
  const std::string victim = dir_ + "/victim";
  { std::ofstream(victim) << "precious\n"; }
  ASSERT_EQ(::symlink(victim.c_str(), Lock().c_str()), 0);
  auto lock = LockCkptDir(dir_, "launch", "");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find("refusing the lock file " + Lock() + ": it is a symbolic link"),
            std::string::npos)
      << lock.status().message();
  std::ifstream in(victim);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "precious");  // not truncated, not overwritten
}

TEST_F(CkptLock, DanglingSymlinkCreatesNothing) {
  const std::string target = dir_ + "/created-through-link";
  ASSERT_EQ(::symlink(target.c_str(), Lock().c_str()), 0);
  EXPECT_FALSE(LockCkptDir(dir_, "launch", "").ok());
  struct stat st;
  EXPECT_NE(::lstat(target.c_str(), &st), 0);
}

TEST_F(CkptLock, HardLinkIsRefused) {
  const std::string other = dir_ + "/other";
  { std::ofstream(other) << "precious\n"; }
  ASSERT_EQ(::link(other.c_str(), Lock().c_str()), 0);
  auto lock = LockCkptDir(dir_, "launch", "");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find("hard links"), std::string::npos) << lock.status().message();
}

TEST_F(CkptLock, DirectoryAsLockFileIsRefused) {
  ASSERT_EQ(::mkdir(Lock().c_str(), 0700), 0);
  EXPECT_FALSE(LockCkptDir(dir_, "launch", "").ok());
}

TEST_F(CkptLock, LockFileOfAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a file owned by another user";
  { std::ofstream(Lock()) << ""; }
  ASSERT_EQ(::chown(Lock().c_str(), 65534, 65534), 0);
  auto lock = LockCkptDir(dir_, "launch", "");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find("belongs to uid 65534"), std::string::npos) << lock.status().message();
}

}  // namespace
}  // namespace stasis::cli
