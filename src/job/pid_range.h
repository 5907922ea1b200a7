// Job-unique pid ranges.
//
// Every job runs in a fresh pid namespace, so without care its main program
// is always pid 2 and its children 3, 4, ...  Programs name files in the
// shared /tmp and /dev/shm after their pid (Open MPI's shared-memory
// segments are named after mpirun's pid, a JVM keeps
// /tmp/hsperfdata_$USER/<pid>), so two concurrent jobs of one user on a node
// would clash there.  The supervisor therefore starts numbering the job's
// processes at a base derived from the job id: it writes base-1 to
// /proc/sys/kernel/ns_last_pid of the job's pid namespace before it forks
// the program (the file is 0666 and the kernel checks CAP_SYS_ADMIN or
// CAP_CHECKPOINT_RESTORE over the namespace's owning user namespace, which
// the job's own user namespace gives us: pid_namespaces(7),
// kernel/pid_namespace.c pid_ns_ctl_handler).  New pids then count up from
// the base, as the kernel allocates them cyclically after ns_last_pid.
//
// At restart the pids come back with clone3(set_tid) anyway; ns_last_pid is
// set past the restored pids so processes created after the restart stay in
// the job's range too.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace stasis::job {

// Bases lie in [kPidBaseMin, kPidBaseMin + kPidBaseSlots).  The top stays
// below 32768, the kernel's smallest default pid_max (PID_MAX_DEFAULT), so a
// checkpoint restarts on any node, leaving room for kPidRoom processes.
constexpr pid_t kPidBaseMin = 1000;
constexpr pid_t kPidRoom = 1000;
constexpr pid_t kPidBaseSlots = 32768 - kPidBaseMin - kPidRoom;

// The first pid of the job `job_id` (FNV-1a of the id, a stable hash:
// the same id gives the same base in every build and on every node).  Two
// jobs that each start k processes share a pid with probability about
// 2k / kPidBaseSlots.
pid_t JobPidBase(const std::string& job_id);

// Writes `last` to /proc/sys/kernel/ns_last_pid of the caller's pid
// namespace: the next fork gets the first free pid above it.  Errors: the
// open/write errno, naming the file (the file is missing on kernels built
// without CONFIG_CHECKPOINT_RESTORE; callers then only warn: the job runs,
// numbered from 2).
Status SetLastPid(pid_t last);

// The ns_last_pid for a restarted job: the highest of `restored` (its pids
// and tids) if that is at or above `base`, else base - 1.
pid_t LastPidAfterRestore(pid_t base, const std::vector<pid_t>& restored);

}  // namespace stasis::job
