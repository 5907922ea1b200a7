// File descriptors: capture from /proc, pre-restart checks, and reopening in
// the pre-restorer.  Policy and contracts in files.h; sources: proc(5)
// (/proc/<pid>/fd, fdinfo), kcmp(2), open(2), close_range(2), dup(2).
#include "state/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "common/scoped_fd.h"
#include "state/anon_inode.h"
#include "state/saved_files.h"
#include "state/tty.h"

namespace stasis::state {
namespace {

using Kind = image::FileDescriptor::Kind;

constexpr const char kDeletedSuffix[] = " (deleted)";

bool StartsWith(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}
bool IsDeleted(const std::string& path) {
  const size_t n = sizeof kDeletedSuffix - 1;
  return path.size() >= n && path.compare(path.size() - n, n, kDeletedSuffix) == 0;
}
std::string FdPrefix(int fd) { return "fd " + std::to_string(fd); }

// Numeric entries of a /proc .../fd directory, ascending.
StatusOr<std::vector<int>> ListFds(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Status::Errno("opendir " + dir);
  std::vector<int> fds;
  while (struct dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long n = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && n >= 0) fds.push_back(static_cast<int>(n));
  }
  ::closedir(d);
  std::sort(fds.begin(), fds.end());
  return fds;
}

// Pipes, sockets and other special files that are not stdio usually lead
// outside the job (a descriptor inherited from the shell, a connection to a
// server); their other end does not survive a restart.  Such a descriptor is
// replaced by /dev/null (reads see end-of-file, writes are discarded), with a
// warning, rather than refusing to restart the program.
StatusOr<ScopedFd> ReplaceByDevNull(const image::FileDescriptor& f, int warn_fd) {
  if (warn_fd >= 0) {
    const std::string msg = "stasis restart: warning: " + FdPrefix(f.fd) + " (" + f.path + ", " +
                            FdKindName(f.kind) + ") cannot be restored yet; it is now /dev/null\n";
    (void)!::write(warn_fd, msg.data(), msg.size());
  }
  ScopedFd fd(::open("/dev/null", (f.flags & (O_ACCMODE | O_NONBLOCK)) | O_CLOEXEC));
  if (!fd) return Status::Errno(FdPrefix(f.fd) + ": opening /dev/null in place of " + f.path);
  return fd;
}

Status DeletedError(const image::FileDescriptor& f) {
  return Status::Error(FdPrefix(f.fd) + ": " + f.path.substr(0, f.path.size() - (sizeof kDeletedSuffix - 1)) +
                       " was deleted while open and its contents were not saved in the checkpoint; "
                       "launch with --save-files PATTERN (any pattern also saves every deleted open "
                       "file, e.g. --save-files \"$TMPDIR/*\") to checkpoint such files");
}

Status CheckOne(const image::FileDescriptor& f, const std::vector<std::string>& save_files) {
  if (f.stdio_alias >= 0 || f.shmem_id != 0) return Status::Ok();  // shmem: recreated (shmem.h)
  struct stat st;
  switch (f.kind) {
    case Kind::kRegular:
    case Kind::kDirectory: {
      if (f.saved) return Status::Ok();  // recreated from its copy (saved_files.h)
      if (IsDeleted(f.path)) return DeletedError(f);
      if (f.kind == Kind::kDirectory && MatchesSavePattern(save_files, f.path)) {
        return Status::Ok();  // created if missing (saved_files.h)
      }
      if (::stat(f.path.c_str(), &st) != 0) return Status::Errno(FdPrefix(f.fd) + ": " + f.path);
      const bool want_dir = f.kind == Kind::kDirectory;
      if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        return Status::Error(FdPrefix(f.fd) + ": " + f.path + " is no longer a " +
                             FdKindName(f.kind));
      }
      return Status::Ok();
    }
    case Kind::kCharDevice:
      if (::stat(f.path.c_str(), &st) != 0) return Status::Errno(FdPrefix(f.fd) + ": " + f.path);
      if (!S_ISCHR(st.st_mode) || st.st_rdev != f.rdev) {
        return Status::Error(FdPrefix(f.fd) + ": " + f.path +
                             " is no longer the character device it was at checkpoint");
      }
      return Status::Ok();
    case Kind::kTty:
      return Status::Ok();  // reopened as /dev/tty or /dev/null
    default:
      return Status::Ok();  // replaced by /dev/null, see ReplaceByDevNull
  }
}

// Open flags for reopening: the image's status flags without the ones that
// only matter at creation (the kernel already drops them from f_flags, see
// open(2)), always close-on-exec until dup3 decides.
int ReopenFlags(int32_t flags) {
  return (flags & ~(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY | O_CLOEXEC)) | O_CLOEXEC;
}

// Opens what image descriptor `f` refers to, at any number, O_CLOEXEC.
// `warn_fd`: where warnings go (-1: nowhere).
StatusOr<ScopedFd> OpenOne(const image::FileDescriptor& f, const int stdio[3], int warn_fd) {
  const std::string who = FdPrefix(f.fd) + ": " + f.path;
  if (f.stdio_alias >= 0) {
    if (f.stdio_alias > 2) return Status::Error(who + ": bad stdio alias " + std::to_string(f.stdio_alias));
    int src = stdio[f.stdio_alias];
    int fd = src >= 0 ? ::fcntl(src, F_DUPFD_CLOEXEC, 0) : ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) return Status::Errno(who + ": connecting to stdio " + std::to_string(f.stdio_alias));
    return ScopedFd(fd);
  }
  switch (f.kind) {
    case Kind::kRegular: {
      if (IsDeleted(f.path) && !f.saved) return DeletedError(f);
      // A saved deleted file is reopened through the supervisor's descriptor.
      const std::string path = SavedOpenPath(f);
      if (path.empty()) return Status::Error(who + ": its saved copy was not restored");
      ScopedFd fd(::open(path.c_str(), ReopenFlags(f.flags)));
      if (!fd) return Status::Errno(who + ": reopen");
      if (f.flags & O_PATH) return fd;  // no data access: no size or offset to restore
      struct stat st;
      if (::fstat(fd.get(), &st) != 0) return Status::Errno(who + ": fstat");
      if (!S_ISREG(st.st_mode)) return Status::Error(who + ": is no longer a regular file");
      // Never truncated: a written file is either back as it was (saved) or
      // unchanged or accepted as it is now (written_files.h).
      const uint64_t size_now = static_cast<uint64_t>(st.st_size);
      if (size_now < f.size && warn_fd >= 0) {
        dprintf(warn_fd, "stasis: warning: %s is shorter (%llu bytes) than at checkpoint (%llu)\n",
                who.c_str(), static_cast<unsigned long long>(size_now),
                static_cast<unsigned long long>(f.size));
      }
      if (::lseek(fd.get(), static_cast<off_t>(f.offset), SEEK_SET) < 0) {
        return Status::Errno(who + ": seek to " + std::to_string(f.offset));
      }
      return fd;
    }
    case Kind::kDirectory: {
      if (IsDeleted(f.path)) return DeletedError(f);
      ScopedFd fd(::open(f.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | (f.flags & O_PATH)));
      if (!fd) return Status::Errno(who + ": reopen directory");
      // The position is a readdir cookie; restoring it is best effort.
      if (f.offset != 0 && !(f.flags & O_PATH) &&
          ::lseek(fd.get(), static_cast<off_t>(f.offset), SEEK_SET) < 0 && warn_fd >= 0) {
        dprintf(warn_fd, "stasis: warning: %s: cannot restore directory position: %s\n",
                who.c_str(), std::strerror(errno));
      }
      return fd;
    }
    case Kind::kCharDevice: {
      ScopedFd fd(::open(f.path.c_str(), ReopenFlags(f.flags)));
      if (!fd) return Status::Errno(who + ": reopen device");
      if (f.offset != 0) (void)::lseek(fd.get(), static_cast<off_t>(f.offset), SEEK_SET);  // ESPIPE is fine
      return fd;
    }
    case Kind::kTty: {
      // Not stdio: the old terminal is gone.  Our controlling terminal if we
      // have one (open fails with ENXIO otherwise), else /dev/null.
      const int flags = (f.flags & (O_ACCMODE | O_NONBLOCK)) | O_NOCTTY | O_CLOEXEC;
      int fd = ::open("/dev/tty", flags);
      if (fd < 0) fd = ::open("/dev/null", flags);
      if (fd < 0) return Status::Errno(who + ": opening /dev/null in place of the terminal");
      return ScopedFd(fd);
    }
    case Kind::kEventfd:
    case Kind::kTimerfd:
    case Kind::kSignalfd:
    case Kind::kEpoll:
      return RestoreAnonFd(f, warn_fd);
    default:
      return ReplaceByDevNull(f, warn_fd);
  }
}

// Closes every descriptor except those in `preserved` (sorted, unique, >= 0).
Status CloseAllExcept(const std::vector<int>& preserved) {
  unsigned lo = 0;
  bool ok = true;
  for (int p : preserved) {
    if (static_cast<unsigned>(p) > lo) ok = ok && ::close_range(lo, static_cast<unsigned>(p) - 1, 0) == 0;
    lo = static_cast<unsigned>(p) + 1;
  }
  ok = ok && ::close_range(lo, ~0U, 0) == 0;
  if (ok) return Status::Ok();
  if (errno != ENOSYS) return Status::Errno("close_range");
  // Kernels before 5.9: walk /proc/self/fd (the listing's own fd is closed
  // by ListFds before we get here).
  ASSIGN_OR_RETURN(std::vector<int> open_fds, ListFds("/proc/self/fd"));
  for (int fd : open_fds) {
    if (!std::binary_search(preserved.begin(), preserved.end(), fd)) ::close(fd);
  }
  return Status::Ok();
}

}  // namespace

const char* FdKindName(Kind kind) {
  switch (kind) {
    case Kind::kRegular: return "regular file";
    case Kind::kDirectory: return "directory";
    case Kind::kCharDevice: return "character device";
    case Kind::kTty: return "terminal";
    case Kind::kPipe: return "pipe";
    case Kind::kFifo: return "FIFO";
    case Kind::kSocket: return "socket";
    case Kind::kOther: return "special file";
    case Kind::kEventfd: return "eventfd";
    case Kind::kTimerfd: return "timerfd";
    case Kind::kSignalfd: return "signalfd";
    case Kind::kEpoll: return "epoll";
  }
  return "unknown";
}

StatusOr<Fdinfo> ParseFdinfo(const std::string& text) {
  Fdinfo out;
  bool have_pos = false, have_flags = false;
  size_t at = 0;
  while (at < text.size()) {
    size_t eol = text.find('\n', at);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(at, eol - at);
    at = eol + 1;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    const char* value = line.c_str() + colon + 1;
    char* end = nullptr;
    errno = 0;
    if (key == "pos") {
      out.pos = std::strtoull(value, &end, 10);
      have_pos = end != value && errno == 0;
      if (!have_pos) return Status::Error("fdinfo: bad pos: line \"" + line + "\"");
    } else if (key == "flags") {
      unsigned long v = std::strtoul(value, &end, 8);
      have_flags = end != value && errno == 0 && v <= 0xffffffffUL;
      if (!have_flags) return Status::Error("fdinfo: bad flags: line \"" + line + "\"");
      out.flags = static_cast<int32_t>(v);
    }
  }
  if (!have_pos || !have_flags) return Status::Error("fdinfo: missing pos: or flags: line");
  return out;
}

Kind ClassifyFd(const std::string& link, mode_t mode, dev_t rdev) {
  if (StartsWith(link, "pipe:[")) return Kind::kPipe;
  if (StartsWith(link, "socket:[")) return Kind::kSocket;
  if (StartsWith(link, "anon_inode:")) return ClassifyAnonInode(link);
  if (S_ISREG(mode)) return Kind::kRegular;
  if (S_ISDIR(mode)) return Kind::kDirectory;
  if (S_ISFIFO(mode)) return Kind::kFifo;
  if (S_ISSOCK(mode)) return Kind::kSocket;
  if (S_ISCHR(mode)) {
    // Documentation/admin-guide/devices.txt: 136-143 pts slaves, 4 tty/ttyS,
    // 5:0 /dev/tty, 5:1 /dev/console.  5:2 is /dev/ptmx, a pty master: a
    // reopen would create an unrelated pty, so it counts as unsupported.
    unsigned maj = major(rdev), min = minor(rdev);
    if (maj == 5 && min == 2) return Kind::kOther;
    if ((maj >= 136 && maj <= 143) || maj == 4 || maj == 5) return Kind::kTty;
    return Kind::kCharDevice;
  }
  return Kind::kOther;
}

StatusOr<std::vector<image::FileDescriptor>> CaptureFiles(const ProcTarget& target, int skip_fd) {
  const std::string who = "pid " + std::to_string(target.pid);
  auto listed = ListFds(target.ProcPath("fd"));
  if (!listed.ok()) return listed.status().With(who);
  const std::vector<int>& fds = *listed;

  struct Identity { dev_t dev; ino_t ino; };
  std::map<int, Identity> stdio_identity;  // for the fallback without kcmp
  std::vector<image::FileDescriptor> out;
  for (int n : fds) {
    if (n == skip_fd) continue;
    image::FileDescriptor f;
    f.fd = n;
    const std::string link_path = target.ProcPath("fd/" + std::to_string(n));
    const std::string ctx = who + ": " + FdPrefix(n);
    auto link = ReadLink(link_path);
    if (!link.ok()) return link.status().With(ctx);
    f.path = std::move(link).value();
    struct stat st;
    if (::stat(link_path.c_str(), &st) != 0) return Status::Errno(ctx + ": stat " + link_path);
    auto info_text = ReadProcFile(target.ProcPath("fdinfo/" + std::to_string(n)));
    if (!info_text.ok()) return info_text.status().With(ctx);
    auto info = ParseFdinfo(*info_text);
    if (!info.ok()) return info.status().With(ctx);
    f.offset = info->pos;
    f.flags = info->flags;  // raw f_flags; O_CLOEXEC is also kept in `cloexec`
    f.cloexec = (info->flags & O_CLOEXEC) != 0;
    f.kind = ClassifyFd(f.path, st.st_mode, st.st_rdev);
    if (f.kind == Kind::kRegular) f.size = static_cast<uint64_t>(st.st_size);
    if (f.kind == Kind::kCharDevice || f.kind == Kind::kTty) f.rdev = st.st_rdev;
    f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    f.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
    if (IsAnonKind(f.kind)) RETURN_IF_ERROR(CaptureAnonFd(target, *info_text, &f).With(ctx));
    if (f.kind == Kind::kTty) {
      // Settings to reapply at restart (tty.h); none if it hung up.
      auto terminal = CaptureTerminal(target, n);
      if (terminal.ok()) f.terminal = std::move(terminal).value();
    }

    if (n <= 2) {
      f.stdio_alias = n;
      stdio_identity[n] = {st.st_dev, st.st_ino};
    } else {
      for (int k = 0; k <= 2 && f.stdio_alias < 0; ++k) {
        if (stdio_identity.count(k) == 0) continue;  // stdio k not open
        long r = ::syscall(SYS_kcmp, target.pid, target.pid, KCMP_FILE, n, k);
        if (r == 0) {
          f.stdio_alias = k;
        } else if (r < 0 && (errno == ENOSYS || errno == EPERM)) {
          // No kcmp (CONFIG_KCMP off or denied): the same inode is the best
          // available evidence.  Pipes and ttys are what matters here.
          const Identity& id = stdio_identity[k];
          if (id.dev == st.st_dev && id.ino == st.st_ino) f.stdio_alias = k;
        } else if (r < 0 && errno != EBADF) {
          return Status::Errno(ctx + ": kcmp with fd " + std::to_string(k));
        }
      }
    }
    out.push_back(std::move(f));
  }
  RelateAnonFds(target, &out);
  return out;
}

Status CheckFiles(const image::ProcessImage& img) {
  std::string errors;
  for (const image::FileDescriptor& f : img.fds) {
    if (f.fd == img.agent.socket_fd && f.fd >= 0) continue;  // never restored
    Status st = CheckOne(f, img.save_files);
    if (!st.ok()) errors += (errors.empty() ? "" : "; ") + st.message();
  }
  if (errors.empty()) return Status::Ok();
  return Status::Error(errors);
}

void RelateStdioToJob(int32_t target_pid, int32_t job_stdio_pid, image::ProcessImage* img) {
  auto same = [&](int fd, int k) -> int {  // 1 same, 0 different, -1 unknown
    long r = ::syscall(SYS_kcmp, target_pid, job_stdio_pid, KCMP_FILE, fd, k);
    return r == 0 ? 1 : r > 0 ? 0 : -1;
  };
  for (image::FileDescriptor& f : img->fds) {
    if (f.stdio_alias < 0) continue;
    const int r = same(f.fd, f.stdio_alias);
    if (r != 0) continue;  // the job's stdio, or cannot tell
    f.stdio_alias = -1;
    for (int k = 0; k <= 2 && f.stdio_alias < 0; ++k) {
      if (same(f.fd, k) == 1) f.stdio_alias = k;  // e.g. 1 >&2 of the job
    }
  }
}

int HighestFd(const image::ProcessImage& img) {
  int highest = -1;
  for (const image::FileDescriptor& f : img.fds) highest = std::max(highest, f.fd);
  return highest;
}

Status RestoreFiles(const image::ProcessImage& img, const int stdio[3],
                    const std::vector<int>& keep) {
  // Image descriptors to install (the agent's socket never is).
  std::vector<const image::FileDescriptor*> todo;
  std::set<int> targets;
  for (const image::FileDescriptor& f : img.fds) {
    if (f.fd < 0) return Status::Error("image has a negative descriptor number");
    if (f.fd == img.agent.socket_fd) continue;
    if (!targets.insert(f.fd).second) return Status::Error(FdPrefix(f.fd) + " appears twice in the image");
    todo.push_back(&f);
  }
  std::set<int> keep_set;
  for (int k : keep) {
    if (k < 0) continue;
    if (targets.count(k)) {
      return Status::Error(FdPrefix(k) + " is needed by the restorer but is also an image "
                           "descriptor (keep numbers must be above the image's highest)");
    }
    keep_set.insert(k);
  }
  std::set<int> preserved_set = keep_set;
  for (int k = 0; k < 3; ++k) if (stdio[k] >= 0) preserved_set.insert(stdio[k]);
  const int warn_fd = stdio[2];

  // Temp numbers above everything in play, so that opening never lands on a
  // number still to be filled and dup3 never overwrites a live descriptor.
  int base = HighestFd(img);
  if (!preserved_set.empty()) base = std::max(base, *preserved_set.rbegin());
  base += 1;

  RETURN_IF_ERROR(CloseAllExcept(std::vector<int>(preserved_set.begin(), preserved_set.end())));

  std::vector<ScopedFd> temps;
  temps.reserve(todo.size());
  std::map<int, int> temp_of;  // image fd -> its temp number, for same_file_as
  for (const image::FileDescriptor* f : todo) {
    ScopedFd opened;
    if (f->same_file_as >= 0 && temp_of.count(f->same_file_as)) {
      opened.reset(::fcntl(temp_of[f->same_file_as], F_DUPFD_CLOEXEC, 0));  // a dup (anon_inode.h)
      if (!opened) return Status::Errno(FdPrefix(f->fd) + ": dup of fd " + std::to_string(f->same_file_as));
    } else {
      ASSIGN_OR_RETURN(opened, OpenOne(*f, stdio, warn_fd));
    }
    int t = ::fcntl(opened.get(), F_DUPFD_CLOEXEC, base);
    if (t < 0) return Status::Errno(FdPrefix(f->fd) + ": " + f->path + ": F_DUPFD to " + std::to_string(base));
    temps.emplace_back(t);
    temp_of[f->fd] = t;
  }
  std::vector<RestoredTerminalFd> terminals;
  for (size_t i = 0; i < todo.size(); ++i) {
    if (todo[i]->terminal) terminals.push_back({todo[i], temps[i].get()});
  }
  RestoreTerminals(img, terminals, NotedCallerTerminal(), warn_fd);
  // The stdio copies are no longer needed and may sit on target numbers.
  for (int k = 0; k < 3; ++k) {
    if (stdio[k] < 0 || keep_set.count(stdio[k])) continue;
    bool seen = false;
    for (int j = 0; j < k; ++j) seen = seen || stdio[j] == stdio[k];
    if (!seen) ::close(stdio[k]);
  }
  for (size_t i = 0; i < todo.size(); ++i) {
    const image::FileDescriptor& f = *todo[i];
    if (::dup3(temps[i].get(), f.fd, f.cloexec ? O_CLOEXEC : 0) < 0) {
      return Status::Errno(FdPrefix(f.fd) + ": " + f.path + ": dup3");
    }
    temps[i].reset();
  }
  return Status::Ok();
}

}  // namespace stasis::state
