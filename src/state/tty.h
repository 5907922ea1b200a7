// Terminals: capture and restore side by side.
//
// A job started on a terminal (a shell on a pty, `script`, tmux, ssh) holds
// descriptors on it, usually stdin/stdout/stderr; the terminal is also its
// controlling terminal (credentials(7), "sessions and process groups").  The
// terminal does not survive the restart; the descriptors are reconnected
// to the restarting command's stdio, or /dev/tty (see files.h).  This module
// carries over what the program set up on the terminal:
//
//   * Settings (termios(3): echo, canonical mode, special characters...):
//     captured with TCGETS through each terminal descriptor, reapplied at
//     restart to the terminal the descriptor now refers to -- a program that
//     put its terminal in raw or no-echo mode finds it so on the new one.
//     The new terminal's line speeds are kept.  Nothing is applied when the
//     descriptor is no longer a terminal (restart with stdio from a file or
//     /dev/null), nor when the new terminal is the controlling terminal of a
//     `stasis restart` that runs in the background of it (job control: a
//     background job must not change the terminal; a warning says so).
//   * Foreground process group: a job whose own process group had the
//     terminal's foreground at checkpoint (an interactive `bash -i` and the
//     command it runs in the foreground, a program that called tcsetpgrp)
//     gets the new terminal's foreground back (tcsetpgrp(3)) if `stasis
//     restart` itself runs in the foreground of it; otherwise the job's
//     processes would be stopped by SIGTTIN/SIGTTOU at their first read.
//     Processes in the launching command's group (pgid 0 in the image) are
//     simply in the restarting command's group again.
//   * Window size: never restored (the new terminal's is the truth), but a
//     process in the new terminal's foreground that holds a descriptor on it
//     gets SIGWINCH at restart if the size differs from the checkpoint's,
//     as the kernel would send on a resize (tty_ioctl(4) TIOCSWINSZ).
//
// Why the caller's foreground status is recorded before the namespace is
// created: inside the job's pid namespace, a process group outside it (the
// restarting command's) reads as 0 from getpgrp(2) and tcgetpgrp(3)
// alike, so "is the restarting command in the foreground?" can only be
// answered outside.  NoteCallerTerminal() stores the answer in this
// process; the supervisor and the pre-restorers, forked from it, inherit it.
//
// Terminals created inside the job (a pty master from /dev/ptmx) are not
// supported (files.h: "special file").  Sources: termios(3), tty_ioctl(4)
// (TIOCGWINSZ, TIOCGDEV, TIOCGSID), tcsetpgrp(3), proc(5) (/proc/<pid>/stat
// fields 7 tty_nr and 8 tpgid), pidfd_getfd(2); the kernel's
// drivers/tty/tty_jobctrl.c for when SIGTTOU/SIGTTIN are sent (a blocked
// SIGTTOU lets a background process change the terminal).
#pragma once

#include <termios.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "image/model.h"
#include "state/proc_target.h"

namespace stasis::state {

// --- Capture (supervisor; the target is quiesced). ---

// The terminal behind descriptor `fd` of the target.  The supervisor gets
// the target's own open file with pidfd_getfd(2) (needs
// PTRACE_MODE_ATTACH_REALCREDS, which reading /proc/<pid>/mem needs too),
// falling back to opening /proc/<pid>/fd/<fd> with O_NOCTTY|O_NONBLOCK;
// then TCGETS, TIOCGWINSZ and TIOCGDEV, and /proc/<pid>/stat for the
// process's controlling terminal and its foreground group.  Errors (name the
// pid and fd): the descriptor cannot be obtained, or is no terminal any more
// (a hung-up terminal answers EIO/ENOTTY).  Callers record no state then.
StatusOr<image::TerminalState> CaptureTerminal(const ProcTarget& target, int fd);

// --- The restarting command (before the job's namespace is created). ---

struct CallerTerminal {
  bool controlling = false;  // the process has a controlling terminal (/dev/tty opens)
  bool foreground = false;   // its process group is that terminal's foreground group
};
// Computes the calling process's CallerTerminal and stores it for
// RestoreTerminals in this process and its future children.  Never fails:
// no controlling terminal is {false, false}.
CallerTerminal NoteCallerTerminal();
// What NoteCallerTerminal() stored ({false, false} if it was never called).
CallerTerminal NotedCallerTerminal();

// --- Restore (pre-restorer, single-threaded, every signal blocked). ---

struct RestoredTerminalFd {
  const image::FileDescriptor* f;  // has f->terminal
  int fd;                          // the descriptor opened for it (any number)
};
// After the image's descriptors are opened and the tree's process groups
// exist: reapplies each terminal's settings, gives the foreground back and
// sends this process SIGWINCH (left pending until the restored program
// unblocks it) as described at the top.  Best effort: failures are
// warnings on `warn_fd` (-1: none), never errors.
void RestoreTerminals(const image::ProcessImage& img, const std::vector<RestoredTerminalFd>& fds,
                      const CallerTerminal& caller, int warn_fd);

// --- Helpers, exposed for tests. ---

// /proc/<pid>/stat fields 5 (pgrp), 7 (tty_nr: the controlling terminal in
// the kernel's dev_t encoding, 0 if none) and 8 (tpgid: its foreground
// group, -1 if none; both in the pid namespace of the /proc mount).  Fields
// are counted after the last ')' (comm may hold anything).  Errors if a
// field is missing or not a number.
struct StatTty {
  int32_t pgrp = 0;
  uint32_t tty_nr = 0;
  int32_t tpgid = -1;
};
StatusOr<StatTty> ParseStatTty(const std::string& stat_text);

// The settings to apply to a new terminal currently set to `now`: `saved`'s
// flags, line discipline and special characters with `now`'s line speeds.
struct termios MergeTermios(const image::TerminalState& saved, const struct termios& now);

// Whether a process with image pgid `pgid` is in the foreground of the
// terminal it held as `saved` once restarted: `controlling_now` says the
// terminal is the process's controlling terminal at restart.  Not a
// controlling terminal: no job control, every process using it counts as
// foreground.  Otherwise the job's own foreground group keeps it if the
// caller is in the foreground (it is given back), else the processes in the
// caller's group (pgid 0) are foreground iff the caller is.
bool ForegroundAfterRestart(const image::TerminalState& saved, int32_t pgid, bool controlling_now,
                            const CallerTerminal& caller);

}  // namespace stasis::state
