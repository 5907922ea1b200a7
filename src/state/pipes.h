// Pipes between processes of a job.  Capture: the bytes in flight of every
// pipe a process reads (copied without consuming them); restore: the plan
// of which process creates each pipe (restore/tree.h PlanPipes) and the
// pre-restorer installs the ends (restore/restorer.cc).
//
// Descriptors are identified across processes by the pipe's inode
// ("pipe:[inode]" in /proc/<pid>/fd, proc(5)).  Technique after CRIU
// (criu/pipes.c: the data is copied with tee(2) from a descriptor of the
// pipe, the pipe is recreated once and its ends passed to the processes
// that hold them); the code is our own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "image/model.h"
#include "state/proc_target.h"

namespace stasis::state {

// "pipe:[1234]" -> 1234; 0 if `path` is not a pipe link.
uint64_t PipeInode(const std::string& path);

// For every pipe descriptor of `fds` opened for reading (one per inode),
// the bytes the pipe holds.  The pipe is reopened through
// /proc/<pid>/fd/<n> (a new reader of the same pipe; needs ptrace access),
// its contents copied with tee(2) into a scratch pipe of the same capacity
// and read from there: the process's own view is unchanged.  The target
// must be quiesced (no reader or writer running).  Errors name the fd.
StatusOr<std::vector<image::PipeContents>> CapturePipes(const ProcTarget& target,
                                                        const std::vector<image::FileDescriptor>& fds);

}  // namespace stasis::state
