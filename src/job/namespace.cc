#include "job/namespace.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "common/kerndat.h"
#include "state/tty.h"

namespace stasis::job {
namespace {

// Start report wire format: one byte 'S' (started) or 'E' (error), then for
// 'E' one byte StatusCode (so that a damaged checkpoint stays distinguishable
// from an environment error), a native uint32 length and the message.
constexpr char kStarted = 'S';
constexpr char kFailed = 'E';

// Where this process forwards the kForwardedSignals (0 = nowhere yet).
std::atomic<pid_t> g_forward_to{0};

// InterceptSignals(): where intercepted signals go, and which (bit 1<<sig).
std::atomic<int> g_intercept_fd{-1};
std::atomic<uint64_t> g_intercept_mask{0};

// True if `sig` was intercepted (its number written to g_intercept_fd).
bool Intercepted(int sig) {
  int fd = g_intercept_fd.load(std::memory_order_relaxed);
  if (fd < 0 || sig >= 64 || !(g_intercept_mask.load(std::memory_order_relaxed) & (uint64_t{1} << sig))) {
    return false;
  }
  int saved = errno;
  unsigned char byte = static_cast<unsigned char>(sig);
  ssize_t n = write(fd, &byte, 1);
  (void)n;
  errno = saved;
  return true;
}

void ForwardHandler(int sig, siginfo_t* info, void*) {
  if (Intercepted(sig)) return;
  // Terminal-generated signals already reached the job's process group.
  if (info != nullptr && info->si_code == SI_KERNEL) return;
  pid_t pid = g_forward_to.load(std::memory_order_relaxed);
  if (pid > 0) {
    int saved = errno;
    kill(pid, sig);
    errno = saved;
  }
}

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kForwardedSignals) sigaddset(&set, sig);
  sigaddset(&set, SIGCHLD);
  return set;
}

// Installs ForwardHandler for kForwardedSignals; saves the old actions in `old`.
void InstallForwarders(struct sigaction (&old)[std::size(kForwardedSignals)]) {
  struct sigaction sa {};
  sa.sa_sigaction = ForwardHandler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  for (size_t i = 0; i < std::size(kForwardedSignals); ++i) {
    sigaction(kForwardedSignals[i], &sa, &old[i]);
  }
}

bool WriteAll(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly len bytes; false on EOF or error.
bool ReadAll(int fd, void* data, size_t len) {
  char* p = static_cast<char*>(data);
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

void ReportFailure(int fd, const std::string& message, StatusCode code = StatusCode::kError) {
  uint32_t len = static_cast<uint32_t>(message.size());
  char type = kFailed;
  const char code_byte = static_cast<char>(code);
  WriteAll(fd, &type, 1);
  WriteAll(fd, &code_byte, 1);
  WriteAll(fd, &len, sizeof(len));
  WriteAll(fd, message.data(), len);
}

Status WriteProcFile(const char* path, const std::string& text) {
  ScopedFd fd(open(path, O_WRONLY | O_CLOEXEC));
  if (!fd) return Status::Errno(fmt::format("open {}", path));
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Status::Errno(fmt::format("write \"{}\" to {}", text, path));
  }
  return Status::Ok();
}

// A launcher with CAP_SETUID/CAP_SETGID (root) maps every uid and gid it
// has to itself: a process of the job then sees the owners of all files, root keeps
// its DAC override on other users' files, and a chown to another group
// works -- GNU screen, run as root, gives its pty to group tty and exits
// when that fails (chown(2) gives EINVAL for an unmapped gid).  Such a map
// can only be written from the parent user namespace with those
// capabilities (user_namespaces(7), "Defining user and group ID mappings"),
// so the launcher writes it for C1 while C1 waits on `map_sync`:
// C1 sends one byte after unshare(), the launcher answers kMapped or
// kMapSelf (C1 then writes the unprivileged one-id map itself).
constexpr char kUnshared = 'R';
constexpr char kMapped = 'M';
constexpr char kMapSelf = 'U';

// The identity over every id mapped in the launcher's own namespace (all of
// them on a host; a container's range inside one): lines "first first
// count" from its /proc/self/{uid,gid}_map lines "first outside count".
std::string IdentityOfOwnMap(const char* which) {
  FILE* f = fopen(fmt::format("/proc/self/{}", which).c_str(), "re");
  if (f == nullptr) return "";
  std::string out;
  unsigned long first = 0, outside = 0, count = 0;
  while (fscanf(f, "%lu %lu %lu", &first, &outside, &count) == 3) {
    out += fmt::format("{} {} {}\n", first, first, count);
  }
  fclose(f);
  return out;
}

// The launcher's side: writes C1's maps; false if the kernel refused.
bool WriteIdentityMaps(pid_t c1) {
  const std::string uids = IdentityOfOwnMap("uid_map"), gids = IdentityOfOwnMap("gid_map");
  return !uids.empty() && !gids.empty() &&
         WriteProcFile(fmt::format("/proc/{}/uid_map", c1).c_str(), uids).ok() &&
         WriteProcFile(fmt::format("/proc/{}/gid_map", c1).c_str(), gids).ok();
}

Status EnterNamespaces(uid_t uid, gid_t gid, int map_sync) {
  if (unshare(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS) != 0) {
    int err = errno;
    std::string hint;
    if (err == EPERM || err == ENOSPC || err == EACCES) {
      hint = " (" + kerndat::NamespaceFix() + "; 'stasis doctor' checks this node)";
    }
    return Status::Error(fmt::format("cannot create the job's namespaces: "
                                     "unshare(CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNS): {}{}",
                                     strerror(err), hint));
  }
  if (map_sync >= 0) {
    char answer = 0;
    if (!WriteAll(map_sync, &kUnshared, 1) || !ReadAll(map_sync, &answer, 1)) {
      return Status::Error("the launcher did not answer while setting up the job's uid/gid map");
    }
    if (answer == kMapped) return Status::Ok();
  }
  // setgroups must be denied before an unprivileged gid_map write (user_namespaces(7)).
  RETURN_IF_ERROR(WriteProcFile("/proc/self/setgroups", "deny"));
  RETURN_IF_ERROR(WriteProcFile("/proc/self/uid_map", fmt::format("{} {} 1\n", uid, uid)));
  RETURN_IF_ERROR(WriteProcFile("/proc/self/gid_map", fmt::format("{} {} 1\n", gid, gid)));
  return Status::Ok();
}

// In C2, before /proc is replaced: our pid as the caller's /proc sees it.
pid_t OuterPid() {
  char buf[32] = {};
  ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);
  return n > 0 ? static_cast<pid_t>(atoi(buf)) : 0;
}

Status SetUpMounts() {
  // Keep our /proc mount (and anything else) from propagating back out.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return Status::Errno("cannot make the job's mounts private: mount(/, MS_REC|MS_PRIVATE)");
  }
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    int err = errno;
    return Status::Error(fmt::format(
        "cannot mount /proc for the job's pid namespace: {}{}", strerror(err),
        err == EPERM ? " (the kernel refuses a new proc mount when parts of /proc are "
                       "hidden by over-mounts, as in some containers)"
                     : ""));
  }
  return Status::Ok();
}

pid_t WaitFor(pid_t pid, int* status) {
  for (;;) {
    pid_t r = waitpid(pid, status, 0);
    if (r >= 0 || errno != EINTR) return r;
  }
}

// C1: enters the namespaces, forks C2, waits for it.  Never returns.
[[noreturn]] void RunC1(const std::function<int(InitContext&)>& init, int report_fd,
                        pid_t launcher, const sigset_t& original_mask, uid_t uid, gid_t gid,
                        int map_sync) {
  g_intercept_fd.store(-1);  // interception is the launcher's own business
  Status st = EnterNamespaces(uid, gid, map_sync);
  if (map_sync >= 0) close(map_sync);
  if (!st.ok()) {
    ReportFailure(report_fd, st.message());
    _exit(1);
  }
  pid_t c2 = fork();
  if (c2 < 0) {
    ReportFailure(report_fd, Status::Errno("fork of the job's init process").message());
    _exit(1);
  }
  if (c2 == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    InitContext ctx;
    ctx.outer_pid = OuterPid();
    ctx.launcher_pid = launcher;
    ctx.original_mask = original_mask;
    StartReporter reporter(report_fd);
    ctx.reporter = &reporter;
    st = SetUpMounts();
    if (!st.ok()) {
      reporter.Failed(st);
      _exit(1);
    }
    int code = init(ctx);
    _exit(code);
  }
  close(report_fd);
  g_forward_to.store(c2);
  struct sigaction old[std::size(kForwardedSignals)];
  InstallForwarders(old);
  sigprocmask(SIG_SETMASK, &original_mask, nullptr);
  int status = 0;
  if (WaitFor(c2, &status) < 0) _exit(1);
  _exit(ExitCodeFromWaitStatus(status));
}

}  // namespace

void StartReporter::Started() {
  if (!fd_) return;
  char type = kStarted;
  WriteAll(fd_.get(), &type, 1);
  fd_.reset();
}

void StartReporter::Failed(const Status& error) {
  if (!fd_) return;
  ReportFailure(fd_.get(), error.message(), error.code());
  fd_.reset();
}

void InterceptSignals(const std::vector<int>& signals, int notify_fd) {
  uint64_t mask = 0;
  for (int sig : signals) {
    if (sig > 0 && sig < 64) mask |= uint64_t{1} << sig;
  }
  g_intercept_fd.store(-1);
  g_intercept_mask.store(mask);
  g_intercept_fd.store(notify_fd);
}

int ExitCodeFromWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

void ResetSignalsForExec(const InitContext& ctx) {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int sig : kForwardedSignals) sigaction(sig, &sa, nullptr);
  sigaction(SIGCHLD, &sa, nullptr);
  sigaction(SIGPIPE, &sa, nullptr);
  sigprocmask(SIG_SETMASK, &ctx.original_mask, nullptr);
}

StatusOr<int> RunInJobNamespace(const std::function<int(InitContext&)>& init) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::Errno("pipe");
  ScopedFd report_read(fds[0]);
  ScopedFd report_write(fds[1]);

  // Block the forwarded signals across fork so none is lost or kills a child
  // before its handler (or, in C2, its signalfd) is in place.
  sigset_t handled = HandledSignals(), original_mask;
  sigprocmask(SIG_BLOCK, &handled, &original_mask);
  const pid_t launcher = getpid();
  // Outside the job's pid namespace, where our process group is visible:
  // whether we run in the foreground of our terminal (state/tty.h).
  state::NoteCallerTerminal();
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  // Root: the launcher maps all ids for C1 (see WriteIdentityMaps).
  ScopedFd map_parent, map_child;
  if (geteuid() == 0) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
      map_parent.reset(sv[0]);
      map_child.reset(sv[1]);
    }
  }

  pid_t c1 = fork();
  if (c1 < 0) {
    int err = errno;
    sigprocmask(SIG_SETMASK, &original_mask, nullptr);
    return Status::Errno("fork", err);
  }
  if (c1 == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != launcher) _exit(1);  // the launcher died before prctl
    report_read.reset();
    map_parent.reset();
    RunC1(init, report_write.release(), launcher, original_mask, uid, gid,
          map_child.valid() ? map_child.release() : -1);
  }

  report_write.reset();
  map_child.reset();
  if (map_parent) {
    char ready = 0;
    if (ReadAll(map_parent.get(), &ready, 1)) {  // EOF: C1 failed, its report says why
      const char answer = WriteIdentityMaps(c1) ? kMapped : kMapSelf;
      WriteAll(map_parent.get(), &answer, 1);
    }
    map_parent.reset();
  }
  const pid_t previous_target = g_forward_to.exchange(c1);
  struct sigaction old[std::size(kForwardedSignals)];
  InstallForwarders(old);
  sigprocmask(SIG_SETMASK, &original_mask, nullptr);

  // The report: 'S', 'E'+message, or EOF if C1/C2 died first.
  std::string error;
  StatusCode error_code = StatusCode::kError;
  bool started = false;
  char type = 0;
  if (ReadAll(report_read.get(), &type, 1)) {
    if (type == kStarted) {
      started = true;
    } else {
      uint32_t len = 0;
      char code_byte = 0;
      if (ReadAll(report_read.get(), &code_byte, 1)) error_code = static_cast<StatusCode>(code_byte);
      if (ReadAll(report_read.get(), &len, sizeof(len)) && len < (1u << 20)) {
        error.resize(len);
        if (!ReadAll(report_read.get(), error.data(), len)) error.clear();
      }
      if (error.empty()) error = "the job's supervisor failed to start (truncated report)";
    }
  }
  report_read.reset();

  int status = 0;
  pid_t waited = WaitFor(c1, &status);
  int wait_errno = errno;
  for (size_t i = 0; i < std::size(kForwardedSignals); ++i) {
    sigaction(kForwardedSignals[i], &old[i], nullptr);
  }
  g_forward_to.store(previous_target);

  if (waited < 0) return Status::Errno("waitpid for the job", wait_errno);
  int code = ExitCodeFromWaitStatus(status);
  if (!error.empty()) return Status::FromCode(error_code, error);
  if (!started) {
    return Status::Error(fmt::format(
        "the job's supervisor exited with status {} before the program started", code));
  }
  return code;
}

}  // namespace stasis::job
