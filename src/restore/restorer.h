// Restarting one process from its image.
//
// The supervisor of the new job (pid 1 of a fresh user+pid namespace) calls
// PrecheckImage() for every image before creating any process, then
// SpawnRestoredProcess(), which creates a child with clone3(2) set_tid =
// the image's pid.  The child runs the pre-restorer (C++, with libc: loads
// and verifies all pages, reopens files) and then jumps to the restorer blob
// (libc-free, see blob/blob_args.h), which replaces the whole address space
// and returns into the program's threads.  No user code runs until every
// page has been verified.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"
#include "image/reader.h"

namespace stasis::restore {

struct RestoreOptions {
  std::string supervisor_socket;  // written into the agent's RestartInfo
  bool force_vdso_proxy = false;  // STASIS_VDSO_PROXY=1
  bool pause_before_jump = false; // STASIS_RESTART_PAUSE=1: debug aid, waits for SIGCONT/gdb
};

// Metadata-level checks (files, descriptors, kernel features); no side effects.
Status PrecheckImage(const image::ImageReader& reader);

// Creates the restored process (pid == image pid).  Returns its pid once the
// pre-restorer has loaded and verified every page and handed over to the
// blob; on failure the child has exited and the error says why (it includes
// the image path).  The caller is the child's parent and must reap it.
StatusOr<pid_t> SpawnRestoredProcess(image::ImageReader& reader, const RestoreOptions& opts);

}  // namespace stasis::restore
