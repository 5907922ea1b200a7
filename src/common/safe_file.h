// Creating files without following symlinks.  A directory Stasis writes into
// (a checkpoint directory, /tmp) may be writable by another user, who can
// plant a symlink at a name Stasis is about to open ("x.tmp" ->
// /etc/shadow): an open(2) with O_CREAT|O_TRUNC follows it, so a job run by
// root would truncate the target.  Every file Stasis creates goes through
// this helper instead:
//   * the directory is opened once (O_DIRECTORY) and every later step names
//     the entry relative to that descriptor (openat, renameat, unlinkat), so
//     swapping a path component for a symlink midway redirects nothing;
//   * the file is created with O_CREAT|O_EXCL|O_NOFOLLOW (open(2): with
//     O_EXCL a symlink at the name is never followed, the call fails with
//     EEXIST); a stale entry at the temporary name (a crashed writer's file or
//     a planted symlink) is unlinked -- unlink(2) removes the link itself --
//     and the create retried once;
//   * Commit() fsyncs the file, renames it over the final name (rename(2)
//     replaces a symlink there, it does not write through it) and fsyncs the
//     directory, so the file is complete or absent.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/scoped_fd.h"
#include "common/status.h"

namespace stasis {

// Opens `dir` (O_RDONLY|O_DIRECTORY|O_CLOEXEC).  Errors name the directory.
StatusOr<ScopedFd> OpenDirectory(const std::string& dir);

// Creates `name` (a single component) in `dirfd` exclusively with `flags`
// (O_WRONLY or O_RDWR, ...) | O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC and `mode`.
// With replace_stale, an existing entry is unlinked first (never followed).
// Errors name `display` (the full path).
StatusOr<ScopedFd> CreateExclusiveAt(int dirfd, const std::string& name, int flags, mode_t mode,
                                     const std::string& display, bool replace_stale);

// "<path>.tmp", written and then renamed over <path>.
class AtomicFile {
 public:
  // Creates "<path>.tmp" (see above) with `mode` (applied with fchmod at
  // Commit, so the umask does not narrow it).  replace_stale = false: an
  // existing "<path>.tmp" is an error (EEXIST) instead of being replaced.
  // Errors name the temp path.
  static StatusOr<AtomicFile> Create(const std::string& path, mode_t mode, bool replace_stale = true);

  AtomicFile(AtomicFile&&) noexcept = default;
  AtomicFile& operator=(AtomicFile&& o) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() { Abandon(); }

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_path_; }

  // fchmod, fsync, close, renameat over the final name, fsync of the
  // directory.  On any error the temporary file is removed, and if only the
  // directory fsync failed the renamed file too (it would not be durable).
  Status Commit();
  // Removes the temporary file (no-op once committed or abandoned).
  void Abandon();

 private:
  AtomicFile(ScopedFd dir, ScopedFd fd, std::string path, std::string name, mode_t mode);
  ScopedFd dir_;
  ScopedFd fd_;
  std::string path_, tmp_path_;
  std::string name_;  // final name inside dir_
  mode_t mode_ = 0600;
  bool done_ = false;
};

// AtomicFile with the whole content at once.
Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode);

}  // namespace stasis
