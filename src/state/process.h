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

#include <cstdint>
#include <string>
#include <vector>

#include "agent/control_block.h"
#include "common/status.h"
#include "image/model.h"
#include "restore/blob/blob_args.h"
#include "state/proc_target.h"

namespace stasis::state {

// Fills program, exe, argv, pid/ppid/pgid/sid, uid/gid, hostname,
// kernel_release, cwd, umask, personality, rlimits, caps, mm (brk from
// cb.brk) and auxv.  Sources: /proc/<pid>/{comm,exe,cmdline,stat,status,cwd,
// personality,auxv} (proc(5)), prlimit(2), uname(2).  Errors name the pid
// and the file or call that failed.
Status CaptureProcess(const ProcTarget& target, const agent::ControlBlock& cb,
                      image::ProcessImage* img);

// In the pre-restorer: chdir (error names the directory), umask,
// personality, setrlimit.  A limit that cannot be restored (hard limit above
// ours) is lowered to what is allowed, with a warning on stderr; it never
// fails the restart.
Status RestoreProcessAttributes(const image::ProcessImage& img);

// Fills args->mm and sets mm_valid (0 if the image has no usable mm layout),
// args->caps_*.  Opens img.exe read-only and moves it to `exe_fd_number`
// (close-on-exec) for PR_SET_MM_MAP's exe_fd; if it cannot be opened, exe_fd
// is -1 and the rest of mm is still used.  The fd is also appended to
// args->fds_to_close.  The caller must keep `exe_fd_number` out of the
// image's descriptors and pass it in RestoreFiles' `keep`.  Errors: auxv of
// more than 64 words.
Status PrepareProcess(const image::ProcessImage& img, int exe_fd_number, restore::BlobArgs* args);

// --- Parsers, exposed for tests. ---

// /proc/<pid>/stat (proc(5)).  Fields are counted after the last ')' since
// comm (field 2) may hold spaces and parentheses.  mm.brk is left 0 (not in
// stat).  Errors if fewer than 51 fields or a number is malformed.
struct StatFields {
  char state = '?';                         // field 3 (R, S, D, Z, ...)
  int32_t ppid = 0, pgrp = 0, session = 0;  // fields 4, 5, 6
  int32_t exit_code = 0;                    // field 52 (wait(2) status; 0 if absent)
  image::MmLayout mm;                       // fields 26-28, 45-51
};
StatusOr<StatFields> ParseStatFields(const std::string& text);


// Unreaped exited children of `pid` (state Z, ppid == pid, a single task:
// a thread-group leader that exited while other threads run also shows Z
// but is not a zombie process), sorted by pid.  Scans `proc_root`
// ("/proc" of the job's namespace).  Processes that vanish during the scan
// are skipped.  Errors: `proc_root` unreadable.
StatusOr<std::vector<image::ZombieChild>> CaptureZombies(int32_t pid, const std::string& proc_root = "/proc");

// The value of "<key>:" in /proc/<pid>/status text, leading whitespace
// stripped ("Umask" -> "0022").  Error if the key is absent.
StatusOr<std::string> StatusValue(const std::string& status_text, const std::string& key);

// NUL-separated /proc/<pid>/cmdline -> argv.
std::vector<std::string> SplitCmdline(const std::string& cmdline);

}  // namespace stasis::state
