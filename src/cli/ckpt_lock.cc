#include "cli/ckpt_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

namespace stasis::cli {
namespace {

constexpr char kLockName[] = ".stasis.lock";

std::optional<LockHolder> ParseHolder(const std::string& text) {
  std::istringstream in(text);
  LockHolder h;
  long pid = 0;
  if (!(in >> pid >> h.slurm_job >> h.host) || pid <= 0) return std::nullopt;
  h.pid = static_cast<pid_t>(pid);
  in >> h.command >> h.coordinator;  // absent in lock files of older versions
  if (h.command == "-") h.command.clear();
  if (h.coordinator == "-") h.coordinator.clear();
  return h;
}

std::string Describe(const LockHolder& h) {
  std::string s = h.command.empty() ? "stasis" : "stasis " + h.command;
  s += fmt::format(", pid {} on {}", h.pid, h.host);
  if (h.slurm_job != "-") s += " (Slurm job " + h.slurm_job + ")";
  if (!h.coordinator.empty()) s += ", coordinator " + h.coordinator;
  return s;
}

}  // namespace

std::string ThisHost() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return "unknown-host";
  return host;
}

StatusOr<ScopedFd> LockCkptDir(const std::string& dir, const std::string& command,
                               const std::string& coordinator, std::optional<LockHolder>* holder, int wait_ms) {
  const std::string path = (dir.empty() || dir.back() == '/' ? dir : dir + "/") + kLockName;
  ScopedFd dfd(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) return Status::Errno("cannot open the lock file " + path + ": open " + dir);
  ScopedFd fd(openat(dfd.get(), kLockName, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644));
  if (!fd) {
    int err = errno;
    if (err == ELOOP) return Status::Error("refusing the lock file " + path + ": it is a symbolic link");
    return Status::Errno("cannot open the lock file " + path, err);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return Status::Errno("fstat " + path);
  if (!S_ISREG(st.st_mode)) return Status::Error("refusing the lock file " + path + ": not a regular file");
  if (st.st_uid != geteuid()) {
    return Status::Error(fmt::format("refusing the lock file {}: it belongs to uid {}, not to us (uid {}); "
                                     "use a checkpoint directory of your own",
                                     path, st.st_uid, geteuid()));
  }
  if (st.st_nlink != 1) {
    return Status::Error(fmt::format("refusing the lock file {}: it has {} hard links", path, st.st_nlink));
  }
  // A holder that is ending (the launcher of a job just stopped by
  // `checkpoint --kill` returns a moment after the checkpoint) is waited for.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  int locked;
  while ((locked = flock(fd.get(), LOCK_EX | LOCK_NB)) != 0 && errno == EWOULDBLOCK &&
         std::chrono::steady_clock::now() < deadline) {
    usleep(20 * 1000);
  }
  if (locked != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) return Status::Errno("flock " + path, err);
    char text[512] = {};
    ssize_t n = pread(fd.get(), text, sizeof text - 1, 0);
    auto h = ParseHolder(n > 0 ? std::string(text, static_cast<size_t>(n)) : "");
    if (holder) *holder = h ? *h : LockHolder{};  // set exactly when busy
    return Status::Error(fmt::format("checkpoint directory {} is in use by another job{}; wait for it to end "
                                     "or use another --ckptdir",
                                     dir, h ? ": " + Describe(*h) : ""));
  }
  const char* job = std::getenv("SLURM_JOB_ID");
  std::string text = fmt::format("{} {} {} {} {}\n", getpid(), job && *job ? job : "-", ThisHost(),
                                 command.empty() ? "-" : command, coordinator.empty() ? "-" : coordinator);
  if (ftruncate(fd.get(), 0) != 0 || pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    return Status::Errno("writing the lock file " + path);
  }
  return fd;
}

}  // namespace stasis::cli
