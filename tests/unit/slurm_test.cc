// Slurm helpers of `stasis run` (src/cli/slurm.h): the --time format parser
// and the checkpoint directory lock.
#include "cli/slurm.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace stasis::cli::slurm {
namespace {

double Parse(const std::string& text) {
  auto d = ParseDuration(text);
  EXPECT_TRUE(d.ok()) << text << ": " << d.status().message();
  return d.ok() ? *d : -1;
}

TEST(SlurmDuration, AllSbatchTimeForms) {
  EXPECT_EQ(Parse("45"), 45 * 60);                             // MM
  EXPECT_EQ(Parse("0"), 0);
  EXPECT_EQ(Parse("90"), 90 * 60);                             // minutes may exceed 59
  EXPECT_EQ(Parse("10:30"), 10 * 60 + 30);                     // MM:SS
  EXPECT_EQ(Parse("1:02:03"), 3600 + 2 * 60 + 3);              // HH:MM:SS
  EXPECT_EQ(Parse("2-5"), 2 * 86400 + 5 * 3600);               // D-HH
  EXPECT_EQ(Parse("0-0:45"), 45 * 60);                         // D-HH:MM (Gizmo's SLURM_CHECKPOINT)
  EXPECT_EQ(Parse("1-02:03"), 86400 + 2 * 3600 + 3 * 60);
  EXPECT_EQ(Parse("0-0:00:10"), 10);                           // D-HH:MM:SS
  EXPECT_EQ(Parse("3-12:30:15"), 3 * 86400 + 12 * 3600 + 30 * 60 + 15);
  EXPECT_EQ(Parse(" 00:02:00\n"), 120);                        // as read from a file or squeue
}

TEST(SlurmDuration, UnitSuffixes) {
  EXPECT_EQ(Parse("90s"), 90);
  EXPECT_EQ(Parse("5m"), 300);
  EXPECT_EQ(Parse("2h"), 7200);
}

TEST(SlurmDuration, BadInputIsAnErrorThatQuotesIt) {
  for (const char* bad : {"", " ", "abc", "1:2:3:4", "1-2:3:4:5", "-5", "5-", "1::2", ":30", "10:", "1.5",
                          "1-a", "x-1", "5x", "s", "1-2-3", "+5", "1234567890"}) {
    auto d = ParseDuration(bad);
    EXPECT_FALSE(d.ok()) << "'" << bad << "' parsed as " << (d.ok() ? *d : 0);
    if (!d.ok()) {
      EXPECT_NE(d.status().message().find(std::string("'") + bad + "'"), std::string::npos) << d.status().message();
      EXPECT_NE(d.status().message().find("D-H:M:S"), std::string::npos) << d.status().message();
    }
  }
}

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
  std::string dir_;
};

TEST_F(CkptLock, SecondLockerFailsWithAClearError) {
  ::setenv("SLURM_JOB_ID", "4711", 1);
  auto first = LockCkptDir(dir_);
  ::unsetenv("SLURM_JOB_ID");
  ASSERT_TRUE(first.ok()) << first.status().message();
  // flock(2) locks belong to the open file description: a second open in
  // the same process conflicts like another process would.
  auto second = LockCkptDir(dir_);
  ASSERT_FALSE(second.ok());
  const std::string msg = second.status().message();
  EXPECT_NE(msg.find("checkpoint directory " + dir_ + " is in use by another stasis run"), std::string::npos) << msg;
  char host[128] = {};
  gethostname(host, sizeof host - 1);
  EXPECT_NE(msg.find("(pid " + std::to_string(getpid()) + ", Slurm job 4711 on " + host + ")"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("use another --ckptdir"), std::string::npos) << msg;
  // The failed attempt did not overwrite the holder's line.
  std::ifstream in(dir_ + "/.stasis.lock");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind(std::to_string(getpid()) + " 4711 ", 0), 0u) << line;
}

TEST_F(CkptLock, ReleasedWhenTheHolderCloses) {
  {
    auto lock = LockCkptDir(dir_);
    ASSERT_TRUE(lock.ok()) << lock.status().message();
  }
  auto again = LockCkptDir(dir_);
  EXPECT_TRUE(again.ok()) << again.status().message();
}

TEST_F(CkptLock, ReleasedWhenTheHolderExits) {
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto lock = LockCkptDir(dir_);
    char c = lock.ok() ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(2);
    if (read(go[0], &c, 1) != 1) _exit(3);
    _exit(0);  // exits without unlocking: the kernel releases the lock
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  auto busy = LockCkptDir(dir_);
  ASSERT_FALSE(busy.ok());
  EXPECT_NE(busy.status().message().find("(pid " + std::to_string(pid) + ", Slurm job - on "), std::string::npos)
      << busy.status().message();
  ASSERT_EQ(write(go[1], "x", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto after = LockCkptDir(dir_);
  EXPECT_TRUE(after.ok()) << after.status().message();
  for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);
}

TEST_F(CkptLock, UnusableDirectoryIsAnError) {
  auto lock = LockCkptDir(dir_ + "/missing");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find("cannot open the lock file " + dir_ + "/missing/.stasis.lock"),
            std::string::npos)
      << lock.status().message();
}

}  // namespace
}  // namespace stasis::cli::slurm
