// File descriptors: capture and restore side by side.
//
// Capture reads /proc/<pid>/fd/<n> (readlink, stat) and /proc/<pid>/fdinfo/<n>
// (pos, flags) and classifies each descriptor.  Restore policy:
//   * regular files and directories are reopened by path with their flags
//     and offset.  Files saved with --save-files (deleted ones, node-local
//     scratch) are first recreated from their copies, see saved_files.h; a
//     deleted file without a copy fails the restart.  Files open for
//     writing are saved into the checkpoint by default and written back in
//     place before the tree is recreated, or checked unchanged, see
//     written_files.h; they are never truncated here;
//   * descriptors that share the open file of stdin/stdout/stderr
//     (kcmp(2) KCMP_FILE) are connected to the restarting command's
//     stdin/stdout/stderr -- output goes where `stasis restart` sends it;
//   * /dev/null, /dev/zero, /dev/urandom... are reopened; a tty that is not
//     stdio is reopened as /dev/tty (the restart's controlling terminal) if
//     there is one, else /dev/null;
//   * terminals (stdio or not) also carry their settings: the program's
//     termios (raw, no echo...) is reapplied to the terminal the descriptor
//     leads to at restart, a job-owned foreground process group gets the
//     new terminal's foreground back, and SIGWINCH tells the program the
//     window size changed -- see tty.h, whose capture and restore are
//     called from CaptureFiles and RestoreFiles;
//   * eventfd, timerfd, signalfd and epoll descriptors are recreated with
//     their state (state/anon_inode.h and one module per kind); epoll
//     targets are added by RestoreEpollTargets after all descriptors;
//   * pipes and sockets between processes of the job are recreated once and
//     installed by the restorer (restore/objects.h, state/pipes.h,
//     state/sockets.h);
//   * a pipe whose reader is outside the job (inherited from the shell) and
//     kinds without a module (inotify, a pty master...) are replaced by
//     /dev/null with a warning at restart.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "image/model.h"
#include "state/proc_target.h"

namespace stasis::state {

// `skip_fd` is the agent's own socket (-1: none).  Sorted by fd.  Needs
// PTRACE_MODE_READ access to the target for fdinfo and kcmp(2).  Errors name
// the pid and fd.
StatusOr<std::vector<image::FileDescriptor>> CaptureFiles(const ProcTarget& target, int skip_fd);

// Checks before any process is created that every descriptor can be
// restored (files exist, kinds supported).  Errors name the fd and path.
Status CheckFiles(const image::ProcessImage& img);

// Runs in the pre-restorer (single-threaded).  Closes every descriptor that
// is neither in `keep` nor one of `stdio` (close_range(2)) -- including any
// the caller still holds, e.g. an image reader's -- then installs the
// image's descriptors: each is opened (or dup'd from stdio) at a temporary
// number above everything in play, the stdio copies are closed, and each is
// dup3(2)'d to its number with its close-on-exec flag.  `stdio` are the
// restarting command's stdin/stdout/stderr, already moved to high numbers
// (-1 where absent: /dev/null is used).  Descriptors in `keep` must not
// collide with image descriptors (choose numbers above the image's
// highest); a collision is an error before anything is closed.  The
// image's agent socket is skipped.  Errors name the fd and path.
Status RestoreFiles(const image::ProcessImage& img, const int stdio[3],
                    const std::vector<int>& keep);

// Makes img->fds[*].stdio_alias relative to the job's stdio instead of the
// process's own: a descriptor stays connected to the restarting command's
// stdio k only if it shares its open file description (kcmp(2) KCMP_FILE)
// with descriptor k of `job_stdio_pid` (the supervisor, whose stdio is the
// launching command's).  A child whose stdout was redirected to a file
// (`cmd >> log` in a script) thus gets its file back at restart instead of
// the restarting command's stdout.  Without kcmp, or if the supervisor's
// descriptor k is closed, the alias is left as captured.
void RelateStdioToJob(int32_t target_pid, int32_t job_stdio_pid, image::ProcessImage* img);

// Highest fd number used by the image (-1 if none).
int HighestFd(const image::ProcessImage& img);

// --- Helpers, exposed for tests. ---

// The fields of /proc/<pid>/fdinfo/<fd> that capture uses (proc(5)):
// "pos:" decimal byte offset, "flags:" octal open(2) flags incl. O_CLOEXEC.
struct Fdinfo {
  uint64_t pos = 0;
  int32_t flags = 0;
};
// Errors if "pos:" or "flags:" is missing or malformed.
StatusOr<Fdinfo> ParseFdinfo(const std::string& text);

// Kind of a descriptor from its /proc link text and stat(2) of the link
// (st_mode, st_rdev).  Link prefixes win over the mode ("pipe:[..]",
// "socket:[..]", "anon_inode:..." -- anon inodes report varying modes).
image::FileDescriptor::Kind ClassifyFd(const std::string& link, mode_t mode, dev_t rdev);

// "regular file", "pipe", ... for messages.
const char* FdKindName(image::FileDescriptor::Kind kind);

}  // namespace stasis::state
