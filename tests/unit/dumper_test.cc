// Tests of src/checkpoint/dumper: DumpProcess on a forked child that holds a
// hand-made agent ControlBlock (no agent library needed), and its failure
// paths (no temp file left, errors name the pid).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "agent/control_block.h"
#include "checkpoint/dumper.h"
#include "image/reader.h"

namespace stasis::checkpoint {
namespace {

// A forked child whose ControlBlock (at the same address as in the parent,
// mapped before the fork) lists its one thread as parked.
class ChildWithControlBlock {
 public:
  ChildWithControlBlock() {
    void* mem = mmap(nullptr, sizeof(agent::ControlBlock), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) std::abort();
    cb_ = static_cast<agent::ControlBlock*>(mem);
    cb_->magic = agent::kControlBlockMagic;
    cb_->version = agent::kControlBlockVersion;
    cb_->generation = 3;
    cb_->socket_fd = -1;
    cb_->n_threads = 1;
    cb_->brk = reinterpret_cast<uint64_t>(sbrk(0));
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      prctl(PR_SET_NAME, "stasis-dumpee");
      int frame = 0;  // any address on the stack stands in for the sigframe
      cb_->threads[0].tid = getpid();
      cb_->threads[0].sigframe_sp = reinterpret_cast<uint64_t>(&frame);
      // Something recognisable in memory that is not in the parent.
      static char marker[4096] __attribute__((aligned(4096)));
      std::memcpy(marker, "stasis-dumper-test-marker", 26);
      if (write(p[1], "x", 1) != 1) _exit(1);
      for (;;) pause();
    }
    close(p[1]);
    char c;
    ready_ = read(p[0], &c, 1) == 1;
    close(p[0]);
  }
  ~ChildWithControlBlock() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    munmap(cb_, sizeof(agent::ControlBlock));
  }
  pid_t pid() const { return pid_; }
  bool ready() const { return ready_; }
  uint64_t cb_addr() const { return reinterpret_cast<uint64_t>(cb_); }

 private:
  agent::ControlBlock* cb_ = nullptr;
  pid_t pid_ = -1;
  bool ready_ = false;
};

std::string TempDir() {
  char tmpl[] = "/tmp/stasis-dumper-test-XXXXXX";
  return mkdtemp(tmpl) ? tmpl : "";
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

TEST(Dumper, DumpsAForkedChild) {
  ChildWithControlBlock child;
  ASSERT_TRUE(child.ready());
  const std::string dir = TempDir();
  DumpRequest req;
  req.pid = child.pid();
  req.control_block = child.cb_addr();
  req.path = dir + "/ckpt.stasis";
  req.generation = 3;
  req.job_id = "job-test";
  auto result = DumpProcess(req);
  ASSERT_TRUE(result.ok()) << result.status().message();
  EXPECT_GT(result->image_size, 0u);
  EXPECT_GT(result->memory_bytes, 0u);
  EXPECT_GT(result->stored_pages, 0u);
  EXPECT_EQ(result->program, "stasis-dumpee");
  EXPECT_EQ(result->ppid, getpid());
  EXPECT_GE(result->seconds, 0.0);
  EXPECT_TRUE(Exists(req.path));
  EXPECT_FALSE(Exists(req.path + ".tmp"));

  auto reader = image::ImageReader::Open(req.path);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const image::ProcessImage& img = (*reader)->metadata();
  EXPECT_EQ(img.pid, child.pid());
  EXPECT_EQ(img.generation, 3u);
  EXPECT_EQ(img.job_id, "job-test");
  ASSERT_EQ(img.threads.size(), 1u);
  EXPECT_EQ(img.threads[0].tid, child.pid());
  EXPECT_EQ(img.threads[0].comm, "stasis-dumpee");
  EXPECT_EQ(img.agent.control_block, child.cb_addr());
  EXPECT_FALSE(img.areas.empty());
  EXPECT_FALSE(img.fds.empty());
  EXPECT_GT(img.checkpoint_time, 0.0);
  auto summary = (*reader)->Verify();
  ASSERT_TRUE(summary.ok()) << summary.status().message();
  EXPECT_EQ(summary->stored_pages, result->stored_pages);
  unlink(req.path.c_str());
  rmdir(dir.c_str());
}

TEST(Dumper, BadControlBlockLeavesNothing) {
  ChildWithControlBlock child;
  ASSERT_TRUE(child.ready());
  const std::string dir = TempDir();
  DumpRequest req;
  req.pid = child.pid();
  req.control_block = child.cb_addr() + 8;  // not where the magic is
  req.path = dir + "/ckpt.stasis";
  auto result = DumpProcess(req);
  ASSERT_FALSE(result.ok());
  const std::string msg = result.status().message();
  EXPECT_NE(msg.find("pid " + std::to_string(child.pid())), std::string::npos) << msg;
  EXPECT_NE(msg.find("magic"), std::string::npos) << msg;
  EXPECT_FALSE(Exists(req.path));
  EXPECT_FALSE(Exists(req.path + ".tmp"));

  req.control_block = 0;
  EXPECT_FALSE(DumpProcess(req).ok());

  req.control_block = child.cb_addr();
  req.generation = 4;  // the agent quiesced for generation 3
  result = DumpProcess(req);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("checkpoint 3"), std::string::npos)
      << result.status().message();
  rmdir(dir.c_str());
}

TEST(Dumper, UnwritableDirectoryIsReported) {
  ChildWithControlBlock child;
  ASSERT_TRUE(child.ready());
  DumpRequest req;
  req.pid = child.pid();
  req.control_block = child.cb_addr();
  req.path = "/nonexistent/stasis-dir/ckpt.stasis";
  auto result = DumpProcess(req);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("/nonexistent/stasis-dir"), std::string::npos)
      << result.status().message();
}

TEST(Dumper, MissingProcess) {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);  // reaped: the pid no longer exists
  DumpRequest req;
  req.pid = pid;
  req.control_block = 0x1000;
  req.path = "/tmp/stasis-dumper-never.stasis";
  auto result = DumpProcess(req);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("pid " + std::to_string(pid)), std::string::npos);
  EXPECT_FALSE(Exists(req.path + ".tmp"));
}

}  // namespace
}  // namespace stasis::checkpoint
