// epoll(7) instances: capture and restore side by side.
//
// Capture reads one line per watched target from the target's
// /proc/<pid>/fdinfo/<fd> (proc(5); kernel fs/eventpoll.c ep_show_fdinfo):
//   tfd: <fd> events: <hex epoll_event.events> data: <hex data> pos:... ino:... sdev:...
// "tfd" is the number the target had when it was added (EPOLL_CTL_ADD); the
// registration outlives that number if it was closed while a dup kept the
// file open.  Each target is checked with kcmp(2) KCMP_EPOLL_TFD: it is
// restorable only if descriptor `tfd` of the process still is the watched
// file.  Targets that are not are reported at checkpoint (stderr) and at
// restart, and left out.
//
// Restore: the instance is created empty with epoll_create1(2) among the
// other descriptors (RestoreAnonFd); RestoreEpollTargets then adds every
// restorable target with EPOLL_CTL_ADD once ALL descriptors of the process
// are installed (targets may be pipes, sockets, other epoll instances...).
// What the kernel recomputes rather than restores:
//   * readiness: ADD polls the target, so a level-triggered target that is
//     ready is reported again, as before; an edge-triggered one that is
//     ready is reported once more (a spurious edge, which ET users must
//     tolerate anyway);
//   * a one-shot target that already fired (events hold only flag bits)
//     comes back armed for EPOLLERR|EPOLLHUP, which EPOLL_CTL_ADD always
//     adds: the kernel has no call that leaves a target fully disarmed;
//   * EPOLLWAKEUP is dropped by the kernel without CAP_BLOCK_SUSPEND.
// Sharing between processes: see anon_inode.h.
#pragma once

#include <string>
#include <vector>

#include "common/scoped_fd.h"
#include "common/status.h"
#include "image/model.h"
#include "state/proc_target.h"

namespace stasis::state {

// Every "tfd:" line of an epoll fdinfo, in order (restorable = true).
// Errors name the malformed line.
StatusOr<std::vector<image::EpollTarget>> ParseEpollFdinfo(const std::string& fdinfo);

// The targets of the target's epoll instance `epfd`, each checked with
// KCMP_EPOLL_TFD (without kcmp: assumed restorable).  Unrestorable targets
// are reported on stderr.
StatusOr<image::EpollState> CaptureEpoll(const ProcTarget& target, int epfd, const std::string& fdinfo);

// A new, empty epoll instance, close-on-exec, O_NONBLOCK as f.flags.
StatusOr<ScopedFd> RestoreEpoll(const image::FileDescriptor& f);

// Runs in the pre-restorer after every descriptor of `img` is installed at
// its number: adds the restorable targets of each epoll descriptor (dups
// share their original's instance and are skipped).  A target that cannot
// be added (left out at checkpoint, or EPOLL_CTL_ADD fails, e.g. EPERM for
// a descriptor that became /dev/null) is reported and left out; the program
// keeps running without it.  Reports go to descriptor 2 if the image's fd 2
// is connected to the restarting command's stderr (stdio_alias 2), else
// nowhere (fd 2 may be a file of the program's).  Never fails.
void RestoreEpollTargets(const image::ProcessImage& img);

}  // namespace stasis::state
