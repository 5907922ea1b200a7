// What this node's kernel and configuration allow Stasis to do, probed in
// one place (the role of CRIU's criu/kerndat.c).  Each probe tries the real
// operation where it can (a user namespace is created, a pagemap is
// scanned) rather than trusting a version number, and says what an admin
// would change when it fails.  Used by `stasis doctor` and, for the
// diagnosis of a launch that cannot start, by `stasis launch`/`restart`.
#pragma once

#include <string>
#include <vector>

namespace stasis::kerndat {

enum class Verdict {
  kOk,       // works
  kWarn,     // works with less (a fallback is used) or cannot be decided
  kFail,     // Stasis cannot run a job here until it is fixed
  kInfo,     // a fact, neither good nor bad (file system type, Slurm job)
};

struct Finding {
  std::string name;    // "user namespaces", "PAGEMAP_SCAN", ...
  Verdict verdict = Verdict::kInfo;
  std::string detail;  // what was found, one line
  std::string fix;     // what an admin or user can do; empty if nothing
};

// Unprivileged user+pid+mount namespace as a job uses it: unshare(2),
// uid/gid map, a private /proc mounted by pid 1, clone3(2) with set_tid
// (CAP_CHECKPOINT_RESTORE in the namespace, Linux >= 5.5) and a writable
// /proc/sys/kernel/ns_last_pid.  Also reads the sysctls that switch it off
// (kernel.unprivileged_userns_clone, user.max_user_namespaces,
// kernel.apparmor_restrict_unprivileged_userns) to name the cause.
// Runs in forked children; the caller is unchanged.  Several findings.
std::vector<Finding> ProbeNamespaces();

// Why an unprivileged unshare(CLONE_NEWUSER) fails here and what an admin
// does about it, from the sysctls alone (no probe): one sentence.
std::string NamespaceFix();

// kernel.yama.ptrace_scope (Documentation/admin-guide/LSM/Yama.rst).
Finding ProbePtraceScope();

// ioctl(PAGEMAP_SCAN) on /proc/self/pagemap (Linux >= 6.7,
// Documentation/admin-guide/mm/pagemap.rst): dirty-page tracking for
// incremental checkpoints.
Finding ProbePagemapScan();

// userfaultfd(2) for an unprivileged user (vm.unprivileged_userfaultfd or
// UFFD_USER_MODE_ONLY) and its UFFD_FEATURE_WP_ASYNC feature.
Finding ProbeUserfaultfd();

// The checkpoint directory's file system: type (and whether it is usually
// shared between nodes), free space, writability, FICLONE reflinks.
// `dir` need not exist; its nearest existing ancestor is examined.
std::vector<Finding> ProbeCkptDir(const std::string& dir);

// Kernel release (uname -r).
Finding KernelRelease();

// "ok", "warn", "FAIL", "info".
const char* VerdictName(Verdict v);

}  // namespace stasis::kerndat
