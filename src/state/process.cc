// Process-wide attributes: capture from /proc, restore in the pre-restorer,
// and the mm layout handed to the blob for prctl(PR_SET_MM_MAP).  See
// process.h; sources: proc(5), prlimit(2), personality(2), prctl(2).
#include "state/process.h"


#include <dirent.h>
#include <fcntl.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace stasis::state {
namespace {

constexpr const char* kRlimitNames[16] = {
    "RLIMIT_CPU",   "RLIMIT_FSIZE", "RLIMIT_DATA",    "RLIMIT_STACK",
    "RLIMIT_CORE",  "RLIMIT_RSS",   "RLIMIT_NPROC",   "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK", "RLIMIT_AS",  "RLIMIT_LOCKS",   "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
};

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

// Parses an unsigned number in `base`; the whole (trimmed) text must be used.
bool ParseU64(const std::string& text, int base, uint64_t* out) {
  std::string t = Trim(text);
  if (t.empty() || t[0] == '-') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(t.c_str(), &end, base);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

StatusOr<uint64_t> StatusNumber(const std::string& status, const std::string& key, int base) {
  ASSIGN_OR_RETURN(std::string value, StatusValue(status, key));
  // "Uid:" holds real, effective, saved, fs: take the first.
  std::string first = value.substr(0, value.find_first_of(" \t"));
  uint64_t v = 0;
  if (!ParseU64(first, base, &v)) return Status::Error("status: bad " + key + ": \"" + value + "\"");
  return v;
}

}  // namespace

StatusOr<StatFields> ParseStatFields(const std::string& text) {
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return Status::Error("stat: no ')' after the command name");
  std::vector<std::string> tok;  // tok[i] is field i + 3 in proc(5) numbering
  size_t at = paren + 1;
  while (at < text.size()) {
    size_t b = text.find_first_not_of(" \n", at);
    if (b == std::string::npos) break;
    size_t e = text.find_first_of(" \n", b);
    if (e == std::string::npos) e = text.size();
    tok.push_back(text.substr(b, e - b));
    at = e;
  }
  if (tok.size() < 51 - 2) {
    return Status::Error("stat: " + std::to_string(tok.size() + 2) + " fields, expected at least 51");
  }
  auto field = [&](int n, uint64_t* out) -> Status {
    if (!ParseU64(tok[static_cast<size_t>(n - 3)], 10, out)) {
      return Status::Error("stat: field " + std::to_string(n) + " is not a number: \"" +
                           tok[static_cast<size_t>(n - 3)] + "\"");
    }
    return Status::Ok();
  };
  StatFields f;
  f.state = tok[0].empty() ? '?' : tok[0][0];
  uint64_t ppid = 0, pgrp = 0, session = 0;
  RETURN_IF_ERROR(field(4, &ppid));
  RETURN_IF_ERROR(field(5, &pgrp));
  RETURN_IF_ERROR(field(6, &session));
  f.ppid = static_cast<int32_t>(ppid);
  f.pgrp = static_cast<int32_t>(pgrp);
  f.session = static_cast<int32_t>(session);
  image::MmLayout& mm = f.mm;
  RETURN_IF_ERROR(field(26, &mm.start_code));
  RETURN_IF_ERROR(field(27, &mm.end_code));
  RETURN_IF_ERROR(field(28, &mm.start_stack));
  RETURN_IF_ERROR(field(45, &mm.start_data));
  RETURN_IF_ERROR(field(46, &mm.end_data));
  RETURN_IF_ERROR(field(47, &mm.start_brk));
  RETURN_IF_ERROR(field(48, &mm.arg_start));
  RETURN_IF_ERROR(field(49, &mm.arg_end));
  RETURN_IF_ERROR(field(50, &mm.env_start));
  RETURN_IF_ERROR(field(51, &mm.env_end));
  if (tok.size() >= 52 - 2) {  // exit_code: Linux 3.5+
    uint64_t code = 0;
    RETURN_IF_ERROR(field(52, &code));
    f.exit_code = static_cast<int32_t>(code);
  }
  return f;
}


StatusOr<std::vector<image::ZombieChild>> CaptureZombies(int32_t pid, const std::string& proc_root) {
  DIR* dir = ::opendir(proc_root.c_str());
  if (dir == nullptr) return Status::Errno("opendir " + proc_root);
  std::vector<image::ZombieChild> out;
  while (struct dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long child = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || child <= 0) continue;
    const std::string base = proc_root + "/" + e->d_name;
    auto text = ReadProcFile(base + "/stat");
    if (!text.ok()) continue;  // gone meanwhile
    auto st = ParseStatFields(*text);
    if (!st.ok() || st->state != 'Z' || st->ppid != pid) continue;
    int tasks = 0;
    if (DIR* t = ::opendir((base + "/task").c_str())) {
      while (struct dirent* te = ::readdir(t)) tasks += te->d_name[0] != '.';
      ::closedir(t);
    }
    if (tasks > 1) continue;  // exited leader of a live thread group
    out.push_back({static_cast<int32_t>(child), st->exit_code});
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.pid < b.pid; });
  return out;
}

StatusOr<std::string> StatusValue(const std::string& status_text, const std::string& key) {
  const std::string needle = key + ":";
  size_t at = 0;
  while (at < status_text.size()) {
    size_t eol = status_text.find('\n', at);
    if (eol == std::string::npos) eol = status_text.size();
    if (status_text.compare(at, needle.size(), needle) == 0) {
      return Trim(status_text.substr(at + needle.size(), eol - at - needle.size()));
    }
    at = eol + 1;
  }
  return Status::Error("status: no " + needle + " line");
}

std::vector<std::string> SplitCmdline(const std::string& cmdline) {
  std::vector<std::string> argv;
  size_t at = 0;
  while (at < cmdline.size()) {
    size_t nul = cmdline.find('\0', at);
    if (nul == std::string::npos) nul = cmdline.size();
    argv.push_back(cmdline.substr(at, nul - at));
    at = nul + 1;
  }
  return argv;
}

Status CaptureProcess(const ProcTarget& target, const agent::ControlBlock& cb,
                      image::ProcessImage* img) {
  const std::string who = "pid " + std::to_string(target.pid);
  auto read = [&](const char* rel) { return ReadProcFile(target.ProcPath(rel)); };
  img->pid = target.pid;

  auto comm = read("comm");
  if (!comm.ok()) return comm.status().With(who);
  img->program = Trim(*comm);

  auto exe = ReadLink(target.ProcPath("exe"));
  if (!exe.ok()) return exe.status().With(who);
  img->exe = *exe;

  auto cmdline = read("cmdline");
  if (!cmdline.ok()) return cmdline.status().With(who);
  img->argv = SplitCmdline(*cmdline);

  auto stat_text = read("stat");
  if (!stat_text.ok()) return stat_text.status().With(who);
  auto stat = ParseStatFields(*stat_text);
  if (!stat.ok()) return stat.status().With(who + ": " + target.ProcPath("stat"));
  img->ppid = stat->ppid;
  img->pgid = stat->pgrp;
  img->sid = stat->session;
  img->mm = stat->mm;
  if (img->mm.start_code <= 1 && img->mm.end_code <= 1) {
    // proc(5): shown as 1/0 without PTRACE_MODE_READ access.
    return Status::Error(who + ": mm layout in " + target.ProcPath("stat") +
                         " is hidden (no ptrace access to the process)");
  }
  img->mm.brk = cb.brk;
  if (img->mm.brk == 0) {
    // The agent did not record brk(0): the [heap] area's end is the page-
    // aligned break, which is what the kernel compares against anyway.
    img->mm.brk = img->mm.start_brk;
    for (const image::MemoryArea& a : img->areas) {
      if (a.is_heap()) img->mm.brk = a.end;
    }
  }

  auto status_text = read("status");
  if (!status_text.ok()) return status_text.status().With(who);
  struct { const char* key; int base; uint64_t* out; } status_fields[] = {
      {"Umask", 8, nullptr},   {"CapInh", 16, &img->caps.inheritable},
      {"CapPrm", 16, &img->caps.permitted}, {"CapEff", 16, &img->caps.effective},
      {"CapBnd", 16, &img->caps.bounding},  {"CapAmb", 16, &img->caps.ambient},
  };
  for (auto& sf : status_fields) {
    auto v = StatusNumber(*status_text, sf.key, sf.base);
    if (!v.ok()) return v.status().With(who);
    if (sf.out != nullptr) {
      *sf.out = *v;
    } else {
      img->umask = static_cast<uint32_t>(*v);
    }
  }
  auto uid = StatusNumber(*status_text, "Uid", 10);
  if (!uid.ok()) return uid.status().With(who);
  auto gid = StatusNumber(*status_text, "Gid", 10);
  if (!gid.ok()) return gid.status().With(who);
  img->uid = static_cast<uint32_t>(*uid);  // real ids
  img->gid = static_cast<uint32_t>(*gid);

  auto cwd = ReadLink(target.ProcPath("cwd"));
  if (!cwd.ok()) return cwd.status().With(who);
  img->cwd = *cwd;

  // /proc/<pid>/personality needs PTRACE_MODE_ATTACH (proc(5)); a checkpoint
  // is still useful without it, the default personality is by far the norm.
  auto pers = read("personality");
  uint64_t pers_value = 0;
  if (!pers.ok() || !ParseU64(*pers, 16, &pers_value)) {
    std::fprintf(stderr, "stasis: warning: %s: cannot read personality (%s); assuming 0\n",
                 who.c_str(), pers.ok() ? "malformed" : pers.status().message().c_str());
    pers_value = 0;
  }
  img->personality = static_cast<uint32_t>(pers_value);

  for (int r = 0; r < 16; ++r) {
    struct rlimit old;
    if (::prlimit(target.pid, static_cast<__rlimit_resource>(r), nullptr, &old) != 0) {
      return Status::Errno(who + ": prlimit " + kRlimitNames[r]);
    }
    img->rlimits[static_cast<size_t>(r)] = {old.rlim_cur, old.rlim_max};
  }

  auto auxv = read("auxv");
  if (!auxv.ok()) return auxv.status().With(who);
  img->auxv.assign(auxv->size() / 8, 0);
  std::memcpy(img->auxv.data(), auxv->data(), img->auxv.size() * 8);

  struct utsname u;
  if (::uname(&u) != 0) return Status::Errno(who + ": uname");
  img->hostname = u.nodename;
  img->kernel_release = u.release;
  return Status::Ok();
}

Status RestoreProcessAttributes(const image::ProcessImage& img) {
  if (!img.cwd.empty()) {
    if (img.cwd.size() > 10 && img.cwd.compare(img.cwd.size() - 10, 10, " (deleted)") == 0) {
      return Status::Error("working directory " + img.cwd.substr(0, img.cwd.size() - 10) +
                           " was deleted before the checkpoint; it cannot be restored");
    }
    if (::chdir(img.cwd.c_str()) != 0) {
      return Status::Errno("cannot restore the working directory " + img.cwd);
    }
  }
  ::umask(static_cast<mode_t>(img.umask & 0777));
  // personality(0xffffffff) only queries (personality(2)).
  if (static_cast<uint32_t>(::personality(0xffffffff)) != img.personality &&
      ::personality(img.personality) == -1) {
    std::fprintf(stderr, "stasis: warning: cannot restore personality 0x%x: %s\n", img.personality,
                 std::strerror(errno));
  }
  for (int r = 0; r < 16; ++r) {
    const image::ResourceLimit& lim = img.rlimits[static_cast<size_t>(r)];
    auto res = static_cast<__rlimit_resource>(r);
    struct rlimit want = {std::min(lim.cur, lim.max), lim.max};
    if (::setrlimit(res, &want) == 0) continue;
    const int err = errno;
    // Raising a hard limit needs CAP_SYS_RESOURCE in the initial user
    // namespace (setrlimit(2)): keep our hard limit and clamp the soft one.
    struct rlimit now;
    if (::getrlimit(res, &now) != 0) continue;
    struct rlimit fallback = {std::min(want.rlim_cur, now.rlim_max), std::min(want.rlim_max, now.rlim_max)};
    fallback.rlim_cur = std::min(fallback.rlim_cur, fallback.rlim_max);
    if (::setrlimit(res, &fallback) == 0) {
      std::fprintf(stderr,
                   "stasis: warning: %s: cannot restore soft %llu hard %llu (%s); using soft %llu hard %llu\n",
                   kRlimitNames[r], static_cast<unsigned long long>(want.rlim_cur),
                   static_cast<unsigned long long>(want.rlim_max), std::strerror(err),
                   static_cast<unsigned long long>(fallback.rlim_cur),
                   static_cast<unsigned long long>(fallback.rlim_max));
    } else {
      std::fprintf(stderr, "stasis: warning: %s: cannot restore (%s); left unchanged\n",
                   kRlimitNames[r], std::strerror(errno));
    }
  }
  return Status::Ok();
}

Status PrepareProcess(const image::ProcessImage& img, int exe_fd_number, restore::BlobArgs* args) {
  restore::BlobMm& mm = args->mm;
  if (img.auxv.size() > sizeof mm.auxv / sizeof mm.auxv[0]) {
    return Status::Error("image auxv has " + std::to_string(img.auxv.size()) +
                         " words; at most 64 can be restored");
  }
  const image::MmLayout& m = img.mm;
  mm.start_code = m.start_code;
  mm.end_code = m.end_code;
  mm.start_data = m.start_data;
  mm.end_data = m.end_data;
  mm.start_brk = m.start_brk;
  mm.brk = m.brk;
  mm.start_stack = m.start_stack;
  mm.arg_start = m.arg_start;
  mm.arg_end = m.arg_end;
  mm.env_start = m.env_start;
  mm.env_end = m.env_end;
  std::memset(mm.auxv, 0, sizeof mm.auxv);
  std::copy(img.auxv.begin(), img.auxv.end(), mm.auxv);
  mm.auxv_size = static_cast<uint32_t>(img.auxv.size() * sizeof(uint64_t));

  // The orderings prctl(PR_SET_MM_MAP) insists on (kernel/sys.c
  // validate_prctl_map_addr); a layout that breaks them was not captured.
  const bool sane = m.start_code < m.end_code && m.start_data <= m.end_data &&
                    m.start_brk <= m.brk && m.arg_start <= m.arg_end && m.env_start <= m.env_end;
  args->mm_valid = sane ? 1 : 0;
  if (!sane) std::fprintf(stderr, "stasis: warning: image mm layout is incomplete; not restoring it\n");

  mm.exe_fd = -1;
  const bool deleted = img.exe.size() > 10 && img.exe.compare(img.exe.size() - 10, 10, " (deleted)") == 0;
  if (exe_fd_number >= 0 && !img.exe.empty() && !deleted) {
    int fd = ::open(img.exe.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && fd != exe_fd_number) {
      if (::dup3(fd, exe_fd_number, O_CLOEXEC) < 0) {
        int err = errno;
        ::close(fd);
        return Status::Errno("moving " + img.exe + " to fd " + std::to_string(exe_fd_number), err);
      }
      ::close(fd);
      fd = exe_fd_number;
    }
    if (fd >= 0) {
      mm.exe_fd = fd;
      bool listed = false;
      for (int i = 0; i < args->n_fds_to_close; ++i) listed = listed || args->fds_to_close[i] == fd;
      if (!listed && args->n_fds_to_close < 4) args->fds_to_close[args->n_fds_to_close++] = fd;
    }
  }

  args->caps_effective = img.caps.effective;
  args->caps_permitted = img.caps.permitted;
  args->caps_inheritable = img.caps.inheritable;
  return Status::Ok();
}

}  // namespace stasis::state
