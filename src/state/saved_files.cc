// Saved files: copying open files into the checkpoint and back.  Policy and
// contracts in saved_files.h; sources: fnmatch(3), lseek(2) (SEEK_DATA,
// SEEK_HOLE), proc(5) (/proc/<pid>/fd magic links), rename(2), xxhash.h
// (XXH3 streaming API), ioctl_ficlone(2).
#include "state/saved_files.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>

#include "image/io_util.h"
#include "image/manifest.h"
#include "state/written_files.h"

namespace stasis::state {
namespace {

constexpr const char kDeletedSuffix[] = " (deleted)";
constexpr size_t kChunk = 1 << 20;

// Open paths of recreated deleted files, by copy name; set by Prepare() in
// the supervisor, inherited by the pre-restorers it forks.
std::map<std::string, std::string>& OpenPaths() {
  static std::map<std::string, std::string> table;
  return table;
}

struct XxhState {
  XXH3_state_t* s = XXH3_createState();
  XxhState() { XXH3_64bits_reset(s); }
  ~XxhState() { XXH3_freeState(s); }
  XxhState(const XxhState&) = delete;
  XxhState& operator=(const XxhState&) = delete;
};

// Feeds `n` zero bytes (a hole) to the hash.
void HashZeros(XxhState& h, uint64_t n) {
  static const std::vector<uint8_t> zeros(kChunk, 0);
  while (n > 0) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, kChunk));
    XXH3_64bits_update(h.s, zeros.data(), k);
    n -= k;
  }
}

// Reads the first `size` bytes of `src` segment by segment (data runs from
// SEEK_DATA/SEEK_HOLE; holes are hashed as zeros and skipped), hashing all
// of them and, if dst >= 0, writing the data runs at the same offsets.
// `src_name`/`dst_name` are for messages.
StatusOr<uint64_t> CopyAndHash(int src, uint64_t size, int dst, const std::string& src_name,
                               const std::string& dst_name) {
  struct stat st;
  if (::fstat(src, &st) != 0) return Status::Errno(src_name + ": fstat");
  if (static_cast<uint64_t>(st.st_size) < size) {
    return Status::Error(src_name + ": ends at " + std::to_string(st.st_size) + " bytes, expected " +
                         std::to_string(size));
  }
  XxhState h;
  std::vector<uint8_t> buf(kChunk);
  uint64_t at = 0;
  bool sparse_ok = true;
  while (at < size) {
    uint64_t data = at, end = size;
    if (sparse_ok) {
      off_t d = ::lseek(src, static_cast<off_t>(at), SEEK_DATA);
      if (d < 0 && errno == ENXIO) {
        data = size;  // only a hole is left
      } else if (d < 0) {
        sparse_ok = false;  // EINVAL: no SEEK_DATA here; copy densely
      } else {
        data = std::min<uint64_t>(static_cast<uint64_t>(d), size);
        off_t e = ::lseek(src, d, SEEK_HOLE);
        end = e < 0 ? size : std::min<uint64_t>(static_cast<uint64_t>(e), size);
      }
    }
    HashZeros(h, data - at);
    at = data;
    while (at < end) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(end - at, kChunk));
      ASSIGN_OR_RETURN(size_t got, image::internal::PreadUpTo(src, buf.data(), want, at, src_name));
      if (got == 0) {
        return Status::Error(src_name + ": ends at " + std::to_string(at) + " bytes, expected " +
                             std::to_string(size));
      }
      XXH3_64bits_update(h.s, buf.data(), got);
      if (dst >= 0) {
        ssize_t w;
        size_t done = 0;
        while (done < got) {
          w = ::pwrite(dst, buf.data() + done, got - done, static_cast<off_t>(at + done));
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) return Status::Errno(dst_name + ": write");
          done += static_cast<size_t>(w);
        }
      }
      at += got;
    }
  }
  if (dst >= 0 && ::ftruncate(dst, static_cast<off_t>(size)) != 0) {
    return Status::Errno(dst_name + ": setting its size to " + std::to_string(size));  // trailing hole
  }
  return static_cast<uint64_t>(XXH3_64bits_digest(h.s));
}

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// mkdir -p (0700 for new components, which may hold scratch data).
Status MakeParents(const std::string& dir) {
  if (dir.empty() || dir == "/" || dir == ".") return Status::Ok();
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return Status::Error(dir + ": not a directory");
  }
  RETURN_IF_ERROR(MakeParents(DirOf(dir)));
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::Errno("creating directory " + dir);
  return Status::Ok();
}

// Writes the verified copy `copy` (size/checksum `s`) into `fd`; the
// checksum is checked again while writing (the copy is read once more).
Status FillFrom(const std::string& copy, const image::SavedFile& s, int fd, const std::string& target) {
  ScopedFd in(::open(copy.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return Status::Errno(copy + ": open");
  ASSIGN_OR_RETURN(uint64_t sum, CopyAndHash(in.get(), s.size, fd, copy, target));
  if (sum != s.xxh3) return Status::Error(copy + ": changed while it was being restored to " + target);
  if (::fchmod(fd, s.mode & 07777) != 0) return Status::Errno(target + ": chmod");
  return Status::Ok();
}

// Writes the verified copy `copy` into the existing regular file `target`
// in place (same inode): chunk by chunk, only where the file differs from
// the copy (an unchanged file is not written at all and keeps its mtime),
// then its size and mode.  The copy's checksum is checked again on the way.
Status WriteBackInPlace(const std::string& copy, const image::SavedFile& s, const std::string& target) {
  ScopedFd in(::open(copy.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return Status::Errno(copy + ": open");
  ScopedFd out(::open(target.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY));
  const bool compare = static_cast<bool>(out);
  if (!out) out.reset(::open(target.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY));  // write-only for us
  if (!out) return Status::Errno(target + ": open for writing it back");
  struct stat st;
  if (::fstat(out.get(), &st) != 0) return Status::Errno(target + ": fstat");
  if (!S_ISREG(st.st_mode)) return Status::Error(target + ": is no longer a regular file");
  XxhState h;
  std::vector<uint8_t> want(kChunk), have(kChunk);
  for (uint64_t at = 0; at < s.size;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(s.size - at, kChunk));
    ASSIGN_OR_RETURN(size_t got, image::internal::PreadUpTo(in.get(), want.data(), n, at, copy));
    if (got != n) return Status::Error(copy + ": shorter than recorded while restoring " + target);
    XXH3_64bits_update(h.s, want.data(), n);
    size_t old = 0;
    if (compare) {
      ASSIGN_OR_RETURN(old, image::internal::PreadUpTo(out.get(), have.data(), n, at, target));
    }
    if (old != n || std::memcmp(want.data(), have.data(), n) != 0) {
      for (size_t done = 0; done < n;) {
        ssize_t w = ::pwrite(out.get(), want.data() + done, n - done, static_cast<off_t>(at + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return Status::Errno(target + ": write");
        done += static_cast<size_t>(w);
      }
    }
    at += n;
  }
  if (static_cast<uint64_t>(XXH3_64bits_digest(h.s)) != s.xxh3)
    return Status::Error(copy + ": changed while it was being restored to " + target);
  if (static_cast<uint64_t>(st.st_size) != s.size || !compare) {
    if (::ftruncate(out.get(), static_cast<off_t>(s.size)) != 0)
      return Status::Errno(target + ": setting its size to " + std::to_string(s.size));
  }
  if ((st.st_mode & 07777) != (s.mode & 07777) && ::fchmod(out.get(), s.mode & 07777) != 0)
    return Status::Errno(target + ": chmod");
  return Status::Ok();
}

}  // namespace

std::vector<std::string> SplitSavePatterns(const std::string& colon_separated) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= colon_separated.size()) {
    size_t colon = colon_separated.find(':', at);
    if (colon == std::string::npos) colon = colon_separated.size();
    if (colon > at) out.push_back(colon_separated.substr(at, colon - at));
    at = colon + 1;
  }
  return out;
}

StatusOr<std::vector<std::string>> NormalizeSavePatterns(const std::vector<std::string>& patterns,
                                                         const std::string& cwd) {
  std::vector<std::string> out;
  for (const std::string& p : patterns) {
    if (p.empty()) return Status::Error("--save-files: empty pattern");
    std::string abs = p;
    if (p[0] != '/' && p[0] != '*') {
      std::string rel = p;
      while (rel.rfind("./", 0) == 0) rel.erase(0, 2);
      abs = (cwd.empty() || cwd.back() != '/') ? cwd + "/" + rel : cwd + rel;
    }
    if (std::find(out.begin(), out.end(), abs) == out.end()) out.push_back(std::move(abs));
  }
  return out;
}

bool MatchesSavePattern(const std::vector<std::string>& patterns, const std::string& path) {
  for (const std::string& p : patterns)
    if (::fnmatch(p.c_str(), path.c_str(), 0) == 0) return true;
  return false;
}

std::pair<std::string, bool> LivePath(const std::string& fd_path) {
  const size_t n = sizeof kDeletedSuffix - 1;
  if (fd_path.size() >= n && fd_path.compare(fd_path.size() - n, n, kDeletedSuffix) == 0)
    return {fd_path.substr(0, fd_path.size() - n), true};
  return {fd_path, false};
}

bool ShouldSaveFile(const std::vector<std::string>& patterns, const image::FileDescriptor& f) {
  if (patterns.empty() || f.kind != image::FileDescriptor::Kind::kRegular || f.stdio_alias >= 0) return false;
  // Shared memory objects (memfd, unlinked /dev/shm files) are saved by shmem.h.
  if (f.path.rfind("/memfd:", 0) == 0) return false;
  if (f.path.rfind("/dev/shm/", 0) == 0 && f.path.size() > 10 &&
      f.path.compare(f.path.size() - 10, 10, " (deleted)") == 0)
    return false;
  auto [path, deleted] = LivePath(f.path);
  return deleted || MatchesSavePattern(patterns, path);
}

StatusOr<CopyStats> WriteSavedCopy(int src, uint64_t size, const std::string& dst, const std::string& what) {
  const std::string tmp = dst + ".tmp";
  ::unlink(tmp.c_str());  // a leftover from a crashed checkpoint of this generation
  ScopedFd out(::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
  if (!out) return Status::Errno(tmp + ": create");
  auto fail = [&](Status st) {
    ::unlink(tmp.c_str());
    return st;
  };
  // A reflink shares the blocks (btrfs, XFS: no data copied); elsewhere
  // (EOPNOTSUPP, EXDEV, EINVAL) a real copy.  Either way the checksum is
  // computed from the copy.
  struct stat sst;
  StatusOr<uint64_t> sum = Status::Error("not copied");
  if (::fstat(src, &sst) == 0 && static_cast<uint64_t>(sst.st_size) == size && size > 0 &&
      ::ioctl(out.get(), FICLONE, src) == 0) {
    sum = CopyAndHash(out.get(), size, -1, tmp, "");
  } else {
    sum = CopyAndHash(src, size, out.get(), what, tmp);
  }
  if (!sum.ok()) return fail(sum.status());
  if (::fsync(out.get()) != 0) return fail(Status::Errno(tmp + ": fsync"));
  if (::close(out.release()) != 0) return fail(Status::Errno(tmp + ": close"));
  if (::rename(tmp.c_str(), dst.c_str()) != 0) return fail(Status::Errno("rename " + tmp + " -> " + dst));
  if (Status st = image::internal::FsyncParentDir(dst); !st.ok()) {
    ::unlink(dst.c_str());
    return st;
  }
  return CopyStats{size, *sum};
}

Status VerifySavedCopy(const std::string& path, const image::SavedFile& expected) {
  // A missing or wrong copy is damage of the checkpoint (Status::DataLoss).
  ScopedFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in && errno == ENOENT) return Status::DataLoss(path + ": cannot open the saved copy: " + std::strerror(ENOENT));
  if (!in) return Status::Errno(path + ": cannot open the saved copy");
  struct stat st;
  if (::fstat(in.get(), &st) != 0) return Status::Errno(path + ": fstat");
  if (static_cast<uint64_t>(st.st_size) != expected.size) {
    return Status::DataLoss(path + ": the saved copy is corrupt: " + std::to_string(st.st_size) +
                         " bytes, the checkpoint recorded " + std::to_string(expected.size));
  }
  ASSIGN_OR_RETURN(uint64_t sum, CopyAndHash(in.get(), expected.size, -1, path, ""));
  if (sum != expected.xxh3) {
    return Status::DataLoss(path + ": the saved copy is corrupt: checksum " + Hex(sum) +
                         ", the checkpoint recorded " + Hex(expected.xxh3));
  }
  return Status::Ok();
}

FileSaver::FileSaver(std::string dir, std::string job_id, uint64_t generation, std::vector<std::string> patterns,
                     uint64_t written_limit)
    : dir_(std::move(dir)),
      job_id_(std::move(job_id)),
      generation_(generation),
      patterns_(std::move(patterns)),
      written_limit_(written_limit) {}

StatusOr<image::SavedFile> FileSaver::Copy(int in, const struct stat& st, const std::string& path, bool deleted,
                                           const std::string& who) {
  const std::string id = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + path;
  const std::string name = image::SavedFileName(job_id_, XXH3_64bits(id.data(), id.size()), generation_);
  const std::string dst = dir_ + "/" + name;
  auto stats = WriteSavedCopy(in, static_cast<uint64_t>(st.st_size), dst, who);
  if (!stats.ok()) return stats.status().With("saving " + who);
  written_.push_back(dst);
  if (!deleted) saved_paths_.insert(path);
  bytes_ += stats->size;
  image::SavedFile sf;
  sf.name = name;
  sf.size = stats->size;
  sf.xxh3 = stats->xxh3;
  sf.mode = st.st_mode & 07777;
  sf.deleted = deleted;
  saved_[{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)}] = sf;
  return sf;
}

bool FileSaver::Admit(std::pair<uint64_t, uint64_t> key, const struct stat& st, const std::string& who) {
  if (unsaved_.count(key) == 0) {
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (written_limit_ >= written_bytes_ && size <= written_limit_ - written_bytes_) {
      written_bytes_ += size;
      return true;
    }
    unsaved_.insert(key);
    warnings_.push_back(who + " (" + std::to_string(size) + " bytes) is open for writing but was not saved: "
                        "written files of this checkpoint would exceed --written-files-limit (" +
                        std::to_string(written_limit_) + " bytes); if it changes before a restart, that restart "
                        "needs --keep-current-files");
  }
  // Any later write must change a timestamp restart compares (written_files.h).
  WaitPastTimestamp(std::max(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                             static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec));
  return false;
}

Status FileSaver::Save(const ProcTarget& target, std::vector<image::FileDescriptor>* fds) {
  for (std::string& w : LockWarnings(target.pid, *fds)) warnings_.push_back(std::move(w));
  for (image::FileDescriptor& f : *fds) {
    const bool by_pattern = ShouldSaveFile(patterns_, f);
    if (!by_pattern && !IsWrittenFile(f)) continue;
    const std::string link = target.ProcPath("fd/" + std::to_string(f.fd));
    const std::string who = "pid " + std::to_string(target.pid) + ": fd " + std::to_string(f.fd) + ": " + f.path;
    // A new open file description of the same inode, readable whatever the
    // descriptor's own access mode (proc(5): the link works for deleted files).
    ScopedFd in(::open(link.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return Status::Errno(who + ": cannot open it for saving");
    struct stat st;
    if (::fstat(in.get(), &st) != 0) return Status::Errno(who + ": fstat");
    if (!S_ISREG(st.st_mode)) continue;  // changed kind since CaptureFiles: leave it to files.h
    const auto key = std::make_pair(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
    if (auto it = saved_.find(key); it != saved_.end()) {
      f.saved = it->second;
      continue;
    }
    if (!by_pattern && !Admit(key, st, who)) continue;
    auto [path, deleted] = LivePath(f.path);
    ASSIGN_OR_RETURN(f.saved, Copy(in.get(), st, path, deleted, who));
  }
  return Status::Ok();
}

Status FileSaver::SaveMappings(const ProcTarget& target, const std::vector<image::MemoryArea>& areas,
                               std::vector<image::ProcessImage::SavedMapping>* out) {
  std::set<std::string> done;
  for (const image::MemoryArea& a : areas) {
    if (!IsWrittenMapping(a) || !done.insert(a.name).second) continue;
    const std::string who = "pid " + std::to_string(target.pid) + ": shared mapping of " + a.name;
    // By path: /proc/<pid>/map_files needs CAP_SYS_ADMIN in the initial
    // user namespace (proc(5)).  The pages the process stored are in the
    // page cache, so a read sees them.
    ScopedFd in(::open(a.name.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return Status::Errno(who + ": cannot open it for saving");
    struct stat st;
    if (::fstat(in.get(), &st) != 0) return Status::Errno(who + ": fstat");
    if (!S_ISREG(st.st_mode)) continue;  // a device: nothing to save
    const auto key = std::make_pair(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
    image::ProcessImage::SavedMapping m;
    m.path = a.name;
    if (auto it = saved_.find(key); it != saved_.end()) {
      m.saved = it->second;
    } else if (MatchesSavePattern(patterns_, a.name) || Admit(key, st, who)) {
      ASSIGN_OR_RETURN(m.saved, Copy(in.get(), st, a.name, false, who));
    } else {
      // Cleaned pages are write-protected again: the next store faults and
      // updates mtime, which restart compares (written_files.h).
      if (::fdatasync(in.get()) != 0) return Status::Errno(who + ": fdatasync");
      continue;
    }
    out->push_back(std::move(m));
  }
  return Status::Ok();
}

std::vector<std::string> FileSaver::AbsentJournals() const {
  std::vector<std::string> out;
  for (const std::string& p : saved_paths_) {
    const std::string j = p + "-journal";
    struct stat st;
    if (saved_paths_.count(j) == 0 && ::lstat(j.c_str(), &st) != 0 && errno == ENOENT) out.push_back(j);
  }
  return out;
}

std::vector<std::string> FileSaver::TakeWarnings() {
  std::vector<std::string> out;
  out.swap(warnings_);
  return out;
}

std::vector<std::string> FileSaver::TakeWritten() {
  std::vector<std::string> out;
  out.swap(written_);
  return out;
}

StatusOr<SavedFilesRestore> SavedFilesRestore::Prepare(const std::vector<const image::ProcessImage*>& images,
                                                       const std::vector<std::string>& dirs, bool keep_current,
                                                       const std::function<void(const std::string&)>& warn) {
  if (images.size() != dirs.size()) return Status::Error("saved files: one directory per image expected");
  struct Work {
    image::SavedFile s;
    std::string copy;               // path of the saved copy
    std::set<std::string> paths;    // live paths of the descriptors (not deleted)
    std::string deleted_path;       // the old path, if it was deleted
  };
  std::map<std::string, Work> work;  // by copy path
  for (size_t i = 0; i < images.size(); ++i) {
    for (const image::FileDescriptor& f : images[i]->fds) {
      if (!f.saved) continue;
      const std::string copy = dirs[i] + "/" + f.saved->name;
      Work& w = work[copy];
      if (w.copy.empty()) {
        w.s = *f.saved;
        w.copy = copy;
      } else if (w.s.size != f.saved->size || w.s.xxh3 != f.saved->xxh3) {
        return Status::Error(copy + ": images disagree about this saved copy (size or checksum)");
      }
      auto [path, deleted] = LivePath(f.path);
      if (path.empty() || path[0] != '/') return Status::Error("fd " + std::to_string(f.fd) + ": " + f.path +
                                                               ": a saved file needs an absolute path");
      if (deleted) w.deleted_path = path;
      else w.paths.insert(path);
    }
    for (const image::ProcessImage::SavedMapping& m : images[i]->saved_mappings) {
      const std::string copy = dirs[i] + "/" + m.saved.name;
      Work& w = work[copy];
      if (w.copy.empty()) {
        w.s = m.saved;
        w.copy = copy;
      } else if (w.s.size != m.saved.size || w.s.xxh3 != m.saved.xxh3) {
        return Status::Error(copy + ": images disagree about this saved copy (size or checksum)");
      }
      w.paths.insert(m.path);
    }
  }
  // Open directories below a pattern: created if missing (saved_files.h).
  std::set<std::string> dirs_to_make;
  for (const image::ProcessImage* img : images) {
    for (const image::FileDescriptor& f : img->fds) {
      if (f.kind == image::FileDescriptor::Kind::kDirectory && !LivePath(f.path).second &&
          !f.path.empty() && f.path[0] == '/' && MatchesSavePattern(img->save_files, f.path))
        dirs_to_make.insert(f.path);
    }
  }
  // Everything is verified before anything is written.
  for (const auto& [copy, w] : work) {
    const std::string of = !w.paths.empty() ? *w.paths.begin() : w.deleted_path;
    RETURN_IF_ERROR(VerifySavedCopy(copy, w.s).With("saved copy of " + of));
  }
  std::vector<std::string> restored;
  for (const auto& [copy, w] : work) restored.insert(restored.end(), w.paths.begin(), w.paths.end());
  RETURN_IF_ERROR(CheckUnsavedWrittenFiles(images, restored, keep_current, warn));
  MoveAsideLostJournals(images, restored, warn);

  SavedFilesRestore out;
  out.owns_table_ = true;
  OpenPaths().clear();
  for (const std::string& d : dirs_to_make) RETURN_IF_ERROR(MakeParents(d).With("restoring directory " + d));
  // Existing files first, so that a deleted file whose name was reused by a
  // saved file sees its name taken and goes to a hidden name.
  for (const auto& [copy, w] : work) {
    for (const std::string& path : w.paths) {
      struct stat st;
      if (::stat(path.c_str(), &st) == 0) {  // into the same inode (see saved_files.h)
        RETURN_IF_ERROR(WriteBackInPlace(copy, w.s, path).With("restoring saved file " + path));
        ++out.files_;
        continue;
      }
      RETURN_IF_ERROR(MakeParents(DirOf(path)).With("restoring saved file " + path));
      const std::string tmp = DirOf(path) + "/.stasis-restore." + image::internal::BaseName(copy);
      ::unlink(tmp.c_str());
      ScopedFd fd(::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
      if (!fd) return Status::Errno("restoring saved file " + path + ": create " + tmp);
      Status st2 = FillFrom(copy, w.s, fd.get(), path);
      if (st2.ok() && ::close(fd.release()) != 0) st2 = Status::Errno(tmp + ": close");
      if (st2.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st2 = Status::Errno("rename " + tmp + " -> " + path);
      if (!st2.ok()) {
        ::unlink(tmp.c_str());
        return st2.With("restoring saved file " + path);
      }
      ++out.files_;
    }
  }
  for (const auto& [copy, w] : work) {
    if (w.deleted_path.empty()) continue;
    const std::string& path = w.deleted_path;
    RETURN_IF_ERROR(MakeParents(DirOf(path)).With("restoring deleted file " + path));
    // Its old name if free, so the program sees "<path> (deleted)" again.
    std::string at = path;
    ScopedFd fd(::open(at.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
    if (!fd && errno == EEXIST) {
      at = DirOf(path) + "/.stasis-deleted-" + Hex(w.s.xxh3 ^ XXH3_64bits(path.data(), path.size()));
      ::unlink(at.c_str());
      fd.reset(::open(at.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
    }
    if (!fd) return Status::Errno("restoring deleted file " + path + ": create " + at);
    Status st = FillFrom(copy, w.s, fd.get(), path);
    ::unlink(at.c_str());  // deleted again; the descriptor keeps it alive
    if (!st.ok()) return st.With("restoring deleted file " + path);
    OpenPaths()[image::internal::BaseName(copy)] =
        "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd.get());
    out.held_.push_back(std::move(fd));
    ++out.files_;
  }
  return out;
}

SavedFilesRestore& SavedFilesRestore::operator=(SavedFilesRestore&& o) noexcept {
  if (this == &o) return *this;
  if (owns_table_) OpenPaths().clear();
  held_ = std::move(o.held_);
  files_ = o.files_;
  owns_table_ = std::exchange(o.owns_table_, false);
  return *this;
}

SavedFilesRestore::~SavedFilesRestore() {
  if (owns_table_) OpenPaths().clear();
}

std::string SavedOpenPath(const image::FileDescriptor& f) {
  if (!f.saved || !LivePath(f.path).second) return f.path;
  auto it = OpenPaths().find(f.saved->name);
  return it == OpenPaths().end() ? std::string() : it->second;
}

}  // namespace stasis::state
