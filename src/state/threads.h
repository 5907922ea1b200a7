// Threads: capture and restore side by side.
//
// Capture: each thread parks in the agent's checkpoint signal handler and
// writes an agent::ThreadRecord (TLS base, clear_child_tid, robust list,
// rseq, pending signals, the address of its kernel-built signal frame); the
// supervisor reads the records from the agent's control block.  Registers,
// FPU/AVX state, signal mask and sigaltstack are inside that frame.
// Restore: the blob recreates each thread with clone3(2) set_tid (needs
// CAP_CHECKPOINT_RESTORE in the job's user namespace) and rt_sigreturn(2)s
// into the saved frame.
#pragma once

#include <vector>

#include "agent/control_block.h"
#include "common/status.h"
#include "image/model.h"
#include "restore/blob/blob_args.h"
#include "state/proc_target.h"

namespace stasis::state {

// Converts the control block's thread records (leader first) and reads each
// thread's name from /proc/<pid>/task/<tid>/comm.
StatusOr<std::vector<image::Thread>> CaptureThreads(const ProcTarget& target,
                                                    const agent::ControlBlock& cb);

// Fills args->threads / n_threads (stack_top is set by the caller).
Status PrepareThreads(const image::ProcessImage& img, restore::BlobArgs* args);

}  // namespace stasis::state
