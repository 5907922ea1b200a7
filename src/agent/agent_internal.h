// Internals shared by the agent's translation units (agent.cc, quiesce.cc,
// interpose.cc, proc_tasks.cc).  Everything here may run while other threads
// of the host program are stopped inside the checkpoint signal handler, some
// of them possibly holding malloc or stdio locks: only raw system calls, no
// allocation, no locks (signal-safety(7)).
#pragma once

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/agent_protocol.h"
#include "agent/control_block.h"

namespace stasis::agent {

// The process's control block: in this library's .bss, one per process.
extern ControlBlock g_cb;

// si_value of the checkpoint signals the agent sends: cookie in the upper 32
// bits, the quiesce token in the lower 32 bits, so the handler tells the
// agent's signals from the program's own uses of the same signal number and
// from stale signals of an earlier, abandoned quiesce.
constexpr uint64_t kSignalCookie = 0x53544153ull;  // "STAS"

struct AgentGlobals {
  int sigckpt = 0;           // checkpoint signal; 0 = agent inert
  bool verbose = false;      // STASIS_VERBOSE=1
  volatile int agent_tid = 0;
  int sock = -1;             // connection to the supervisor (>= kHighFd)
  double quiesce_timeout_s = 10.0;
  char socket_path[108] = {};

  // Quiesce state.  Futex words are 32-bit and only touched with atomics.
  uint32_t token_counter = 0;       // agent thread only
  volatile uint32_t active_token = 0;   // != 0 while a quiesce is in progress
  volatile int32_t next_slot = 0;       // next free ThreadRecord (handlers)
  volatile uint32_t parked = 0;         // futex: threads parked in the handler
  volatile uint32_t resume_seq = 0;     // futex: bumped to release parked threads
  volatile int32_t overflow_tid = 0;    // a thread found no free ThreadRecord
  volatile int32_t leader_parked = 0;   // the leader parked (it requeues shared pending)
  volatile int32_t shared_requeue_pending = 0;  // shared pending left for the leader

  // The program's own action for the checkpoint signal (never installed).
  struct sigaction user_action = {};
};
extern AgentGlobals g;

constexpr int kHighFd = 800;  // agent descriptors live at or above this

// ---- quiesce.cc --------------------------------------------------------
// SA_SIGINFO handler for the checkpoint signal.
void CheckpointHandler(int sig, siginfo_t* info, void* ucontext);
// Quiesces every thread of the process and parks the calling agent thread
// last (see control_block.h).  Returns 0 after a normal resume, 1 when the
// process was restarted from an image (the caller reconnects), -1 on
// failure with `reason` filled (the threads have been released).
int QuiesceProcess(uint64_t generation, char* reason, int reason_size);
// Resets the quiesce bookkeeping (after fork and after a restart).
void ResetQuiesceState();

// ---- agent.cc ----------------------------------------------------------
// Sends one fixed-size message on the supervisor connection; false on error.
bool SendMessage(const Message& m);
// Fills type/version/pid/ppid.
void InitMessage(Message* m, MsgType type);
void LogVerbose(const char* what, long value);

// ---- interpose.cc ------------------------------------------------------
// libc's own implementations (dlsym RTLD_NEXT), resolved on first use.
int RealSigaction(int sig, const struct sigaction* act, struct sigaction* old);
int RealPthreadSigmask(int how, const sigset_t* set, sigset_t* old);

// ---- exec_inject.cc ----------------------------------------------------
// Constructor, once g.socket_path is set: finds the agent's own path,
// resolves the real exec/posix_spawn functions and copies the STASIS_*
// variables that the interposed exec family passes on to new programs.
void InitExecInjection();

// ---- deferred_signals.cc ----------------------------------------------
// Reads STASIS_DEFER_SIGNALS and installs the deferring handler (constructor).
void InitDeferredSignals();
// For the interposed sigaction/signal: true if `sig` is deferred and the
// call was handled (old gets the program's view, SIG_DFL until it sets a
// handler, which is then installed for real and ends the deferral).
bool DeferredSigaction(int sig, const struct sigaction* act, struct sigaction* old);
// After a restart or fork: the fallback timers are gone (ids may be reused),
// and the next deferred signal sends a checkpoint request again.
void ForgetDeferredTimers();
// Agent thread, after its hello: sends a checkpoint request that a deferred
// signal made while the agent was not connected yet.
void FlushCheckpointRequest();
// True while `sig` is deferred (the program keeps its default action).
bool IsDeferredSignal(int sig);

// ---- proc_tasks.cc -----------------------------------------------------
// Iterates the numeric entries of a directory fd (/proc/self/task) with raw
// getdents64 into a static buffer.  Single user at a time (agent thread).
class TaskLister {
 public:
  explicit TaskLister(int dir_fd) : fd_(dir_fd) {}
  void Rewind();
  // Next tid, or 0 at the end / on error.
  int Next();

 private:
  int fd_;
  long len_ = 0;
  long pos_ = 0;
};
// Reads the hex mask after `key` (e.g. "SigPnd:") in a /proc status file
// with raw open/read; returns false on error.  Bit (n-1) = signal n.
bool ReadStatusMask(const char* path, const char* key, uint64_t* mask);
// True if /proc/self/task/<tid>/stat says the task is a zombie or dead.
bool TaskIsZombie(int tid);
// PF_IO_WORKER (include/linux/sched.h): an io_uring worker (iou-wrk-*,
// iou-sqp-*).  Such kernel threads appear in /proc/<pid>/task but never run
// a signal handler, so they are never signalled.
constexpr unsigned long kPfIoWorker = 0x10;
// True if /proc/self/task/<tid>/stat has PF_IO_WORKER in its flags.
bool TaskIsIoWorker(int tid);
// The thread's name (/proc/self/task/<tid>/comm) into buf; "" if gone.
void TaskComm(int tid, char* buf, int size);
// Decimal formatting without libc; returns the length.
int FormatInt(char* buf, long v);
// Monotonic clock in seconds.
double MonotonicSeconds();

// Raw tid (no glibc cache involved).
int RawGettid();

}  // namespace stasis::agent
