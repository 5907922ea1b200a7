// eventfd(2) descriptors: capture and restore side by side.
//
// Capture reads the target's /proc/<pid>/fdinfo/<fd> (proc(5); kernel
// fs/eventfd.c eventfd_show_fdinfo):
//   eventfd-count:  <counter, hexadecimal, 16 columns>
//   eventfd-semaphore: <0|1>      (EFD_SEMAPHORE)
// O_NONBLOCK comes from the common "flags:" line (FileDescriptor::flags).
// Restore creates eventfd(0, flags) and write(2)s the counter (the counter
// may exceed eventfd's unsigned-int initial value; a write into an empty
// counter never blocks).  Sharing between processes: see anon_inode.h.
#pragma once

#include <string>

#include "common/scoped_fd.h"
#include "common/status.h"
#include "image/model.h"

namespace stasis::state {

// Errors if "eventfd-count:" is missing or not hexadecimal, or the counter
// is 2^64-1 (never a valid eventfd value).  Without an
// "eventfd-semaphore:" line (older kernels) the mode is taken as normal.
StatusOr<image::EventfdState> ParseEventfdFdinfo(const std::string& fdinfo);

// A new eventfd with f.eventfd's counter and mode, O_NONBLOCK as f.flags,
// close-on-exec.  Errors: eventfd(2), write(2).
StatusOr<ScopedFd> RestoreEventfd(const image::FileDescriptor& f);

}  // namespace stasis::state
