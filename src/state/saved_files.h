// Saved files (`--save-files PATTERN`): contents of open regular files copied
// into the checkpoint, capture and restore side by side.
//
// Why: descriptors of regular files are normally reopened by path at restart
// (files.h).  That fails for a file that was unlinked while open (mkstemp +
// unlink, a common scratch idiom) and for files on node-local scratch
// ($TMPDIR, /tmp, a local SSD) when the job restarts on another node.
//
// Which descriptors are saved (the rule, also in docs/saved-files.md):
//   * a regular-file descriptor whose absolute path matches one of the
//     patterns, matched with fnmatch(3) without flags: `*`, `?` and `[...]`
//     also match `/`, so "/scratch/$USER/*" covers the whole tree below it;
//     a pattern that does not start with `/` or `*` is taken relative to the
//     current directory of `stasis launch`/`run`/`restart`;
//   * once any pattern is given, every regular file that was deleted while
//     open, whatever its path: it cannot come back any other way;
//   * never a descriptor connected to the job's stdin/stdout/stderr (those
//     follow the restarting command's stdio, files.h).
// A directory descriptor whose path matches is not saved, but the
// directory is created (empty) at restart if it is missing.
// Without patterns a deleted open file fails the restart with an error that
// suggests `--save-files`.
//
// Capture (FileSaver, in the supervisor while the job is quiesced): each file
// is copied once per checkpoint however many descriptors and processes hold
// it (keyed by st_dev/st_ino), through /proc/<pid>/fd/<n> so a deleted file
// is readable (proc(5)).  The copy is a plain file in the checkpoint
// directory, SavedFileName() (image/manifest.h), holes kept as holes
// (lseek(2) SEEK_DATA/SEEK_HOLE), written as <name>.tmp, fsync'd and renamed
// before the image that refers to it and before the manifest, so a failed
// checkpoint never leaves a manifest pointing at a partial copy; pruning
// deletes copies with their generation (PruneCheckpoints).  Size, XXH3-64
// checksum, permission bits and whether the file was deleted go into
// FileDescriptor::saved of every descriptor of that file.
//
// The same copies also hold, by default, the files the job writes in place
// (descriptors open for writing, writable MAP_SHARED mappings), within a
// size limit per checkpoint: written_files.h.  A copy is a reflink (ioctl
// FICLONE) where the filesystem can, else a sparse copy.
//
// Restore (SavedFilesRestore::Prepare, in the supervisor before any process
// of the tree is created; each file once for the whole tree): every copy is
// verified first (size and checksum; a bad copy is an error naming it and
// nothing is written or started), and so are the written files that were
// not saved (written_files.h).  Then
//   * a file that still exists is written back into its inode: only the
//     chunks that differ are written (pwrite), then ftruncate to its size
//     and the mode restored -- never a rename, which would give it a new
//     inode under the feet of programs that check it (SQLite refuses to
//     write a database file that was replaced: "attempt to write a
//     readonly database");
//   * a file that is missing is recreated (missing parent directories
//     created, mode restored; atomically: a temporary name, then rename);
//   * a deleted file is recreated with its contents at its old path if that
//     name is free (else as ".stasis-deleted-<hash>" in the same directory),
//     held open by the supervisor and unlinked at once; the pre-restorers
//     reopen it through /proc/<supervisor pid>/fd/<n> (SavedOpenPath), so the
//     program again holds an unlinked file, shown as "<path> (deleted)".
// Offsets and flags are then files.h's, unchanged.
#pragma once

#include <sys/types.h>

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/scoped_fd.h"
#include "common/status.h"
#include "image/model.h"
#include "state/proc_target.h"

namespace stasis::state {

// --- Patterns ---

// The STASIS_SAVE_FILES form: patterns separated by ':' (empty entries
// dropped).
std::vector<std::string> SplitSavePatterns(const std::string& colon_separated);

// Makes relative patterns absolute against `cwd` (see the rule above) and
// drops duplicates, keeping the order.  Error: an empty pattern.
StatusOr<std::vector<std::string>> NormalizeSavePatterns(const std::vector<std::string>& patterns,
                                                         const std::string& cwd);

// fnmatch(3) of `path` against any pattern (flags 0).
bool MatchesSavePattern(const std::vector<std::string>& patterns, const std::string& path);

// The path of a descriptor without the kernel's " (deleted)" suffix, and
// whether it had one.
std::pair<std::string, bool> LivePath(const std::string& fd_path);

// Whether descriptor `f` is saved under `patterns` (the rule above).
bool ShouldSaveFile(const std::vector<std::string>& patterns, const image::FileDescriptor& f);

// --- The saved copy: a sparse plain file plus size and checksum. ---

struct CopyStats {
  uint64_t size = 0;  // bytes, holes included
  uint64_t xxh3 = 0;  // XXH3-64 over all `size` bytes, holes as zeros
};

// Copies the first `size` bytes of `src` (any readable fd, read with pread)
// into a new file `dst` atomically: <dst>.tmp, fsync, rename, fsync of the
// directory.  Holes of `src` (SEEK_DATA/SEEK_HOLE; filesystems without them
// are copied densely) stay holes.  On error nothing is left at `dst` or
// <dst>.tmp.  Errors name `what` (the file being saved) and `dst`; a file
// shorter than `size` is an error.
StatusOr<CopyStats> WriteSavedCopy(int src, uint64_t size, const std::string& dst, const std::string& what);

// Reads the copy at `path` and checks it against `expected` (size, then
// checksum).  Errors say which, name the file, and say the copy is corrupt.
Status VerifySavedCopy(const std::string& path, const image::SavedFile& expected);

// --- Capture (supervisor, job quiesced) ---

class FileSaver {
 public:
  // Copies go to `dir`, named SavedFileName(job_id, ., generation).
  // `written_limit`: bytes of written files (written_files.h) saved per
  // checkpoint at most; 0: none.
  FileSaver(std::string dir, std::string job_id, uint64_t generation, std::vector<std::string> patterns,
            uint64_t written_limit = 0);

  // Saves every descriptor of `fds` (from CaptureFiles of `target`) that
  // ShouldSaveFile() selects, and the written ones (IsWrittenFile) while
  // they fit in the limit, and sets its `saved`.  A file already saved in
  // this checkpoint (same st_dev/st_ino) is not copied again.  Errors name
  // the pid, fd and path.
  Status Save(const ProcTarget& target, std::vector<image::FileDescriptor>* fds);

  // Saves the files of the writable shared mappings among `areas`
  // (IsWrittenMapping) while they fit in the limit, into `out`.  Unsaved
  // ones are flushed (fdatasync) so that later stores update their mtime.
  Status SaveMappings(const ProcTarget& target, const std::vector<image::MemoryArea>& areas,
                      std::vector<image::ProcessImage::SavedMapping>* out);

  // ProcessImage::absent_files for the files saved so far (see there):
  // call after Save() and SaveMappings().
  std::vector<std::string> AbsentJournals() const;

  // One message per written file left out because of the limit, and per
  // descriptor holding a file lock (LockWarnings), since the last call (the
  // caller warns).
  std::vector<std::string> TakeWarnings();

  // Paths of the copies written since the last call: the caller deletes
  // them if the checkpoint fails.
  std::vector<std::string> TakeWritten();

  const std::vector<std::string>& patterns() const { return patterns_; }
  uint64_t files() const { return saved_.size(); }
  uint64_t bytes() const { return bytes_; }

 private:
  // Copies the file open at `in` (stat `st`) for descriptor/mapping `who`.
  StatusOr<image::SavedFile> Copy(int in, const struct stat& st, const std::string& path, bool deleted,
                                  const std::string& who);
  // A written file: whether it still fits (else remembered as unsaved, with
  // a warning and the timestamp wait of written_files.h).
  bool Admit(std::pair<uint64_t, uint64_t> key, const struct stat& st, const std::string& who);

  std::string dir_, job_id_;
  uint64_t generation_;
  std::vector<std::string> patterns_;
  uint64_t written_limit_ = 0, written_bytes_ = 0;
  std::map<std::pair<uint64_t, uint64_t>, image::SavedFile> saved_;  // (st_dev, st_ino) -> copy
  std::set<std::pair<uint64_t, uint64_t>> unsaved_;  // written files over the limit
  std::set<std::string> saved_paths_;                // live paths of the files saved
  std::vector<std::string> written_, warnings_;
  uint64_t bytes_ = 0;
};

// --- Restore (supervisor, before the tree is created) ---

// The files of one restart, recreated; owns the descriptors of the
// recreated deleted files until destroyed (after RestoreTree() returned:
// by then every process has its own).  Not copyable.
class SavedFilesRestore {
 public:
  // `images[i]` was read from checkpoint directory `dirs[i]` (where its
  // copies are).  Verifies every copy, then recreates the files (see the
  // top of this file) and records the open paths SavedOpenPath() returns in
  // this process and the processes it forks.  Errors name the copy and the
  // file; a verification error, or a written file that changed but was not
  // saved (written_files.h; with `keep_current` a warning through `warn`),
  // leaves every file untouched.
  static StatusOr<SavedFilesRestore> Prepare(const std::vector<const image::ProcessImage*>& images,
                                             const std::vector<std::string>& dirs, bool keep_current = false,
                                             const std::function<void(const std::string&)>& warn = {});

  SavedFilesRestore() = default;
  SavedFilesRestore(SavedFilesRestore&& o) noexcept { *this = std::move(o); }
  SavedFilesRestore& operator=(SavedFilesRestore&& o) noexcept;
  ~SavedFilesRestore();  // closes the held files, forgets the open paths

  size_t files() const { return files_; }

 private:
  std::vector<ScopedFd> held_;  // recreated deleted files, already unlinked
  size_t files_ = 0;
  bool owns_table_ = false;
};

// Pre-restorer (files.cc OpenOne): the path to open for a regular-file
// descriptor -- for a deleted saved file, "/proc/<pid>/fd/<n>" of the file
// Prepare() recreated (empty if Prepare() did not run: an error for the
// caller); otherwise f.path.
std::string SavedOpenPath(const image::FileDescriptor& f);

}  // namespace stasis::state
