// Restarting the processes of a checkpoint from their images.
//
// The supervisor of the new job (pid 1 of a fresh user+pid namespace) calls
// PrecheckImage() for every image before creating any process, then
// RestoreTree(), which creates the tree top-down with clone3(2) set_tid =
// each image's pid.  Each child runs the pre-restorer (C++, with libc: loads
// and verifies all pages, reopens files) and then jumps to the restorer blob
// (libc-free, see blob/blob_args.h), which replaces the whole address space
// and returns into the program's threads.  No user code runs until every
// page has been verified.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"
#include "image/reader.h"
#include "restore/tree.h"

namespace stasis::restore {

struct RestoreOptions {
  std::string supervisor_socket;  // written into the agent's RestartInfo
  bool force_vdso_proxy = false;  // STASIS_VDSO_PROXY=1
  bool pause_before_jump = false; // STASIS_RESTART_PAUSE=1: debug aid, waits for SIGCONT/gdb
};

// Metadata-level checks (files, descriptors, kernel features); no side effects.
Status PrecheckImage(const image::ImageReader& reader);

// Restores a whole process tree (tree.h).  readers[i] is the image of
// TreeProcess i of `plan`.  The caller (pid 1 of a fresh pid namespace,
// holding CAP_CHECKPOINT_RESTORE there, single-threaded) creates the roots
// and the pipes shared by several roots (PlanPipes).  Each pre-restorer
// first sets its session/group, creates the pipes it is the creator of
// (refilled with their saved bytes), its own children and its zombies
// (clone3 set_tid), drops the pipe ends it does not hold, then loads and
// verifies its pages and reports "LOADED" on its status pipe.  Only when
// every process has loaded does the caller write "go" (one byte per
// process on a shared pipe); then each restores its descriptors (this may
// truncate files), dup3s its pipe ends into place, reports "OK" and jumps
// to the blob.  If any process fails or dies, every process of the tree is
// killed (SIGKILL), the roots are reaped and the error names the image.
// Returns the roots' pids (ascending); the caller is their parent and must
// reap them; the other processes are children of their restored parents.
StatusOr<std::vector<pid_t>> RestoreTree(const std::vector<image::ImageReader*>& readers,
                                         const TreePlan& plan, const RestoreOptions& opts);

// RestoreTree() of a single process (pid == image pid), with its zombies.
// Returns its pid once it has handed over to the blob; on failure the child
// has exited and the error names the image.  The caller must reap it.
StatusOr<pid_t> SpawnRestoredProcess(image::ImageReader& reader, const RestoreOptions& opts);

}  // namespace stasis::restore
