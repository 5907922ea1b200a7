#include "common/kerndat.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "common/scoped_fd.h"

namespace stasis::kerndat {
namespace {

// Linux >= 6.7 uapi (linux/fs.h of Debian 12's 6.1 headers lacks them).
constexpr unsigned long kPagemapScan = 0xc0606610;  // _IOWR('f', 16, struct pm_scan_arg)
struct PmScanArg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
      category_anyof_mask, return_mask;
};
struct PageRegion {
  uint64_t start, end, categories;
};
constexpr uint64_t kPageIsPresent = 1 << 3;
constexpr uint64_t kUffdFeatureWpAsync = 1ULL << 15;
constexpr int kUffdUserModeOnly = 1;

std::string ReadSysctl(const char* path) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s)) return "";
  return s;
}

bool WriteFile(const char* path, const std::string& text) {
  ScopedFd fd(open(path, O_WRONLY | O_CLOEXEC));
  return fd && write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

// Stages of the namespace probe, reported by the child as (stage, errno).
enum Stage : int {
  kUnshareUser = 1,
  kIdMaps,
  kUnsharePidMnt,
  kForkInit,
  kPrivateMounts,
  kMountProc,
  kNsLastPid,
  kClone3SetTid,
  kAllDone,
};

struct ProbeResult {
  int stage = 0;
  int err = 0;
};

[[noreturn]] void Report(int fd, int stage, int err) {
  ProbeResult r{stage, err};
  ssize_t n = write(fd, &r, sizeof r);
  (void)n;
  _exit(0);
}

// pid 1 of the probe's pid namespace: what the job's supervisor does first.
[[noreturn]] void ProbeInit(int fd) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) Report(fd, kPrivateMounts, errno);
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    Report(fd, kMountProc, errno);
  if (!WriteFile("/proc/sys/kernel/ns_last_pid", "1000")) Report(fd, kNsLastPid, errno);
  pid_t want = 4242;
  struct clone_args ca {};
  ca.exit_signal = SIGCHLD;
  ca.set_tid = reinterpret_cast<uint64_t>(&want);
  ca.set_tid_size = 1;
  long pid = syscall(SYS_clone3, &ca, sizeof ca);
  if (pid == 0) _exit(0);
  if (pid < 0) Report(fd, kClone3SetTid, errno);
  int st;
  waitpid(static_cast<pid_t>(pid), &st, 0);
  Report(fd, pid == want ? kAllDone : kClone3SetTid, pid == want ? 0 : ESRCH);
}

[[noreturn]] void ProbeChild(int fd, uid_t uid, gid_t gid) {
  if (unshare(CLONE_NEWUSER) != 0) Report(fd, kUnshareUser, errno);
  if (!WriteFile("/proc/self/setgroups", "deny") || !WriteFile("/proc/self/uid_map", fmt::format("{} {} 1\n", uid, uid)) ||
      !WriteFile("/proc/self/gid_map", fmt::format("{} {} 1\n", gid, gid)))
    Report(fd, kIdMaps, errno);
  if (unshare(CLONE_NEWPID | CLONE_NEWNS) != 0) Report(fd, kUnsharePidMnt, errno);
  pid_t init = fork();
  if (init < 0) Report(fd, kForkInit, errno);
  if (init == 0) ProbeInit(fd);
  int st;
  waitpid(init, &st, 0);
  _exit(0);
}

ProbeResult RunNamespaceProbe() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return {kUnshareUser, errno};
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  pid_t child = fork();
  if (child < 0) {
    close(p[0]);
    close(p[1]);
    return {kUnshareUser, errno};
  }
  if (child == 0) {
    close(p[0]);
    ProbeChild(p[1], uid, gid);
  }
  close(p[1]);
  ProbeResult r;
  ssize_t n = read(p[0], &r, sizeof r);
  close(p[0]);
  int st;
  while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof r)) return {kForkInit, ECHILD};
  return r;
}

const char* StageText(int stage) {
  switch (stage) {
    case kUnshareUser: return "unshare(CLONE_NEWUSER)";
    case kIdMaps: return "writing uid_map/gid_map";
    case kUnsharePidMnt: return "unshare(CLONE_NEWPID|CLONE_NEWNS) inside the user namespace";
    case kForkInit: return "starting pid 1 of the new pid namespace";
    case kPrivateMounts: return "mount(/, MS_REC|MS_PRIVATE)";
    case kMountProc: return "mounting a private /proc";
    case kNsLastPid: return "writing /proc/sys/kernel/ns_last_pid";
    case kClone3SetTid: return "clone3(2) with set_tid";
    default: return "?";
  }
}

struct FsName {
  long magic;
  const char* name;
  bool shared;  // usually mounted on every node of a cluster
};
constexpr FsName kFileSystems[] = {
    {TMPFS_MAGIC, "tmpfs", false},     {EXT4_SUPER_MAGIC, "ext4", false}, {0x58465342, "xfs", false},
    {BTRFS_SUPER_MAGIC, "btrfs", false}, {NFS_SUPER_MAGIC, "nfs", true},   {0x0bd00bd0, "lustre", true},
    {0x47504653, "gpfs", true},        {0x19830326, "beegfs", true},      {CEPH_SUPER_MAGIC, "cephfs", true},
    {0xfe534d42, "smb2", true},        {OVERLAYFS_SUPER_MAGIC, "overlayfs", false},
    {0x65735546, "fuse", false},       {0x2fc12fc1, "zfs", false},
};

// Absolute, without "." components or a trailing slash.
std::filesystem::path Normal(const std::string& dir) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(dir, ec).lexically_normal();
  if (p.has_relative_path() && p.filename().empty()) p = p.parent_path();
  return p;
}

std::string NearestExisting(const std::string& dir) {
  std::error_code ec;
  std::filesystem::path p = Normal(dir);
  while (!p.empty() && !std::filesystem::exists(p, ec)) p = p.parent_path();
  return p.empty() ? "/" : p.string();
}

}  // namespace

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kOk: return "ok";
    case Verdict::kWarn: return "warn";
    case Verdict::kFail: return "FAIL";
    case Verdict::kInfo: return "info";
  }
  return "?";
}

std::string NamespaceFix() {
  const std::string clone = ReadSysctl("/proc/sys/kernel/unprivileged_userns_clone");
  const std::string max_ns = ReadSysctl("/proc/sys/user/max_user_namespaces");
  const std::string apparmor = ReadSysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  if (max_ns == "0")
    return "user.max_user_namespaces is 0 (RHEL/STIG sites set it so): an admin runs "
           "sysctl -w user.max_user_namespaces=15000";
  if (clone == "0") return "kernel.unprivileged_userns_clone is 0: an admin runs sysctl -w kernel.unprivileged_userns_clone=1";
  if (apparmor == "1")
    return "AppArmor restricts unprivileged user namespaces (Ubuntu >= 23.10): install an AppArmor profile "
           "for stasis that allows 'userns,', or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0";
  return "a container runtime or seccomp filter may forbid unshare(2); ask the admin";
}

std::vector<Finding> ProbeNamespaces() {
  std::vector<Finding> out;
  const std::string clone = ReadSysctl("/proc/sys/kernel/unprivileged_userns_clone");
  const std::string max_ns = ReadSysctl("/proc/sys/user/max_user_namespaces");
  const std::string apparmor = ReadSysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  std::string sysctls = fmt::format("user.max_user_namespaces={}", max_ns.empty() ? "?" : max_ns);
  if (!clone.empty()) sysctls += ", kernel.unprivileged_userns_clone=" + clone;
  if (!apparmor.empty()) sysctls += ", kernel.apparmor_restrict_unprivileged_userns=" + apparmor;

  const ProbeResult r = RunNamespaceProbe();
  Finding ns{"user namespaces", Verdict::kOk, "", ""};
  if (r.stage == kAllDone || r.stage > kUnsharePidMnt) {
    ns.detail = "an unprivileged user+pid+mount namespace can be created (" + sysctls + ")";
  } else {
    ns.verdict = Verdict::kFail;
    ns.detail = fmt::format("{} failed: {} ({})", StageText(r.stage), strerror(r.err), sysctls);
    ns.fix = NamespaceFix();
  }
  out.push_back(ns);
  if (r.stage <= kUnsharePidMnt) return out;  // the rest was not reached

  Finding proc{"private /proc", Verdict::kOk, "pid 1 of the job can mount its own /proc", ""};
  if (r.stage == kPrivateMounts || r.stage == kMountProc) {
    proc.verdict = Verdict::kFail;
    proc.detail = fmt::format("{} failed: {}", StageText(r.stage), strerror(r.err));
    proc.fix = "inside a container, parts of /proc may be over-mounted; run on the host or allow proc mounts";
  }
  out.push_back(proc);
  if (r.stage < kNsLastPid) return out;

  Finding last{"ns_last_pid", Verdict::kOk, "writable in the job's pid namespace (job-unique pid ranges)", ""};
  if (r.stage == kNsLastPid) {
    last.verdict = Verdict::kWarn;
    last.detail = fmt::format("{} failed: {}; jobs start at pid 2", StageText(r.stage), strerror(r.err));
  }
  out.push_back(last);

  Finding tid{"clone3 set_tid", Verdict::kOk, "processes can be recreated with their pids (Linux >= 5.5)", ""};
  if (r.stage == kClone3SetTid) {
    tid.verdict = Verdict::kFail;
    tid.detail = fmt::format("{} failed: {}; restart cannot keep pids", StageText(r.stage), strerror(r.err));
    tid.fix = "needs Linux >= 5.5 and CAP_CHECKPOINT_RESTORE in the job's user namespace";
  }
  out.push_back(tid);
  return out;
}

Finding ProbePtraceScope() {
  const std::string v = ReadSysctl("/proc/sys/kernel/yama/ptrace_scope");
  Finding f{"ptrace_scope", Verdict::kOk, "", ""};
  if (v.empty()) {
    f.detail = "Yama is not active: the supervisor may ptrace the job's processes";
  } else if (v == "0" || v == "1") {
    f.detail = "kernel.yama.ptrace_scope=" + v + ": the job's ancestor (its supervisor) may ptrace it";
  } else {
    f.verdict = Verdict::kWarn;
    f.detail = "kernel.yama.ptrace_scope=" + v + ": ptrace needs CAP_SYS_PTRACE in the init namespace" +
               (v == "3" ? " or is off entirely" : "") + "; the signal-based quiesce is used";
    f.fix = "sysctl -w kernel.yama.ptrace_scope=1";
  }
  return f;
}

Finding ProbePagemapScan() {
  Finding f{"PAGEMAP_SCAN", Verdict::kOk, "", ""};
  const long page = sysconf(_SC_PAGESIZE);
  void* mem = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return {"PAGEMAP_SCAN", Verdict::kWarn, "mmap failed", ""};
  static_cast<char*>(mem)[0] = 1;
  ScopedFd fd(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  PageRegion region{};
  PmScanArg arg{};
  arg.size = sizeof arg;
  arg.start = reinterpret_cast<uint64_t>(mem);
  arg.end = arg.start + page;
  arg.vec = reinterpret_cast<uint64_t>(&region);
  arg.vec_len = 1;
  arg.category_mask = kPageIsPresent;
  arg.return_mask = kPageIsPresent;
  long r = fd ? ioctl(fd.get(), kPagemapScan, &arg) : -1;
  int err = errno;
  munmap(mem, page);
  if (r >= 0) {
    f.detail = "ioctl(PAGEMAP_SCAN) works (Linux >= 6.7): written pages can be found without soft-dirty";
  } else {
    f.verdict = Verdict::kWarn;
    f.detail = fmt::format("ioctl(PAGEMAP_SCAN) failed: {}; checkpoints are full images", strerror(err));
    f.fix = "needs Linux >= 6.7";
  }
  return f;
}

Finding ProbeUserfaultfd() {
  Finding f{"userfaultfd", Verdict::kOk, "", ""};
  ScopedFd fd(static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | kUffdUserModeOnly)));
  if (!fd) {
    const int err = errno;
    const std::string v = ReadSysctl("/proc/sys/vm/unprivileged_userfaultfd");
    f.verdict = Verdict::kWarn;
    f.detail = fmt::format("userfaultfd(UFFD_USER_MODE_ONLY) failed: {} (vm.unprivileged_userfaultfd={})",
                           strerror(err), v.empty() ? "?" : v);
    f.fix = "sysctl -w vm.unprivileged_userfaultfd=1 (or a kernel >= 5.11 for user-mode-only faults)";
    return f;
  }
  struct uffdio_api api {};
  api.api = UFFD_API;
  api.features = 0;
  if (ioctl(fd.get(), UFFDIO_API, &api) != 0) {
    f.verdict = Verdict::kWarn;
    f.detail = fmt::format("UFFDIO_API failed: {}", strerror(errno));
    return f;
  }
  const bool wp_async = (api.features & kUffdFeatureWpAsync) != 0;
  f.detail = fmt::format("available to this user; UFFD_FEATURE_WP_ASYNC {}", wp_async ? "present" : "absent");
  if (!wp_async) f.verdict = Verdict::kWarn;
  return f;
}

std::vector<Finding> ProbeCkptDir(const std::string& dir) {
  std::vector<Finding> out;
  const std::string where = NearestExisting(dir);
  const std::string shown = Normal(dir).string();
  struct statfs sf {};
  if (statfs(where.c_str(), &sf) != 0) {
    out.push_back({"ckpt dir", Verdict::kFail, fmt::format("statfs {}: {}", where, strerror(errno)), ""});
    return out;
  }
  std::string type = fmt::format("0x{:x}", static_cast<unsigned long>(sf.f_type));
  bool shared = false;
  for (const FsName& fs : kFileSystems) {
    if (fs.magic == static_cast<long>(sf.f_type)) {
      type = fs.name;
      shared = fs.shared;
    }
  }
  const double free_gib = static_cast<double>(sf.f_bavail) * static_cast<double>(sf.f_bsize) / (1 << 30);
  out.push_back({"ckpt dir", Verdict::kInfo,
                 fmt::format("{}{}: {} file system, {:.1f} GiB free{}", where,
                             where == shown ? "" : " (for " + shown + ", not there yet)", type, free_gib,
                             shared ? ", usually shared between nodes" : ", node-local unless exported"),
                 shared || type == "tmpfs" ? "" : "a restart on another node needs a shared file system"});
  if (access(where.c_str(), W_OK) != 0) {
    out.push_back({"ckpt dir writable", Verdict::kFail, fmt::format("{}: {}", where, strerror(errno)),
                   "choose a writable --ckptdir"});
    return out;
  }
  // Reflinks (FICLONE, ioctl_ficlone(2)) let file contents be saved without a copy.
  std::string a = where + fmt::format("/.stasis-doctor-{}-a", getpid());
  std::string b = where + fmt::format("/.stasis-doctor-{}-b", getpid());
  ScopedFd fa(open(a.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  ScopedFd fb(open(b.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fa && fb) {
    ssize_t w = write(fa.get(), "stasis", 6);
    (void)w;
    const bool clone = ioctl(fb.get(), FICLONE, fa.get()) == 0;
    out.push_back({"reflinks", clone ? Verdict::kOk : Verdict::kInfo,
                   clone ? "FICLONE works: saved files cost no copy"
                         : fmt::format("FICLONE not supported here ({}): saved files are copied", strerror(errno)),
                   ""});
  }
  if (fa) unlink(a.c_str());
  if (fb) unlink(b.c_str());
  return out;
}

Finding KernelRelease() {
  struct utsname u {};
  uname(&u);
  return {"kernel", Verdict::kInfo, fmt::format("Linux {} ({})", u.release, u.machine), ""};
}

}  // namespace stasis::kerndat
