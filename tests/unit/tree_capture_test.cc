// Capture side of process trees: the stat fields the plan needs, unreaped
// children found in /proc, and the image codec's "zombies" key.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <unistd.h>

#include "image/codec.h"
#include "state/pipes.h"
#include "state/files.h"
#include "state/process.h"

namespace stasis {
namespace {

std::string StatLine(int n_fields, const char* state) {
  std::string s = "77 (x) y) ";
  for (int n = 3; n <= n_fields; ++n) s += (n == 3 ? std::string(state) : std::to_string(n)) + " ";
  s.back() = '\n';
  return s;
}

TEST(TreeCapture, StatStateAndExitCode) {
  auto f = state::ParseStatFields(StatLine(52, "Z"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->state, 'Z');
  EXPECT_EQ(f->exit_code, 52);
  EXPECT_EQ(f->pgrp, 5);
  EXPECT_EQ(f->session, 6);
  // Kernels before 3.5 have no field 52: exit code 0.
  f = state::ParseStatFields(StatLine(51, "S"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->exit_code, 0);
}

TEST(TreeCapture, FindsUnreapedChildrenWithTheirStatus) {
  pid_t exited = fork();
  if (exited == 0) _exit(7);
  pid_t killed = fork();
  if (killed == 0) {
    for (;;) pause();
  }
  ASSERT_GT(exited, 0);
  ASSERT_GT(killed, 0);
  kill(killed, SIGTERM);
  siginfo_t si;
  ASSERT_EQ(waitid(P_PID, static_cast<id_t>(exited), &si, WEXITED | WNOWAIT), 0);
  ASSERT_EQ(waitid(P_PID, static_cast<id_t>(killed), &si, WEXITED | WNOWAIT), 0);

  auto z = state::CaptureZombies(getpid());
  ASSERT_TRUE(z.ok()) << z.status().message();
  std::map<int32_t, int32_t> got;
  for (const auto& c : *z) got[c.pid] = c.exit_status;
  ASSERT_EQ(got.count(exited), 1u);
  ASSERT_EQ(got.count(killed), 1u);
  EXPECT_TRUE(WIFEXITED(got[exited]));
  EXPECT_EQ(WEXITSTATUS(got[exited]), 7);
  EXPECT_TRUE(WIFSIGNALED(got[killed]));
  EXPECT_EQ(WTERMSIG(got[killed]), SIGTERM);

  int st;
  waitpid(exited, &st, 0);
  waitpid(killed, &st, 0);
  z = state::CaptureZombies(getpid());
  ASSERT_TRUE(z.ok());
  for (const auto& c : *z) EXPECT_TRUE(c.pid != exited && c.pid != killed);
  EXPECT_FALSE(state::CaptureZombies(getpid(), "/nonexistent-proc").ok());
}

TEST(TreeCapture, StdioAliasIsRelativeToTheJobsStdio) {
  // Our own stdio plays the job's (the supervisor's).
  char path[] = "/tmp/stasis-tree-capture-XXXXXX";
  int file = mkstemp(path);
  ASSERT_GE(file, 0);
  unlink(path);
  int copy_of_2 = dup(2);
  ASSERT_GE(copy_of_2, 0);
  image::ProcessImage img;
  image::FileDescriptor redirected;  // was the process's stdout, not the job's
  redirected.fd = file;
  redirected.stdio_alias = 1;
  image::FileDescriptor job_stderr;  // the job's stderr, captured as alias 1 (2>&1 style)
  job_stderr.fd = copy_of_2;
  job_stderr.stdio_alias = 2;
  image::FileDescriptor plain;
  plain.fd = file;
  img.fds = {redirected, job_stderr, plain};
  state::RelateStdioToJob(getpid(), getpid(), &img);
  EXPECT_EQ(img.fds[0].stdio_alias, -1);
  EXPECT_EQ(img.fds[1].stdio_alias, 2);
  EXPECT_EQ(img.fds[2].stdio_alias, -1);
  close(file);
  close(copy_of_2);
}

TEST(TreeCapture, PipeInodeAndContents) {
  EXPECT_EQ(state::PipeInode("pipe:[1234]"), 1234u);
  EXPECT_EQ(state::PipeInode("socket:[1234]"), 0u);
  EXPECT_EQ(state::PipeInode("pipe:[12x]"), 0u);
  // Our own pipe, read through /proc/self: bytes copied, not consumed.
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(write(p[1], "abc\n", 4), 4);
  auto target = state::ProcTarget::Open(getpid());
  ASSERT_TRUE(target.ok()) << target.status().message();
  image::FileDescriptor f;
  f.fd = p[0];
  f.kind = image::FileDescriptor::Kind::kPipe;
  f.path = "pipe:[" + std::to_string(state::PipeInode(*state::ReadLink("/proc/self/fd/" + std::to_string(p[0])))) + "]";
  auto pipes = state::CapturePipes(*target, {f});
  ASSERT_TRUE(pipes.ok()) << pipes.status().message();
  ASSERT_EQ(pipes->size(), 1u);
  EXPECT_EQ(std::string((*pipes)[0].bytes.begin(), (*pipes)[0].bytes.end()), "abc\n");
  char buf[8];
  EXPECT_EQ(read(p[0], buf, sizeof buf), 4);  // still there
  close(p[0]);
  close(p[1]);
}

TEST(TreeCapture, CodecKeepsZombiesAndReadsOldImages) {
  image::ProcessImage img;
  img.pid = 2;
  img.pgid = 2;
  img.sid = 0;
  img.zombies = {{4, 7 << 8}, {5, SIGTERM}};
  img.pipes = {{99, {1, 2, 3}}};
  auto back = image::MetadataFromJson(image::MetadataToJson(img));
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->zombies.size(), 2u);
  EXPECT_EQ(back->zombies[0].pid, 4);
  EXPECT_EQ(back->zombies[0].exit_status, 7 << 8);
  EXPECT_EQ(back->zombies[1].exit_status, SIGTERM);
  ASSERT_EQ(back->pipes.size(), 1u);
  EXPECT_EQ(back->pipes[0].inode, 99u);
  EXPECT_EQ(back->pipes[0].bytes, (std::vector<uint8_t>{1, 2, 3}));

  nlohmann::json old = image::MetadataToJson(img);
  old.erase("zombies");  // written before zombies and pipes were recorded
  old.erase("pipes");
  back = image::MetadataFromJson(old);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->zombies.empty());
  EXPECT_TRUE(back->pipes.empty());

  old["zombies"] = "nope";
  EXPECT_FALSE(image::MetadataFromJson(old).ok());
}

}  // namespace
}  // namespace stasis
