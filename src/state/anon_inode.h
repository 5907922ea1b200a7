// Descriptors of anon-inode kinds -- eventfd, timerfd, signalfd, epoll --
// that Stasis recreates at restart: what they have in common.  Each kind's
// capture and restore live in its own module (eventfd.h, timerfd.h,
// signalfd.h, epoll.h); files.cc classifies descriptors and dispatches here.
//
// Sharing: descriptors of one process that share an open file description
// (dup(2)) are restored as dups of one object (FileDescriptor::same_file_as).
// An eventfd, timerfd or signalfd shared by several processes of the job
// (inherited across fork(2), or passed over a Unix socket) is found with
// kcmp(2) KCMP_FILE; every holder records the lowest (pid, fd) holding it
// (FileDescriptor::shared_pid/shared_fd) and restart creates it once, in
// their common ancestor (restore/objects.h), so it still connects them.  An
// epoll set shared by several processes becomes one copy per process (its
// targets are descriptor numbers of the process that added them); that is
// reported as a warning on the supervisor's stderr at checkpoint.
//
// Identification: the /proc/<pid>/fd link text "anon_inode:[eventfd]",
// "anon_inode:[timerfd]", "anon_inode:[signalfd]", "anon_inode:[eventpoll]"
// (proc(5)); all anon inodes share one inode, so identity comes from kcmp.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/scoped_fd.h"
#include "common/status.h"
#include "image/model.h"
#include "state/proc_target.h"

namespace stasis::state {

// The kind of an "anon_inode:..." link; kOther for anon inodes Stasis does
// not restore (io_uring, inotify, fanotify, userfaultfd, pidfd, ...).
image::FileDescriptor::Kind ClassifyAnonInode(const std::string& link);

// True for kEventfd, kTimerfd, kSignalfd, kEpoll.
bool IsAnonKind(image::FileDescriptor::Kind kind);

// Fills the kind's state of `f` (f->fd, f->kind set) from the text of the
// target's /proc/<pid>/fdinfo/<fd>.  Errors name the field.
Status CaptureAnonFd(const ProcTarget& target, const std::string& fdinfo, image::FileDescriptor* f);

// After every descriptor of the target is captured: sets same_file_as for
// dups among its anon-kind descriptors, shared_pid/shared_fd for eventfd,
// timerfd and signalfd descriptors whose open file is also held by another
// process of this pid namespace (kcmp(2) KCMP_FILE), and warns (stderr)
// about epoll sets held by several processes, once per pair (from the
// lower pid).
// Without kcmp (ENOSYS, EPERM) nothing is detected.
void RelateAnonFds(const ProcTarget& target, std::vector<image::FileDescriptor>* fds);

// Recreates the object of anon-kind descriptor `f` at any number,
// close-on-exec, with O_NONBLOCK from f.flags.  Epoll sets are created
// empty; their targets are added by RestoreEpollTargets (epoll.h) once all
// descriptors are in place.  Warnings (state that could not be restored
// exactly) go to `warn_fd` (-1: nowhere).  Errors name the fd.
StatusOr<ScopedFd> RestoreAnonFd(const image::FileDescriptor& f, int warn_fd);

// --- Helpers for the kind modules. ---

// The value after "<key>:" on the first line of `fdinfo` that starts with
// it, surrounding blanks removed; false if there is no such line.
bool FdinfoValue(const std::string& fdinfo, const std::string& key, std::string* value);

// A duplicate, in this process, of the target's descriptor `fd`
// (pidfd_open(2) + pidfd_getfd(2), Linux >= 5.6; needs ptrace access).
StatusOr<ScopedFd> DupTargetFd(pid_t pid, int fd);

// "fd N" for messages.
std::string AnonFdName(const image::FileDescriptor& f);

// Writes "stasis restart: warning: <msg>\n" to warn_fd if >= 0.
void AnonWarn(int warn_fd, const std::string& msg);

}  // namespace stasis::state
