// Tests of src/state/threads: converting agent ThreadRecords of a forked
// child (one and two threads) and filling the blob's thread table.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <memory>
#include <set>

#include "state/threads.h"

namespace stasis::state {
namespace {

int g_named[2];  // the worker writes a byte once it has set its name

// A child (one or two threads, named) that sleeps until destroyed.
class PausedChild {
 public:
  explicit PausedChild(bool second_thread) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      prctl(PR_SET_NAME, "stasis-leader");
      if (second_thread) {
        if (pipe(g_named) != 0) _exit(1);
        pthread_t t;
        pthread_create(&t, nullptr, [](void*) -> void* {
          prctl(PR_SET_NAME, "stasis-worker");
          (void)!write(g_named[1], "n", 1);
          for (;;) pause();
        }, nullptr);
        char n;
        if (read(g_named[0], &n, 1) != 1) _exit(1);
      }
      if (write(p[1], "x", 1) != 1) _exit(1);
      for (;;) pause();
    }
    close(p[1]);
    char c;
    ready_ = read(p[0], &c, 1) == 1;
    close(p[0]);
  }
  ~PausedChild() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }
  bool ready() const { return ready_; }
  std::set<int> Tids() const {
    std::set<int> tids;
    std::string dir = "/proc/" + std::to_string(pid_) + "/task";
    DIR* d = opendir(dir.c_str());
    while (struct dirent* e = d ? readdir(d) : nullptr) {
      if (e->d_name[0] != '.') tids.insert(atoi(e->d_name));
    }
    if (d) closedir(d);
    return tids;
  }

 private:
  pid_t pid_ = -1;
  bool ready_ = false;
};

void FillRecord(agent::ThreadRecord* r, int tid) {
  std::memset(r, 0, sizeof *r);
  r->tid = tid;
  r->sigframe_sp = 0x7fff0000 + static_cast<uint64_t>(tid);
  r->fs_base = 0x1000 + static_cast<uint64_t>(tid);
  r->clear_child_tid = 0x2000;
  r->robust_list = 0x3000;
  r->robust_list_len = 24;
  r->rseq_addr = 0x4000;
  r->rseq_len = 32;
  r->rseq_sig = 0x53053053;
  r->sigmask = 1ull << 5;
}

TEST(ThreadsCapture, SingleThread) {
  PausedChild child(false);
  ASSERT_TRUE(child.ready());
  auto target = ProcTarget::Open(child.pid());
  ASSERT_TRUE(target.ok()) << target.status().message();
  auto cb = std::make_unique<agent::ControlBlock>();
  cb->n_threads = 1;
  FillRecord(&cb->threads[0], child.pid());
  cb->threads[0].n_pending = 1;
  cb->threads[0].pending[0].signo = SIGUSR1;
  cb->threads[0].pending[0].siginfo[0] = SIGUSR1;
  auto threads = CaptureThreads(*target, *cb);
  ASSERT_TRUE(threads.ok()) << threads.status().message();
  ASSERT_EQ(threads->size(), 1u);
  const image::Thread& t = (*threads)[0];
  EXPECT_EQ(t.tid, child.pid());
  EXPECT_EQ(t.comm, "stasis-leader");
  EXPECT_EQ(t.sigframe_sp, cb->threads[0].sigframe_sp);
  EXPECT_EQ(t.fs_base, cb->threads[0].fs_base);
  EXPECT_EQ(t.robust_list_len, 24u);
  EXPECT_EQ(t.rseq_sig, 0x53053053u);
  EXPECT_EQ(t.sigmask, 1ull << 5);
  ASSERT_EQ(t.pending.size(), 1u);
  EXPECT_EQ(t.pending[0].signo, SIGUSR1);
  EXPECT_EQ(t.pending[0].siginfo[0], SIGUSR1);

  // The leader must come first.
  cb->threads[0].tid = child.pid() + 100000;
  auto bad = CaptureThreads(*target, *cb);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("leader"), std::string::npos) << bad.status().message();
  cb->n_threads = 0;
  EXPECT_FALSE(CaptureThreads(*target, *cb).ok());
}

TEST(ThreadsCapture, EveryThreadMustBeRecorded) {
  PausedChild child(true);
  ASSERT_TRUE(child.ready());
  std::set<int> tids = child.Tids();
  ASSERT_EQ(tids.size(), 2u);
  tids.erase(child.pid());
  const int worker = *tids.begin();
  auto target = ProcTarget::Open(child.pid());
  ASSERT_TRUE(target.ok());
  auto cb = std::make_unique<agent::ControlBlock>();
  cb->n_threads = 1;
  FillRecord(&cb->threads[0], child.pid());
  auto missing = CaptureThreads(*target, *cb);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(std::to_string(worker)), std::string::npos)
      << missing.status().message();

  cb->n_threads = 2;
  FillRecord(&cb->threads[1], worker);
  auto threads = CaptureThreads(*target, *cb);
  ASSERT_TRUE(threads.ok()) << threads.status().message();
  ASSERT_EQ(threads->size(), 2u);
  EXPECT_EQ((*threads)[1].tid, worker);
  EXPECT_EQ((*threads)[1].comm, "stasis-worker");

  cb->threads[1].tid = child.pid();  // recorded twice
  EXPECT_FALSE(CaptureThreads(*target, *cb).ok());
}

TEST(ThreadsPrepare, FillsBlobThreads) {
  image::ProcessImage img;
  img.pid = 77;
  image::Thread t;
  t.tid = 77;
  t.comm = "a-very-long-thread-name";
  t.sigframe_sp = 0x7000;
  t.fs_base = 0x8000;
  t.rseq_addr = 0x9000;
  t.rseq_len = 32;
  image::PendingSignal p;
  p.signo = SIGUSR2;
  p.siginfo[4] = 9;
  t.pending = {p};
  img.threads.push_back(t);
  t.tid = 78;
  t.pending.clear();
  img.threads.push_back(t);

  auto args = std::make_unique<restore::BlobArgs>();
  args->threads[0].stack_top = 0xabc000;  // set by the caller, kept
  ASSERT_TRUE(PrepareThreads(img, args.get()).ok());
  EXPECT_EQ(args->n_threads, 2);
  EXPECT_EQ(args->threads[0].tid, 77);
  EXPECT_EQ(args->threads[0].stack_top, 0xabc000u);
  EXPECT_STREQ(args->threads[0].comm, "a-very-long-thr");
  EXPECT_EQ(args->threads[0].sigframe_sp, 0x7000u);
  EXPECT_EQ(args->threads[0].fs_base, 0x8000u);
  EXPECT_EQ(args->threads[0].rseq_len, 32u);
  ASSERT_EQ(args->threads[0].n_pending, 1);
  EXPECT_EQ(args->threads[0].pending[0].signo, SIGUSR2);
  EXPECT_EQ(args->threads[0].pending[0].siginfo[4], 9);
  EXPECT_EQ(args->threads[1].tid, 78);
  EXPECT_EQ(args->threads[1].n_pending, 0);

  img.threads[0].tid = 79;  // leader must be first
  EXPECT_FALSE(PrepareThreads(img, args.get()).ok());
  img.threads[0].tid = 77;
  img.threads.resize(restore::kBlobMaxThreads + 1, t);
  Status st = PrepareThreads(img, args.get());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("1025"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace stasis::state
