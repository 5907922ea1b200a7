// The agent control block: a fixed-layout struct that lives in the memory of
// every process of a job (inside the injected agent library).  It is the
// contract between three parties that never share code at run time:
//   * the agent (src/agent), which fills it while it quiesces the process;
//   * the dumper (src/checkpoint), which reads it from outside with
//     pread(/proc/<pid>/mem) once the agent reports "quiesced";
//   * the restorer (src/restore), which writes `restart` into it just before
//     the threads return to user code, so the agent knows it was restarted.
// Plain C layout, no pointers that the reader dereferences locally; bump
// kVersion on any change.
#pragma once

#include <stdint.h>

namespace stasis::agent {

constexpr uint32_t kControlBlockMagic = 0x53544143;  // "STAC"
constexpr uint32_t kControlBlockVersion = 2;
constexpr int kMaxThreads = 1024;        // threads per process the agent can park
constexpr int kMaxPendingPerThread = 8;  // queued signals kept per thread
constexpr int kMaxSharedPending = 32;    // process-directed queued signals kept

struct PendingSignalRecord {
  int32_t signo;
  int32_t pad;
  uint8_t siginfo[128];
};

// Written by each thread in the checkpoint signal handler.
struct ThreadRecord {
  int32_t tid;
  int32_t n_pending;
  uint64_t sigframe_sp;       // (uintptr_t) the ucontext_t* the handler received
  uint64_t fs_base, gs_base;
  uint64_t clear_child_tid;   // prctl(PR_GET_TID_ADDRESS)
  uint64_t robust_list, robust_list_len;
  uint64_t rseq_addr;         // 0 if this thread has no rseq registration
  uint32_t rseq_len, rseq_sig;
  uint64_t sigmask;           // uc_sigmask (first 64 signals)
  PendingSignalRecord pending[kMaxPendingPerThread];
};

struct KernelSigaction {  // struct sigaction as rt_sigaction(2) sees it on x86_64
  uint64_t handler, flags, restorer, mask;
};

struct Itimer { uint64_t interval_us, value_us; };

// What the restorer tells the restarted agent.
struct RestartInfo {
  uint32_t restarted;           // 0 after a checkpoint, 1 after a restart
  uint32_t pad;
  uint64_t restorer_start;      // restorer area left mapped; the agent unmaps it
  uint64_t restorer_len;
  char supervisor_socket[108];  // new path to connect to (sun_path)
};

struct ControlBlock {
  uint32_t magic;               // kControlBlockMagic
  uint32_t version;             // kControlBlockVersion
  uint64_t generation;          // checkpoint number being taken
  int32_t  socket_fd;           // agent's own connection; excluded from images
  int32_t  n_threads;
  uint64_t brk;                 // brk(0) at quiesce
  KernelSigaction sigactions[64];  // index = signo - 1
  Itimer itimers[3];
  int32_t  n_shared_pending;
  int32_t  pad;
  PendingSignalRecord shared_pending[kMaxSharedPending];
  RestartInfo restart;
  // Address of stasis_restart_trampoline (src/agent/restart_trampoline.cc),
  // set when the agent loads.  The restorer ends every thread there instead
  // of in its own code, and the last thread to arrive unmaps the restorer
  // region, which by then no thread uses.  (Version >= 2.)
  uint64_t restart_trampoline;
  uint32_t threads_returned;    // arrivals at the trampoline; reset by the restorer
  uint32_t pad2;
  ThreadRecord threads[kMaxThreads];  // threads[0..n_threads), leader first
};

}  // namespace stasis::agent
