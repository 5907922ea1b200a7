// timerfd_create(2) descriptors: capture and restore side by side.
//
// Capture reads the target's /proc/<pid>/fdinfo/<fd> (proc(5); kernel
// fs/timerfd.c timerfd_show):
//   clockid: <n>
//   ticks: <expirations not yet read>
//   settime flags: 0<octal TFD_TIMER_ABSTIME|TFD_TIMER_CANCEL_ON_SET>
//   it_value: (<sec>, <nsec>)       time to the next expiration
//   it_interval: (<sec>, <nsec>)
// The kernel counts the expirations of a periodic timer lazily: when it
// fires, "ticks" becomes 1 and the timer stops; the periods missed since
// are added by the next read(2) or timerfd_gettime(2), which also restarts
// it.  Until then fdinfo shows ticks 1 and it_value (0, 0).  Capture
// therefore first calls timerfd_gettime(2) on a duplicate of the target's
// descriptor (pidfd_getfd(2)) -- the same catch-up the target's own next
// read would do, consuming nothing -- and then reads the duplicate's
// fdinfo.  If the duplicate cannot be had (no pidfd_getfd, no ptrace
// access), the target's fdinfo is used as is: a stopped periodic timer is
// then restored with 1 pending expiration and its next one a period later.
//
// Restore: timerfd_create(clockid, TFD_CLOEXEC [| TFD_NONBLOCK]), then
//   * armed, TFD_TIMER_ABSTIME on CLOCK_REALTIME(_ALARM): re-armed at the
//     same wall-clock deadline (clock_ns + value_ns), with its flags; a
//     deadline passed during the downtime fires at once, and a periodic
//     timer counts the periods missed, as it would have;
//   * any other armed timer: the remaining time continues from the restart
//     (the downtime does not count), re-armed with TFD_TIMER_ABSTIME at now
//     + remaining if it had that flag, else relative;
//   * the expirations not yet read are set with the TFD_IOC_SET_TICKS
//     ioctl (linux/timerfd.h; kernels built with CONFIG_CHECKPOINT_RESTORE)
//     after arming (timerfd_settime resets the count), added to any
//     expiration that arming produced itself.  Without the ioctl (ENOTTY)
//     they are lost, with a warning: no sequence of timerfd_settime calls
//     can leave a count of N > 1 without waiting N expirations.
// Sharing between processes: see anon_inode.h.
#pragma once

#include <string>

#include "common/scoped_fd.h"
#include "common/status.h"
#include "image/model.h"
#include "state/proc_target.h"

namespace stasis::state {

// Parses the fdinfo lines above; clock_ns is left 0.  Errors name the
// missing or malformed line.
StatusOr<image::TimerfdState> ParseTimerfdFdinfo(const std::string& fdinfo);

// The state of the target's timerfd `fd` (see above); `fdinfo` is the
// target's fdinfo text, used when no duplicate can be had.  clock_ns is
// the timer's clock read right after.  The target must be quiesced.
StatusOr<image::TimerfdState> CaptureTimerfd(const ProcTarget& target, int fd, const std::string& fdinfo);

// A new timerfd with f.timerfd's clock, schedule and pending expirations,
// O_NONBLOCK as f.flags, close-on-exec.  Errors: timerfd_create(2) (e.g.
// EPERM for the _ALARM clocks without CAP_WAKE_ALARM), timerfd_settime(2).
StatusOr<ScopedFd> RestoreTimerfd(const image::FileDescriptor& f, int warn_fd);

}  // namespace stasis::state
