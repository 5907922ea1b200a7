// Arguments of the restorer blob: the small, libc-free, position-independent
// program (src/restore/blob/blob.cc) that finishes a restart after the C++
// pre-restorer (src/restore/restorer.cc) has loaded every memory area into a
// temporary "slot".  Plain C layout, absolute addresses as uint64_t; the blob
// never calls out of its own code.  The pre-restorer builds this struct
// inside the restorer region, which the blob never unmaps (the restarted
// agent unmaps it, see ControlBlock::restart).
//
// The blob, in order (technique after CRIU's restorer, criu/pie/restorer.c):
//   1. munmap everything except the restorer region and the current
//      kernel's vDSO/vvar areas;
//   2. moves the vDSO/vvar areas by `vdso_delta` (via `vdso_scratch`);
//   3. moves every slot to its final address with mremap(2) (or copies it
//      into a fresh MAP_GROWSDOWN mapping for the main stack), mprotects it;
//   4. prctl(PR_SET_MM_MAP), rt_sigaction for all signals, setitimer,
//      requeues process-directed pending signals;
//   5. writes ControlBlock::restart in the agent;
//   6. creates every other thread with clone3(set_tid = its old tid);
//   7. in every thread: TLS base, clear_child_tid, robust list, rseq, name,
//      thread-directed pending signals, capabilities; then rt_sigreturn on
//      the thread's saved signal frame, which reloads all registers, the
//      FPU/AVX state, the signal mask and the alternate stack -- issued from
//      the agent's restart trampoline, whose last caller unmaps the region.
#pragma once

#include <stdint.h>

#include "agent/control_block.h"

namespace stasis::restore {

constexpr int kBlobMaxAreas = 8192;
constexpr int kBlobMaxThreads = 1024;
constexpr int kBlobMaxVdsoAreas = 8;
constexpr uint64_t kBlobThreadStackSize = 16 * 1024;  // bytes, per thread

struct BlobArea {
  uint64_t slot;     // where the pre-restorer loaded it (inside the region)
  uint64_t start;    // final address
  uint64_t len;      // bytes
  uint32_t prot;     // final PROT_*
  uint32_t flags;    // kBlobAreaGrowsDown, ...
};
constexpr uint32_t kBlobAreaGrowsDown = 1;  // copy into a MAP_GROWSDOWN mapping

struct BlobRange { uint64_t start, len; };

struct BlobThread {
  int32_t tid;
  int32_t n_pending;
  uint64_t sigframe_sp;
  uint64_t fs_base, gs_base;
  uint64_t clear_child_tid;
  uint64_t robust_list, robust_list_len;
  uint64_t rseq_addr;
  uint32_t rseq_len, rseq_sig;
  uint64_t stack_top;       // blob stack for this thread, inside the region
  char comm[16];
  agent::PendingSignalRecord pending[agent::kMaxPendingPerThread];
};

struct BlobMm {  // mirrors struct prctl_mm_map (linux/prctl.h)
  uint64_t start_code, end_code, start_data, end_data;
  uint64_t start_brk, brk, start_stack;
  uint64_t arg_start, arg_end, env_start, env_end;
  uint64_t auxv[64];
  uint32_t auxv_size;   // bytes
  int32_t exe_fd;       // -1: leave /proc/self/exe alone
};

struct BlobArgs {
  uint64_t magic;                 // kBlobArgsMagic
  BlobRange region;               // the restorer region: blob code, args, stacks, slots
  int32_t pid;
  int32_t report_fd;              // closed just before threads return to user code
  int32_t n_fds_to_close;
  int32_t fds_to_close[4];        // e.g. exe_fd; closed after use

  // vDSO: current kernel's areas (vdso and vvar*), moved by vdso_delta bytes.
  int32_t n_vdso;
  BlobRange vdso_current[kBlobMaxVdsoAreas];
  uint64_t vdso_scratch;          // free address for a two-step move
  int64_t vdso_delta;

  int32_t n_areas;
  BlobArea areas[kBlobMaxAreas];  // sorted by start

  BlobMm mm;
  int32_t mm_valid;               // 0: skip PR_SET_MM_MAP (e.g. not permitted)

  agent::KernelSigaction sigactions[64];
  agent::Itimer itimers[3];
  int32_t n_shared_pending;
  agent::PendingSignalRecord shared_pending[agent::kMaxSharedPending];

  uint64_t caps_effective, caps_permitted, caps_inheritable;

  uint64_t control_block;         // agent ControlBlock address in the image (0: none)
  agent::RestartInfo restart_info;

  int32_t n_threads;              // threads[0] is the leader (tid == pid)
  BlobThread threads[kBlobMaxThreads];
  volatile int32_t threads_started;  // scratch for the blob

  // Debug counters written by the blob (inspect with gdb after a
  // STASIS_RESTART_PAUSE=1 restart, or in the region before the agent
  // unmaps it): result of PR_SET_MM_MAP (0 or -errno), failed rseq and
  // robust-list registrations.
  int64_t debug_mm_result;
  int32_t debug_rseq_failures;
  int32_t debug_robust_failures;

  // Scratch for the blob: the agent's restart trampoline (0: plain
  // rt_sigreturn from the blob; images of agents before version 2).
  uint64_t trampoline;
};

constexpr uint64_t kBlobArgsMagic = 0x5354415349534241ull;  // "STASISBA"

}  // namespace stasis::restore
