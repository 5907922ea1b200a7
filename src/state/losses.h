// What a restart will not bring back as it was at checkpoint time, found
// from a process's captured state so that the checkpoint says it (supervisor
// output, the image's `warnings`, `stasis inspect`) instead of the restart.
// `--strict` turns any finding into a failed checkpoint.
#pragma once

#include <string>
#include <vector>

#include "image/model.h"

namespace stasis::state {

// One message per descriptor of `img` that the restart replaces or refuses,
// each starting "fd N (path)": kinds not supported yet (inotify, fanotify,
// pidfd, io_uring, a pty master, other anonymous inodes and special files:
// /dev/null after a restart, see files.cc ReplaceByDevNull), sockets of
// families other than Unix and IP (also /dev/null), and files or
// directories deleted while open without saved contents (the restart
// refuses them).  Descriptors connected to the job's stdio, shared memory
// objects and saved files are restored and never listed.  Sockets to
// outside the job are found job-wide (sockets.h OutsidePeerWarnings).
std::vector<std::string> RestartLosses(const image::ProcessImage& img);

}  // namespace stasis::state
