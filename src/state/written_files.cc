// Written files: the default-save rule and the restart check of unsaved
// ones.  Policy in written_files.h; sources: open(2) (access modes),
// proc(5) (/proc/<pid>/maps "s" flag), clock_gettime(2)
// (CLOCK_REALTIME_COARSE: the clock file timestamps are taken from,
// fs/inode.c current_time()), inode(7) (st_mtim, st_ctim).
#include "state/written_files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "state/proc_target.h"
#include "state/saved_files.h"

namespace stasis::state {
namespace {

int64_t Ns(const struct timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; }

bool StartsWith(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// What a restart compares: the file as the checkpoint recorded it.
struct Recorded {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;  // 0: not recorded
  std::string what;      // "fd 3 of pid 7" / "a shared mapping of pid 7"
};

std::string Describe(const std::string& path, const Recorded& r, const struct stat& st) {
  std::string why;
  if (static_cast<uint64_t>(st.st_size) != r.size) {
    why = "its size changed from " + std::to_string(r.size) + " to " + std::to_string(st.st_size) + " bytes";
  } else if (Ns(st.st_mtim) != r.mtime_ns) {
    why = "it was modified (mtime changed)";
  } else {
    why = "its status changed (ctime changed)";
  }
  return path + " (" + r.what + ") was changed after the checkpoint: " + why;
}

}  // namespace

StatusOr<uint64_t> ParseByteSize(const std::string& text) {
  size_t at = 0;
  while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) ++at;
  if (at == 0 || at > 19) return Status::Error("\"" + text + "\": expected a size such as 0, 4096, 64K, 256M or 2G");
  uint64_t n = std::stoull(text.substr(0, at));
  std::string unit = text.substr(at);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() == 3 && unit.compare(1, 2, "IB") == 0) unit.resize(1);
  if (unit.size() == 2 && unit[1] == 'B') unit.resize(1);
  int shift = 0;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "K") shift = 10;
  else if (unit == "M") shift = 20;
  else if (unit == "G") shift = 30;
  else if (unit == "T") shift = 40;
  else return Status::Error("\"" + text + "\": unknown unit (use K, M, G or T)");
  if (shift > 0 && n > (UINT64_MAX >> shift)) return Status::Error("\"" + text + "\": too large");
  return n << shift;
}

// Kernel pseudo files (proc(5), sysfs(5)) are regular files whose st_size
// is not their contents: they are the kernel's, not the job's, to keep.
bool IsPseudoFile(const std::string& path) { return StartsWith(path, "/proc/") || StartsWith(path, "/sys/"); }

bool IsWrittenFile(const image::FileDescriptor& f) {
  if (f.kind != image::FileDescriptor::Kind::kRegular || f.stdio_alias >= 0 || f.shmem_id != 0) return false;
  if (f.flags & O_PATH) return false;
  const int acc = f.flags & O_ACCMODE;
  if (acc != O_WRONLY && acc != O_RDWR) return false;
  if (f.path.empty() || f.path[0] != '/' || StartsWith(f.path, "/memfd:") || IsPseudoFile(f.path)) return false;
  // Deleted files are --save-files' (they cannot be checked or written back by path).
  return !LivePath(f.path).second;
}

bool IsWrittenMapping(const image::MemoryArea& a) {
  return a.kind == image::MemoryArea::Kind::kFileShared && a.shmem_id == 0 && (a.prot & PROT_WRITE) &&
         !a.name.empty() && a.name[0] == '/' && !IsPseudoFile(a.name) && !LivePath(a.name).second;
}

void WaitPastTimestamp(int64_t newest_ns) {
  // A tick is at most 10 ms (HZ=100); give up after 50 ms whatever the clock does.
  for (int i = 0; i < 50; ++i) {
    struct timespec now;
    if (::clock_gettime(CLOCK_REALTIME_COARSE, &now) != 0 || Ns(now) > newest_ns) return;
    struct timespec ms = {0, 1000000};
    ::nanosleep(&ms, nullptr);
  }
}

void MoveAsideLostJournals(const std::vector<const image::ProcessImage*>& images,
                           const std::vector<std::string>& restored,
                           const std::function<void(const std::string&)>& warn) {
  const std::set<std::string> skip(restored.begin(), restored.end());
  std::set<std::string> journals;
  for (const image::ProcessImage* img : images)
    for (const std::string& j : img->absent_files)
      if (!skip.count(j)) journals.insert(j);
  for (const std::string& j : journals) {
    struct stat st;
    if (::lstat(j.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    for (int n = 1; n < 1000; ++n) {
      const std::string aside = j + ".stasis-lost-" + std::to_string(n);
      if (::lstat(aside.c_str(), &st) == 0) continue;
      if (::rename(j.c_str(), aside.c_str()) == 0) {
        if (warn) warn(j + " did not exist at the checkpoint (it is left from the run that was lost, which SQLite "
                       "would play back into the restored database); moved aside to " + aside);
      } else if (warn) {
        warn(j + " did not exist at the checkpoint and cannot be moved aside: " + std::strerror(errno));
      }
      break;
    }
  }
}

std::vector<std::string> LockWarnings(int32_t pid, const std::vector<image::FileDescriptor>& fds) {
  std::vector<std::string> out;
  for (const image::FileDescriptor& f : fds) {
    if (f.kind != image::FileDescriptor::Kind::kRegular || f.stdio_alias >= 0) continue;
    auto text = ReadProcFile("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(f.fd));
    if (!text.ok()) continue;  // closed meanwhile: nothing to say
    // "lock:\t1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
    std::set<std::string> kinds;
    for (size_t at = text->find("lock:"); at != std::string::npos; at = text->find("lock:", at + 5)) {
      size_t colon = text->find(':', at + 5);
      size_t eol = text->find('\n', at);
      if (colon == std::string::npos || (eol != std::string::npos && colon > eol)) continue;
      size_t b = text->find_first_not_of(" \t", colon + 1);
      size_t e = b == std::string::npos ? b : text->find_first_of(" \t\n", b);
      if (b != std::string::npos) kinds.insert(text->substr(b, e - b));
    }
    if (kinds.empty()) continue;
    std::string k;
    for (const std::string& s : kinds) k += (k.empty() ? "" : "/") + s;
    out.push_back("pid " + std::to_string(pid) + ": fd " + std::to_string(f.fd) + ": " + f.path + " holds a " + k +
                  " lock, which a restart does not take again (file locks are not restored yet)");
  }
  return out;
}

Status CheckUnsavedWrittenFiles(const std::vector<const image::ProcessImage*>& images,
                                const std::vector<std::string>& restored_paths, bool keep_current,
                                const std::function<void(const std::string&)>& warn) {
  const std::set<std::string> restored(restored_paths.begin(), restored_paths.end());
  std::map<std::string, Recorded> files;  // by path; the first holder names it
  for (const image::ProcessImage* img : images) {
    const std::string pid = std::to_string(img->pid);
    for (const image::FileDescriptor& f : img->fds) {
      if (f.fd == img->agent.socket_fd || !IsWrittenFile(f) || f.saved || restored.count(f.path)) continue;
      files.emplace(f.path, Recorded{f.size, f.mtime_ns, f.ctime_ns, "fd " + std::to_string(f.fd) + " of pid " + pid});
    }
    for (const image::MemoryArea& a : img->areas) {
      if (!IsWrittenMapping(a) || restored.count(a.name)) continue;
      files.emplace(a.name, Recorded{a.file_size, a.file_mtime_ns, 0, "a shared writable mapping of pid " + pid});
    }
  }
  std::string errors;
  for (const auto& [path, r] : files) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // reported by CheckFiles/CheckAreaFiles
    const bool same = static_cast<uint64_t>(st.st_size) == r.size && Ns(st.st_mtim) == r.mtime_ns &&
                      (r.ctime_ns == 0 || Ns(st.st_ctim) == r.ctime_ns);
    if (same) continue;
    const std::string msg = Describe(path, r, st);
    if (keep_current) {
      if (warn) warn(msg + "; continuing with its current contents (--keep-current-files)");
    } else {
      errors += (errors.empty() ? "" : "; ") + msg;
    }
  }
  if (errors.empty()) return Status::Ok();
  return Status::Error(errors +
                       ". The checkpoint did not save its contents (files open for writing are saved up to "
                       "--written-files-limit bytes per checkpoint, default 256M), so it cannot be put back "
                       "as it was. Restart with --keep-current-files to continue with the current contents, "
                       "or checkpoint with a larger --written-files-limit (or --save-files PATTERN) so that "
                       "it is saved");
}

}  // namespace stasis::state
