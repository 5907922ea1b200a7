// Files the job writes in place: which are saved into every checkpoint by
// default, and how a restart decides about the ones that were not.
//
// Why: a file open for writing at checkpoint time is part of the job's
// world, but it lives outside the image.  After the checkpoint the lost run
// goes on writing it -- appending, and also rewriting pages inside the old
// size (a database, a MAP_SHARED mapping).  Reopening it as it is now, or
// only cutting it back to its old size, continues the restarted program on
// bytes it never wrote ("database disk image is malformed").  So
//   * checkpoint: every regular file held open for writing by a descriptor
//     (O_WRONLY/O_RDWR, not stdio, not deleted) and every file mapped
//     MAP_SHARED with PROT_WRITE is copied into the checkpoint like a
//     `--save-files` file (saved_files.h: same copy, checksum, pruning), up
//     to `written_files_limit` bytes per checkpoint (default 256 MiB: large
//     enough for logs, result files and small databases, small enough that
//     a periodic checkpoint does not silently copy gigabytes each time; a
//     file that does not fit is left out and reported with a warning).  The
//     copy is a reflink (ioctl FICLONE, ioctl_ficlone(2)) where the
//     filesystem supports it (btrfs, XFS), else a sparse copy;
//   * restart: saved files are written back into the SAME inode (open by
//     path, pwrite of the chunks that differ, ftruncate; never a rename), so
//     a program that checks the inode (SQLite) and other holders of the
//     file keep working.  A written file that was not saved must be exactly
//     as at checkpoint (size, mtime and ctime, recorded then); if it is not,
//     the restart fails naming it and the ways out (`--keep-current-files`
//     accepts its current contents; a larger `--written-files-limit` or
//     `--save-files` saves it next time).  It is never truncated.
// Timestamps have the kernel's coarse granularity (a tick): the capture
// waits until the coarse clock has passed the newest recorded timestamp of
// an unsaved file, so that any write after the job resumes changes it, and
// flushes unsaved shared mappings (fdatasync) so that a later store through
// the mapping faults again and updates mtime (filemap_page_mkwrite).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "image/model.h"

namespace stasis::state {

// Default of --written-files-limit, bytes per checkpoint (see above).
inline constexpr uint64_t kDefaultWrittenFilesLimit = 256ull << 20;

// "0", "4096", "64K", "256M", "2G", "1T" (binary units, optional "iB"/"B").
// Error names the text.
StatusOr<uint64_t> ParseByteSize(const std::string& text);

// A regular-file descriptor open for writing whose contents are saved by
// default (the rule above); never one under /proc or /sys.
bool IsWrittenFile(const image::FileDescriptor& f);

// A MAP_SHARED, PROT_WRITE mapping of a regular file by path (not shared
// memory, not deleted) whose file is saved by default.
bool IsWrittenMapping(const image::MemoryArea& a);

// Waits (a few milliseconds at most) until CLOCK_REALTIME_COARSE is past
// `newest_ns` (a file timestamp, ns since the epoch), see above.
void WaitPastTimestamp(int64_t newest_ns);

// SQLite's rollback journal "<db>-journal" exists while a transaction
// commits; one left by the lost run (killed mid-commit) is "hot" and SQLite
// plays it back into the database at its next access -- into the restored
// checkpoint-time database, corrupting it.  So the checkpoint records
// (ProcessImage::absent_files) the journals of saved files that did not
// exist then, and before the tree is recreated each one found is renamed to
// "<journal>.stasis-lost-<N>" (kept, not deleted), with a warning through
// `warn`; paths in `restored` (saved copies written back) are left alone.
void MoveAsideLostJournals(const std::vector<const image::ProcessImage*>& images,
                           const std::vector<std::string>& restored,
                           const std::function<void(const std::string&)>& warn);

// File locks are not restored yet: one message per regular-file descriptor
// of `fds` (from CaptureFiles of `target`) that holds a lock, read from the
// "lock:" lines of /proc/<pid>/fdinfo/<fd> (proc(5): flock(2), POSIX
// fcntl(2) and OFD locks, leases), for the checkpoint to warn.
std::vector<std::string> LockWarnings(int32_t pid, const std::vector<image::FileDescriptor>& fds);

// Checks, before anything is written, that every written file of `images`
// that was not saved and is not in `restored_paths` is unchanged since its
// checkpoint.  Changed files are an error naming each (with the options),
// or with `keep_current` a warning through `warn` each.  Missing files are
// left to the descriptor and mapping checks (files.h, memory.h).
Status CheckUnsavedWrittenFiles(const std::vector<const image::ProcessImage*>& images,
                                const std::vector<std::string>& restored_paths, bool keep_current,
                                const std::function<void(const std::string&)>& warn);

}  // namespace stasis::state
