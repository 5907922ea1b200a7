// Quiescing a process: the checkpoint signal handler, parking on futexes, and
// the agent thread's loop that signals every thread (see control_block.h and
// docs/architecture.md, "Checkpoint flow").
//
// Everything in the handler is async-signal-safe (signal-safety(7)): raw
// system calls only.  Techniques: tgkill(2)/rt_tgsigqueueinfo(2) to reach one
// thread, futex(2) FUTEX_WAIT/WAKE to park, sigtimedwait(2) with a zero
// timeout to dequeue pending signals, arch_prctl(2) ARCH_GET_FS/GS,
// prctl(2) PR_GET_TID_ADDRESS, get_robust_list(2), rseq(2).
#include <asm/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "agent/agent_internal.h"
#include "common/raw_log.h"

// glibc >= 2.35 registers rseq itself and exports where (sys/rseq.h).  Weak,
// so the agent still loads on an older libc (then both are absent).
extern "C" {
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));
}

namespace stasis::agent {
namespace {

constexpr uint32_t kRseqSig = 0x53053053;  // x86 RSEQ_SIG (glibc bits/rseq.h)
constexpr uint32_t kRseqOrigLen = 32;      // sizeof(struct rseq), ABI v0

// Process-directed pending signals, kept for the leader to requeue.
PendingSignalRecord g_shared_saved[kMaxSharedPending];
int g_n_shared_saved = 0;

// Agent thread's bookkeeping of the threads it signalled (static: small stack).
int g_signalled[kMaxThreads];
bool g_dead[kMaxThreads];

long FutexWait(volatile uint32_t* addr, uint32_t val, const struct timespec* rel) {
  return syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, rel, nullptr, 0);
}
void FutexWake(volatile uint32_t* addr, int n) {
  syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
}

int RawGetpid() { return static_cast<int>(syscall(SYS_getpid)); }

// Dequeues pending signals named in `key` of the status file `path` (SigPnd:
// this thread's queue, ShdPnd: the process's).  sigtimedwait takes from the
// calling thread's queue before the shared one, so a caller wanting only the
// shared queue empties its own first.  Standard signals queue at most once;
// real-time ones may queue several times, so those are re-checked.
int DequeuePending(const char* path, const char* key, PendingSignalRecord* out, int max) {
  uint64_t mask = 0;
  if (!ReadStatusMask(path, key, &mask)) return 0;
  int n = 0;
  for (int sig = 1; sig <= 64 && mask != 0; ++sig) {
    uint64_t bit = 1ull << (sig - 1);
    if (!(mask & bit) || sig == g.sigckpt || sig == SIGKILL || sig == SIGSTOP) continue;
    // A deferred signal stays queued in the kernel, out of the image: it is
    // delivered after a resume (and asks for a checkpoint then), dropped by
    // --kill, and a restarted process never acts on a signal its previous
    // run received (it would stop again at once).
    if (IsDeferredSignal(sig)) continue;
    for (;;) {
      if (n >= max) {
        RawLog("agent: more than %d pending signals in %s; the rest stay queued (not in the image)",
               max, key);
        return n;
      }
      uint64_t set = bit;
      siginfo_t si;
      struct timespec zero = {0, 0};
      long r = syscall(SYS_rt_sigtimedwait, &set, &si, &zero, 8);
      if (r != sig) break;
      out[n].signo = sig;
      out[n].pad = 0;
      static_assert(sizeof(si) == sizeof(out[n].siginfo));
      memcpy(out[n].siginfo, &si, sizeof(si));
      ++n;
      if (sig < 32) break;
      if (!ReadStatusMask(path, key, &mask) || !(mask & bit)) break;
    }
  }
  return n;
}

// Requeues saved signals, to this thread (rt_tgsigqueueinfo) or to the
// process (rt_sigqueueinfo).  The kernel accepts a forged siginfo with
// si_code >= 0 only when the target id equals the caller's tid, so process-
// directed ones go through the leader; elsewhere fall back to kill(2), which
// keeps the signal but not its siginfo.
void Requeue(const PendingSignalRecord* recs, int n, bool to_process) {
  int pid = RawGetpid();
  int tid = RawGettid();
  for (int i = 0; i < n; ++i) {
    siginfo_t si;
    memcpy(&si, recs[i].siginfo, sizeof(si));
    long r = to_process ? syscall(SYS_rt_sigqueueinfo, pid, recs[i].signo, &si)
                        : syscall(SYS_rt_tgsigqueueinfo, pid, tid, recs[i].signo, &si);
    if (r != 0 && to_process) r = syscall(SYS_kill, pid, recs[i].signo);
    if (r != 0) RawLog("agent: cannot requeue signal %d (errno %d)", recs[i].signo, errno);
  }
}

// rseq area glibc registered for this thread, if any: it sits at
// fs_base + __rseq_offset; the kernel writes cpu_id (offset 4) >= 0 once it
// is registered (-1 uninitialised, -2 registration failed).  The length is
// confirmed by re-registering with the same arguments, which the kernel
// refuses with EBUSY when exactly that registration exists (and never
// changes anything then).
void RecordRseq(ThreadRecord* r) {
  r->rseq_addr = 0;
  r->rseq_len = 0;
  r->rseq_sig = 0;
  if (&__rseq_size == nullptr || &__rseq_offset == nullptr || __rseq_size == 0) return;
  uint64_t addr = r->fs_base + static_cast<uint64_t>(__rseq_offset);
  if (r->fs_base == 0) return;
  int32_t cpu_id = *reinterpret_cast<volatile int32_t*>(addr + 4);
  if (cpu_id < 0) return;
  uint32_t len = __rseq_size < kRseqOrigLen ? kRseqOrigLen : ((__rseq_size + 31) & ~31u);
  uint32_t candidates[2] = {len, kRseqOrigLen};
  for (uint32_t c : candidates) {
    long res = syscall(SYS_rseq, addr, c, 0, kRseqSig);
    if (res == -1 && errno == EBUSY) {
      r->rseq_addr = addr;
      r->rseq_len = c;
      r->rseq_sig = kRseqSig;
      return;
    }
  }
  // Registered, but not as we guessed (another library's rseq?): record
  // glibc's values and say so.
  r->rseq_addr = addr;
  r->rseq_len = len;
  r->rseq_sig = kRseqSig;
  RawLog("agent: tid %d: rseq registration at %lx not confirmed", r->tid, static_cast<unsigned long>(addr));
}

void FillRecord(ThreadRecord* r, int tid, ucontext_t* uc, const PendingSignalRecord* saved, int n) {
  r->tid = tid;
  r->n_pending = n;
  r->sigframe_sp = reinterpret_cast<uint64_t>(uc);
  unsigned long v = 0;
  syscall(SYS_arch_prctl, ARCH_GET_FS, &v);
  r->fs_base = v;
  v = 0;
  syscall(SYS_arch_prctl, ARCH_GET_GS, &v);
  r->gs_base = v;
  int* tid_addr = nullptr;
  syscall(SYS_prctl, PR_GET_TID_ADDRESS, &tid_addr, 0, 0, 0);
  r->clear_child_tid = reinterpret_cast<uint64_t>(tid_addr);
  void* head = nullptr;
  size_t len = 0;
  syscall(SYS_get_robust_list, 0, &head, &len);
  r->robust_list = reinterpret_cast<uint64_t>(head);
  r->robust_list_len = len;
  RecordRseq(r);
  uint64_t mask;
  memcpy(&mask, &uc->uc_sigmask, sizeof(mask));  // kernel sigset: first 64 signals
  r->sigmask = mask;
  for (int i = 0; i < n; ++i) r->pending[i] = saved[i];
}

// A non-agent thread: record, park until released, requeue, return.
void ParkThread(int tid, uint32_t token, ucontext_t* uc) {
  PendingSignalRecord saved[kMaxPendingPerThread];
  int n = DequeuePending("/proc/thread-self/status", "SigPnd:", saved, kMaxPendingPerThread);
  uint32_t seq = __atomic_load_n(&g.resume_seq, __ATOMIC_SEQ_CST);
  // Released (timeout) between the caller's token check and our seq read?
  // Then nobody would wake us: do not park.
  if (__atomic_load_n(&g.active_token, __ATOMIC_SEQ_CST) != token) {
    Requeue(saved, n, false);
    return;
  }
  int slot = __atomic_fetch_add(&g.next_slot, 1, __ATOMIC_SEQ_CST);
  if (slot >= kMaxThreads - 1) {  // the last record is the agent thread's
    __atomic_store_n(&g.overflow_tid, tid, __ATOMIC_SEQ_CST);
  } else {
    FillRecord(&g_cb.threads[slot], tid, uc, saved, n);
  }
  bool leader = tid == RawGetpid();
  if (leader) __atomic_store_n(&g.leader_parked, 1, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&g.parked, 1, __ATOMIC_SEQ_CST);
  FutexWake(&g.parked, 1);
  while (__atomic_load_n(&g.resume_seq, __ATOMIC_SEQ_CST) == seq) FutexWait(&g.resume_seq, seq, nullptr);
  Requeue(saved, n, false);
  if (leader && __atomic_exchange_n(&g.shared_requeue_pending, 0, __ATOMIC_SEQ_CST)) {
    Requeue(g_shared_saved, g_n_shared_saved, true);
  }
}

void ReleaseParked() {
  __atomic_store_n(&g.active_token, 0u, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&g.resume_seq, 1, __ATOMIC_SEQ_CST);
  FutexWake(&g.resume_seq, INT_MAX);
}

// The agent thread, in its own handler, after every other thread parked.
void AgentSelfCapture(int tid, ucontext_t* uc) {
  PendingSignalRecord own[kMaxPendingPerThread];
  int n_own = DequeuePending("/proc/thread-self/status", "SigPnd:", own, kMaxPendingPerThread);
  int n_sh = DequeuePending("/proc/self/status", "ShdPnd:", g_cb.shared_pending, kMaxSharedPending);
  g_cb.n_shared_pending = n_sh;
  int slot = __atomic_load_n(&g.next_slot, __ATOMIC_SEQ_CST);
  FillRecord(&g_cb.threads[slot], tid, uc, own, n_own);
  g_cb.n_threads = slot + 1;

  Message m;
  InitMessage(&m, MsgType::kQuiesced);
  m.n_threads = slot + 1;
  m.generation = g_cb.generation;
  SendMessage(m);
  for (;;) {  // still inside the handler: the process is stopped until kResume
    Message r;
    long k = syscall(SYS_recvfrom, g.sock, &r, sizeof(r), 0, nullptr, nullptr);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;  // supervisor gone: resume rather than hang the program
    if (k >= static_cast<long>(offsetof(Message, version)) + 4 && r.type == MsgType::kResume) break;
  }

  for (int i = 0; i < n_sh; ++i) g_shared_saved[i] = g_cb.shared_pending[i];
  g_n_shared_saved = n_sh;
  bool leader_will_requeue = n_sh > 0 && __atomic_load_n(&g.leader_parked, __ATOMIC_SEQ_CST);
  if (leader_will_requeue) __atomic_store_n(&g.shared_requeue_pending, 1, __ATOMIC_SEQ_CST);
  ReleaseParked();
  Requeue(own, n_own, false);
  if (!leader_will_requeue) Requeue(g_shared_saved, n_sh, true);
}

// What the program asked for with sigaction(g.sigckpt) (never installed).
void ForwardToProgram(int sig, siginfo_t* info, void* uc) {
  const struct sigaction& a = g.user_action;
  if (a.sa_flags & SA_SIGINFO) {
    if (a.sa_sigaction != nullptr) a.sa_sigaction(sig, info, uc);
  } else if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN && a.sa_handler != nullptr) {
    a.sa_handler(sig);
  }
  // SIG_DFL (terminate) is not emulated: Stasis must never kill the program.
}

void RecordProcessState(uint64_t generation) {
  g_cb.generation = generation;
  g_cb.socket_fd = g.sock;
  g_cb.n_threads = 0;
  g_cb.n_shared_pending = 0;
  for (int sig = 1; sig <= 64; ++sig) {
    KernelSigaction k = {};
    if (syscall(SYS_rt_sigaction, sig, nullptr, &k, 8) != 0) k = {};
    g_cb.sigactions[sig - 1] = k;
  }
  for (int which = 0; which < 3; ++which) {
    struct itimerval itv = {};
    syscall(SYS_getitimer, which, &itv);
    g_cb.itimers[which].interval_us =
        static_cast<uint64_t>(itv.it_interval.tv_sec) * 1000000u + static_cast<uint64_t>(itv.it_interval.tv_usec);
    g_cb.itimers[which].value_us =
        static_cast<uint64_t>(itv.it_value.tv_sec) * 1000000u + static_cast<uint64_t>(itv.it_value.tv_usec);
  }
  g_cb.brk = static_cast<uint64_t>(syscall(SYS_brk, 0));
}

long SendCheckpointSignal(int pid, int tid, uint32_t token) {
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  si.si_signo = g.sigckpt;
  si.si_code = SI_QUEUE;
  si.si_pid = pid;
  si.si_uid = static_cast<uid_t>(syscall(SYS_getuid));
  si.si_value.sival_ptr = reinterpret_cast<void*>((kSignalCookie << 32) | token);
  return syscall(SYS_rt_tgsigqueueinfo, pid, tid, g.sigckpt, &si);
}

bool IsParked(int tid) {
  int n = __atomic_load_n(&g.next_slot, __ATOMIC_SEQ_CST);
  if (n > kMaxThreads - 1) n = kMaxThreads - 1;
  for (int i = 0; i < n; ++i)
    if (g_cb.threads[i].tid == tid) return true;
  return false;
}

// Writes "tid <tid> (<comm>): <why>" to reason.
void FormatReason(char* reason, int size, int tid, const char* why) {
  char num[24];
  FormatInt(num, tid);
  char comm[32];
  TaskComm(tid, comm, sizeof(comm));
  int n = 0;
  auto put = [&](const char* s) {
    while (*s && n < size - 1) reason[n++] = *s++;
  };
  put("tid ");
  put(num);
  if (comm[0] != '\0') {
    put(" (");
    put(comm);
    put(")");
  }
  put(": ");
  put(why);
  reason[n] = '\0';
}

}  // namespace

void CheckpointHandler(int sig, siginfo_t* info, void* ucontext) {
  int saved_errno = errno;
  uint64_t v = info != nullptr ? reinterpret_cast<uint64_t>(info->si_value.sival_ptr) : 0;
  bool ours = info != nullptr && info->si_code == SI_QUEUE && info->si_pid == RawGetpid() &&
              (v >> 32) == kSignalCookie;
  if (!ours) {
    ForwardToProgram(sig, info, ucontext);
  } else {
    uint32_t token = static_cast<uint32_t>(v);
    // A stale signal of an abandoned quiesce is dropped.
    if (token != 0 && token == __atomic_load_n(&g.active_token, __ATOMIC_SEQ_CST)) {
      int tid = RawGettid();
      auto* uc = static_cast<ucontext_t*>(ucontext);
      if (tid == g.agent_tid) {
        AgentSelfCapture(tid, uc);
      } else {
        ParkThread(tid, token, uc);
      }
    }
  }
  errno = saved_errno;
}

void ResetQuiesceState() {
  __atomic_store_n(&g.active_token, 0u, __ATOMIC_SEQ_CST);
  g.next_slot = 0;
  g.parked = 0;
  g.overflow_tid = 0;
  g.leader_parked = 0;
  g.shared_requeue_pending = 0;
  g_cb.n_threads = 0;
  g_cb.n_shared_pending = 0;
}

int QuiesceProcess(uint64_t generation, char* reason, int reason_size) {
  const int pid = RawGetpid();
  const int self = RawGettid();
  uint32_t token = ++g.token_counter;
  if (token == 0) token = ++g.token_counter;
  ResetQuiesceState();
  RecordProcessState(generation);
  __atomic_store_n(&g.active_token, token, __ATOMIC_SEQ_CST);

  int dfd = static_cast<int>(
      syscall(SYS_openat, AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd < 0) {
    FormatReason(reason, reason_size, self, "cannot open /proc/self/task");
    ReleaseParked();
    return -1;
  }
  TaskLister lister(dfd);
  int n_sig = 0, n_dead = 0;
  int failed_tid = 0;
  const char* why = nullptr;
  const double deadline = MonotonicSeconds() + g.quiesce_timeout_s;
  for (;;) {
    int fresh = 0;
    lister.Rewind();
    for (int tid; (tid = lister.Next()) != 0;) {
      if (tid == self) continue;
      bool known = false;
      for (int i = 0; i < n_sig && !known; ++i) known = g_signalled[i] == tid;
      if (known) continue;
      if (TaskIsIoWorker(tid)) continue;  // never runs a handler; the supervisor refuses io_uring
      if (n_sig >= kMaxThreads - 1) {
        failed_tid = tid;
        why = "too many threads (ControlBlock::kMaxThreads)";
        break;
      }
      if (SendCheckpointSignal(pid, tid, token) != 0) continue;  // ESRCH: exited meanwhile
      g_signalled[n_sig] = tid;
      g_dead[n_sig] = false;
      ++n_sig;
      ++fresh;
    }
    if (why != nullptr) break;
    // Wait until every signalled thread parked or vanished.
    for (;;) {
      int overflow = __atomic_load_n(&g.overflow_tid, __ATOMIC_SEQ_CST);
      if (overflow != 0) {
        failed_tid = overflow;
        why = "too many threads (ControlBlock::kMaxThreads)";
        break;
      }
      uint32_t p = __atomic_load_n(&g.parked, __ATOMIC_SEQ_CST);
      if (static_cast<int>(p) + n_dead >= n_sig) break;
      if (MonotonicSeconds() > deadline) {
        for (int i = 0; i < n_sig && failed_tid == 0; ++i)
          if (!g_dead[i] && !IsParked(g_signalled[i])) failed_tid = g_signalled[i];
        why = "did not reach the checkpoint handler in time (checkpoint signal blocked?)";
        break;
      }
      struct timespec rel = {0, 20 * 1000 * 1000};
      if (FutexWait(&g.parked, p, &rel) == -1 && errno == ETIMEDOUT) {
        // No progress: drop threads that exited (a parked thread never does).
        for (int i = 0; i < n_sig; ++i) {
          if (g_dead[i]) continue;
          int t = g_signalled[i];
          bool gone = syscall(SYS_tgkill, pid, t, 0) != 0 && errno == ESRCH;
          if (!gone && t == pid && !__atomic_load_n(&g.leader_parked, __ATOMIC_SEQ_CST))
            gone = TaskIsZombie(t);  // leader after pthread_exit: zombie until the process ends
          if (gone && !IsParked(t)) {
            g_dead[i] = true;
            ++n_dead;
          }
        }
      }
    }
    if (why != nullptr || fresh == 0) break;
  }
  syscall(SYS_close, dfd);  // not part of the image
  if (why != nullptr) {
    FormatReason(reason, reason_size, failed_tid, why);
    ReleaseParked();
    return -1;
  }

  // The leader goes first in the records.
  int n = __atomic_load_n(&g.next_slot, __ATOMIC_SEQ_CST);
  for (int i = 1; i < n; ++i) {
    if (g_cb.threads[i].tid == pid) {
      ThreadRecord tmp = g_cb.threads[0];  // ~1 KiB on the agent's stack
      g_cb.threads[0] = g_cb.threads[i];
      g_cb.threads[i] = tmp;
      break;
    }
  }

  // Park ourselves last.  After a checkpoint the handler returns here after
  // kResume; after a restart the restorer's rt_sigreturn lands here directly.
  SendCheckpointSignal(pid, self, token);
  if (*reinterpret_cast<volatile uint32_t*>(&g_cb.restart.restarted) == 1) return 1;
  return 0;
}

}  // namespace stasis::agent
