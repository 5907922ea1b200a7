// Checks of the job's processes before a checkpoint quiesces them: what
// would make the quiesce hang until its timeout, or the checkpoint silently
// partial, is refused at once with a message naming the process.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace stasis::job {

// "pid <pid> (<program>)": the program is /proc/<pid>/exe, else its comm.
std::string DescribeProcess(pid_t pid);

// Problems found in /proc for every live process of the job's pid namespace
// but `self` (the supervisor), one message each (empty: none found):
//  * an io_uring instance (a descriptor on anon_inode:[io_uring]): its rings
//    and in-flight requests cannot be captured yet, and its io workers
//    (iou-wrk-*, PF_IO_WORKER) never run a signal handler;
//  * a thread in ptrace stop (state 't', proc(5)): it cannot run the
//    checkpoint handler until its tracer lets it go;
//  * a vfork(2) parent (state 'D' in kernel_clone, /proc/<pid>/wchan): the
//    kernel suspends it until the child execs or exits.  Usually a moment
//    (vfork + exec, posix_spawn, system(3)), so it is reported only if it
//    is still suspended after `vfork_grace` seconds (the call waits).
std::vector<std::string> QuiescePreflight(pid_t self, double vfork_grace);

// PF_IO_WORKER (include/linux/sched.h): the kernel's io_uring worker
// threads; bit 0x10 of the flags field (9th) of /proc/<pid>/task/<tid>/stat.
constexpr unsigned long kPfIoWorker = 0x10;

// Parses a /proc/<pid>/stat line: state and flags.  False if malformed.
bool ParseTaskStat(const std::string& line, char* state, unsigned long* flags);

}  // namespace stasis::job
