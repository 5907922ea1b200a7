// Process-wide attributes: identity (program, argv, ids), cwd, umask,
// personality, resource limits, capabilities, the kernel mm layout
// (/proc/<pid>/stat fields 26-28 and 45-51, brk from the agent) and auxv;
// capture and restore side by side.
//
// Restore: cwd, umask, personality and rlimits in the pre-restorer; mm
// layout and auxv through prctl(PR_SET_MM_MAP) in the blob (needs
// CAP_SYS_RESOURCE in the job's user namespace, see proc(5), prctl(2));
// capabilities are dropped to the image's sets in every thread by the blob.
#pragma once

#include "agent/control_block.h"
#include "common/status.h"
#include "image/model.h"
#include "restore/blob/blob_args.h"
#include "state/proc_target.h"

namespace stasis::state {

Status CaptureProcess(const ProcTarget& target, const agent::ControlBlock& cb,
                      image::ProcessImage* img);

// In the pre-restorer: chdir, umask, personality, setrlimit (soft limits
// above the current hard limit are lowered, with a warning on stderr).
Status RestoreProcessAttributes(const image::ProcessImage& img);

// Fills args->mm (opening the exe for exe_fd at `exe_fd_number`), caps.
Status PrepareProcess(const image::ProcessImage& img, int exe_fd_number, restore::BlobArgs* args);

}  // namespace stasis::state
