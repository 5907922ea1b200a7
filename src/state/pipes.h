// Pipes and FIFOs between processes of a job.  Capture: the bytes in
// flight of every pipe or FIFO a process reads (copied without consuming
// them); restore: CreatePipe, called by the process that restore/objects.h
// plans as the creator; the pre-restorers install the ends.
//
// Descriptors are identified across processes by the pipe's inode
// ("pipe:[inode]" in /proc/<pid>/fd, proc(5)).  Technique after CRIU
// (criu/pipes.c: the data is copied with tee(2) from a descriptor of the
// pipe, the pipe is recreated once and its ends passed to the processes
// that hold them); the code is our own.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/scoped_fd.h"
#include "common/status.h"
#include "image/model.h"
#include "state/proc_target.h"

namespace stasis::state {

// "pipe:[1234]" -> 1234; 0 if `path` is not a pipe link.
uint64_t PipeInode(const std::string& path);

// The identity of a FIFO (named pipe) across processes: a hash of its path
// (every open of the path shares one pipe), never 0.
uint64_t FifoKey(const std::string& path);

// The key a pipe or FIFO descriptor is planned under (PipeInode or
// FifoKey); 0 if `f` is neither.
uint64_t PipeKey(const image::FileDescriptor& f);

// What restart recreates: a pipe (fifo_path "") or the FIFO at fifo_path,
// holding `bytes`.  want/nonblock per end: 0 read, 1 write, 2 read-write
// (FIFOs only, opened O_RDWR).
struct PipeSpec {
  std::vector<uint8_t> bytes;
  bool want[3] = {true, false, false};
  bool nonblock[3] = {false, false, false};
  std::string fifo_path;
  std::string what;  // for messages
};

// Creates the pipe, or opens the FIFO (mkfifo(3) with mode 0600 first if
// the path is gone, e.g. on another node), refilled with the bytes (never
// blocks: they fitted before), O_NONBLOCK applied per end.  Ends not
// wanted are closed (a pipe without a writer in the job: the reader sees
// the bytes, then end-of-file).  Errors name the pipe.
StatusOr<std::array<ScopedFd, 3>> CreatePipe(const PipeSpec& spec);

// For every pipe descriptor of `fds` opened for reading (one per inode),
// the bytes the pipe holds.  The pipe is reopened through
// /proc/<pid>/fd/<n> (a new reader of the same pipe; needs ptrace access),
// its contents copied with tee(2) into a scratch pipe of the same capacity
// and read from there: the process's own view is unchanged.  The target
// must be quiesced (no reader or writer running).  Errors name the fd.
StatusOr<std::vector<image::PipeContents>> CapturePipes(const ProcTarget& target,
                                                        const std::vector<image::FileDescriptor>& fds);

}  // namespace stasis::state
