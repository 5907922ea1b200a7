// Terminals: capture through the target's own descriptor, restore in the
// pre-restorer.  Policy and sources in tty.h.
#include "state/tty.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/scoped_fd.h"

namespace stasis::state {
namespace {

// Set in the restarting command by NoteCallerTerminal(); inherited by fork.
CallerTerminal g_caller;

std::string Who(pid_t pid, int fd) {
  return "pid " + std::to_string(pid) + ": fd " + std::to_string(fd);
}

// The target's open file behind `fd`, as a descriptor of ours.
StatusOr<ScopedFd> GetTargetFd(const ProcTarget& target, int fd) {
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
  ScopedFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, target.pid, 0)));
  if (pidfd) {
    ScopedFd got(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
    if (got) return got;
  }
#endif
  // Kernels before 5.6, or ptrace access refused: open the terminal anew.
  // O_NOCTTY: the supervisor must not acquire it as controlling terminal.
  const std::string path = target.ProcPath("fd/" + std::to_string(fd));
  ScopedFd opened(::open(path.c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (!opened) return Status::Errno("open " + path);
  return opened;
}

bool SameWindow(const image::TerminalState& t, const struct winsize& ws) {
  return t.rows == ws.ws_row && t.cols == ws.ws_col && t.xpixel == ws.ws_xpixel &&
         t.ypixel == ws.ws_ypixel;
}

bool SameTermios(const struct termios& a, const struct termios& b) {
  return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag &&
         a.c_lflag == b.c_lflag && a.c_line == b.c_line &&
         std::memcmp(a.c_cc, b.c_cc, sizeof a.c_cc) == 0;
}

void Warn(int warn_fd, const image::FileDescriptor& f, const char* what) {
  if (warn_fd < 0) return;
  dprintf(warn_fd, "stasis restart: warning: fd %d (terminal): %s\n", f.fd, what);
}

}  // namespace

StatusOr<StatTty> ParseStatTty(const std::string& stat_text) {
  const size_t paren = stat_text.rfind(')');
  if (paren == std::string::npos) return Status::Error("stat: no ')' after comm");
  // Fields 3.. after ") ": state ppid pgrp session tty_nr tpgid ...
  const char* p = stat_text.c_str() + paren + 1;
  long long v[6] = {};
  for (int i = 0; i < 6; ++i) {
    while (*p == ' ') ++p;
    if (*p == '\0' || *p == '\n') return Status::Error("stat: fewer than 8 fields");
    if (i == 0) {  // state: one letter
      while (*p != '\0' && *p != ' ') ++p;
      continue;
    }
    char* end = nullptr;
    errno = 0;
    v[i] = std::strtoll(p, &end, 10);
    if (end == p || errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
      return Status::Error("stat: field " + std::to_string(i + 3) + " is not a number");
    p = end;
  }
  StatTty out;
  out.pgrp = static_cast<int32_t>(v[2]);
  out.tty_nr = static_cast<uint32_t>(v[4]);
  out.tpgid = static_cast<int32_t>(v[5]);
  return out;
}

StatusOr<image::TerminalState> CaptureTerminal(const ProcTarget& target, int fd) {
  const std::string who = Who(target.pid, fd);
  auto got = GetTargetFd(target, fd);
  if (!got.ok()) return got.status().With(who);
  const int t = got->get();
  image::TerminalState out;
  struct termios tio;
  if (::tcgetattr(t, &tio) != 0) return Status::Errno(who + ": tcgetattr");
  out.iflag = tio.c_iflag;
  out.oflag = tio.c_oflag;
  out.cflag = tio.c_cflag;
  out.lflag = tio.c_lflag;
  out.line = tio.c_line;
  out.cc.assign(tio.c_cc, tio.c_cc + NCCS);
  struct winsize ws {};
  if (::ioctl(t, TIOCGWINSZ, &ws) == 0) {
    out.rows = ws.ws_row;
    out.cols = ws.ws_col;
    out.xpixel = ws.ws_xpixel;
    out.ypixel = ws.ws_ypixel;
  }
  // TIOCGDEV names the terminal itself even for a descriptor opened as
  // /dev/tty, whose inode is 5:0.
  unsigned int dev = 0;
  if (::ioctl(t, TIOCGDEV, &dev) != 0) return Status::Errno(who + ": TIOCGDEV");
  out.device = makedev(major(dev), minor(dev));

  auto stat_text = ReadProcFile(target.ProcPath("stat"));
  if (!stat_text.ok()) return stat_text.status().With(who);
  auto st = ParseStatTty(*stat_text);
  if (!st.ok()) return st.status().With(who);
  if (st->tty_nr != 0 && st->tty_nr == dev) {
    out.controlling = true;
    out.foreground_pgid = std::max(st->tpgid, 0);
  }
  return out;
}

CallerTerminal NoteCallerTerminal() {
  CallerTerminal c;
  ScopedFd tty(::open("/dev/tty", O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (tty) {
    c.controlling = true;
    const pid_t fg = ::tcgetpgrp(tty.get());
    c.foreground = fg > 0 && fg == ::getpgrp();
  }
  g_caller = c;
  return c;
}

CallerTerminal NotedCallerTerminal() { return g_caller; }

struct termios MergeTermios(const image::TerminalState& saved, const struct termios& now) {
  struct termios t = now;
  t.c_iflag = saved.iflag;
  t.c_oflag = saved.oflag;
  constexpr tcflag_t kSpeed = CBAUD | CBAUDEX | CIBAUD;
  t.c_cflag = (saved.cflag & ~kSpeed) | (now.c_cflag & kSpeed);
  t.c_lflag = saved.lflag;
  t.c_line = saved.line;
  const size_t n = std::min(saved.cc.size(), sizeof t.c_cc);
  std::memcpy(t.c_cc, saved.cc.data(), n);
  return t;
}

bool ForegroundAfterRestart(const image::TerminalState& saved, int32_t pgid, bool controlling_now,
                            const CallerTerminal& caller) {
  if (!controlling_now) return true;
  if (!caller.foreground) return false;
  if (saved.controlling && saved.foreground_pgid > 0) return pgid == saved.foreground_pgid;
  return pgid == 0;
}

void RestoreTerminals(const image::ProcessImage& img, const std::vector<RestoredTerminalFd>& fds,
                      const CallerTerminal& caller, int warn_fd) {
  bool winch = false;
  for (const RestoredTerminalFd& r : fds) {
    if (r.f == nullptr || !r.f->terminal) continue;
    const image::TerminalState& saved = *r.f->terminal;
    struct termios now;
    if (::tcgetattr(r.fd, &now) != 0) continue;  // not a terminal now: a file, /dev/null
    pid_t sid = 0;
    const bool controlling_now = ::ioctl(r.fd, TIOCGSID, &sid) == 0;

    // The job's foreground group first: its members (this process or
    // another) may read the terminal as soon as they run.  Every group of
    // the tree exists by now (created before any pre-restorer loads pages).
    if (controlling_now && caller.foreground && saved.controlling && saved.foreground_pgid > 0 &&
        ::tcgetpgrp(r.fd) != saved.foreground_pgid) {
      if (::tcsetpgrp(r.fd, saved.foreground_pgid) != 0) {
        Warn(warn_fd, *r.f, ("cannot give the terminal's foreground back to process group " +
                             std::to_string(saved.foreground_pgid) + ": " + std::strerror(errno))
                                .c_str());
      }
    }

    const struct termios want = MergeTermios(saved, now);
    if (SameTermios(want, now)) {
      // nothing to change
    } else if (controlling_now && !caller.foreground) {
      Warn(warn_fd, *r.f,
           "its settings (echo, raw mode...) are not applied: `stasis restart` runs in the "
           "background of this terminal");
    } else if (::tcsetattr(r.fd, TCSANOW, &want) != 0) {
      Warn(warn_fd, *r.f, (std::string("cannot apply its settings: ") + std::strerror(errno)).c_str());
    }

    struct winsize ws {};
    if (::ioctl(r.fd, TIOCGWINSZ, &ws) == 0 && !SameWindow(saved, ws) &&
        ForegroundAfterRestart(saved, img.pgid, controlling_now, caller)) {
      winch = true;
    }
  }
  // Pending until the restored program unblocks it; the blob installs the
  // program's handler without discarding it (sigaction(2): only SIG_IGN and
  // an ignoring SIG_DFL discard pending signals).
  if (winch) ::kill(::getpid(), SIGWINCH);
}

}  // namespace stasis::state
