// Ownership of a checkpoint directory: one job at a time.
//
// Every command that makes a job write into a checkpoint directory (launch,
// restart, run) holds an exclusive flock(2) on "<dir>/.stasis.lock" for the
// life of the job; a second job there (which would prune the first one's
// checkpoints and delete its in-progress "*.tmp" images) is refused with a
// message naming the holder.  flock(2) locks belong to the open file
// description, so the lock is released by the kernel when the holder and
// every process that inherited the descriptor by fork (the job's C1 and
// supervisor; exec closes it: O_CLOEXEC) are gone: a crashed job never
// leaves a stale lock.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/scoped_fd.h"
#include "common/status.h"

namespace stasis::cli {

// What the holder wrote into the lock file (one line, space separated:
// "<pid> <SLURM_JOB_ID or -> <host> <command> <coordinator host:port>").
struct LockHolder {
  pid_t pid = 0;
  std::string slurm_job = "-";
  std::string host;
  std::string command;      // "launch", "restart", "run"
  std::string coordinator;  // "host:port" of the job's coordinator
};

// "<host>" of this machine (gethostname).
std::string ThisHost();

// How long a busy lock is retried: a job stopped by `checkpoint --kill` is
// still ending (its launcher returns a moment after the checkpoint).
constexpr int kLockWaitMs = 3000;

// Takes the lock of `dir` (retrying up to `wait_ms` if busy) and writes our LockHolder line
// (`command`, `coordinator`) into it.  The lock lasts as long as the
// returned descriptor (and its forked copies).
//
// The lock file is opened with openat(2) on a descriptor of `dir` with
// O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK: a symlink planted as .stasis.lock is not
// followed (ELOOP), and a file that is not a regular file, has other hard
// links, or belongs to another user is refused, so the lock can never be
// used to truncate or write someone else's file (open(2), "O_NOFOLLOW").
//
// Errors: the directory is in use ("checkpoint directory D is in use by
// another job: stasis launch, pid P on H (Slurm job J); wait for it to end
// or use another --ckptdir"; `*holder`, if given, is set then and only
// then, pid 0 if the holder's line is unreadable), an
// unsafe lock file, or open/flock failures naming the file.
StatusOr<ScopedFd> LockCkptDir(const std::string& dir, const std::string& command,
                               const std::string& coordinator, std::optional<LockHolder>* holder = nullptr,
                               int wait_ms = kLockWaitMs);

}  // namespace stasis::cli
