// signalfd(2) descriptors: capture and restore side by side.
//
// Capture reads "sigmask:" of the target's /proc/<pid>/fdinfo/<fd> (proc(5);
// kernel fs/signalfd.c signalfd_show_fdinfo): the set of signals the
// descriptor accepts, as hexadecimal digits with signal 1 in the lowest
// bit.  O_NONBLOCK comes from the common "flags:" line.  Restore creates
// signalfd(-1, mask, SFD_CLOEXEC [| SFD_NONBLOCK]).  The signals waiting to
// be read are the process's pending signals, restored with the signal state
// (state/signals.h), so nothing is stored here.  Sharing between processes:
// see anon_inode.h (a signalfd reads the signals of the process that reads
// it, so a shared one behaves the same after restart).
#pragma once

#include <string>

#include "common/scoped_fd.h"
#include "common/status.h"
#include "image/model.h"

namespace stasis::state {

// Errors if "sigmask:" is missing, not hexadecimal, or wider than 64 bits.
StatusOr<image::SignalfdState> ParseSignalfdFdinfo(const std::string& fdinfo);

// A new signalfd for f.signalfd.sigmask (signals 1..64), O_NONBLOCK as
// f.flags, close-on-exec.  Errors: signalfd(2).
StatusOr<ScopedFd> RestoreSignalfd(const image::FileDescriptor& f);

}  // namespace stasis::state
