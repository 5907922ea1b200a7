// Tests of src/state/tty: the /proc stat parser and the restore decisions on
// synthetic input, capture from a forked child that holds a pseudo-terminal
// (its own controlling terminal, set to no-echo), RestoreTerminals in a
// forked child, and the image codec round trip of a terminal's state.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/scoped_fd.h"
#include "image/codec.h"
#include "paused_child.h"
#include "state/tty.h"

namespace stasis::state {
namespace {

using testing::PausedChild;

// A new pseudo-terminal pair (pty(7)); the slave is not our controlling
// terminal (O_NOCTTY).
struct Pty {
  ScopedFd master, slave;
};
Pty OpenPty() {
  Pty p;
  p.master.reset(posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!p.master || grantpt(p.master.get()) != 0 || unlockpt(p.master.get()) != 0) return {};
  const char* name = ptsname(p.master.get());
  if (name == nullptr) return {};
  p.slave.reset(open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  return p;
}

void SetSize(int fd, unsigned short rows, unsigned short cols) {
  struct winsize ws {};
  ws.ws_row = rows;
  ws.ws_col = cols;
  ASSERT_EQ(ioctl(fd, TIOCSWINSZ, &ws), 0);
}

TEST(TtyParse, StatFields) {
  auto st = ParseStatTty("1234 (a) b) (c) S 1 1234 1200 34816 1234 4194560 10 0 0 0\n");
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ(st->pgrp, 1234);
  EXPECT_EQ(st->tty_nr, 34816u);  // 136:0, /dev/pts/0
  EXPECT_EQ(st->tpgid, 1234);

  auto none = ParseStatTty("7 (sleep) S 1 0 0 0 -1 4194560 10\n");
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_EQ(none->pgrp, 0);  // a group outside our pid namespace
  EXPECT_EQ(none->tty_nr, 0u);
  EXPECT_EQ(none->tpgid, -1);
}

TEST(TtyParse, StatErrors) {
  EXPECT_FALSE(ParseStatTty("1234 comm S 1 2 3 4 5").ok());     // no ')'
  EXPECT_FALSE(ParseStatTty("1 (x) S 1 2 3 4\n").ok());         // no tpgid
  EXPECT_FALSE(ParseStatTty("1 (x) S 1 2 3 x4 5 6\n").ok());    // tty_nr not a number
  EXPECT_FALSE(ParseStatTty("1 (x) S 1 2 3 4 5z 6\n").ok());    // tpgid malformed
}

TEST(TtyRestore, MergeKeepsNewSpeeds) {
  image::TerminalState saved;
  saved.iflag = ICRNL;
  saved.oflag = 0;
  saved.cflag = CS8 | CREAD | B9600;
  saved.lflag = ISIG;  // no ECHO, no ICANON
  saved.line = 0;
  saved.cc.assign(NCCS, 0);
  saved.cc[VMIN] = 1;
  saved.cc[VINTR] = 7;
  struct termios now {};
  now.c_cflag = CS7 | B38400;
  now.c_lflag = ECHO | ICANON;
  cfsetispeed(&now, B38400);
  cfsetospeed(&now, B38400);
  struct termios t = MergeTermios(saved, now);
  EXPECT_EQ(t.c_iflag, static_cast<tcflag_t>(ICRNL));
  EXPECT_EQ(t.c_lflag, static_cast<tcflag_t>(ISIG));
  EXPECT_EQ(t.c_cflag & CSIZE, static_cast<tcflag_t>(CS8));
  EXPECT_EQ(cfgetospeed(&t), static_cast<speed_t>(B38400));
  EXPECT_EQ(cfgetispeed(&t), static_cast<speed_t>(B38400));
  EXPECT_EQ(t.c_cc[VMIN], 1);
  EXPECT_EQ(t.c_cc[VINTR], 7);
}

TEST(TtyRestore, ForegroundDecisions) {
  image::TerminalState outside;  // launched in the foreground of a shell: tpgid outside the job
  outside.controlling = true;
  outside.foreground_pgid = 0;
  image::TerminalState own = outside;  // bash -i in the job had given the terminal to group 5
  own.foreground_pgid = 5;
  image::TerminalState none;           // not a controlling terminal at checkpoint
  const CallerTerminal fg{true, true}, bg{true, false};

  // Not our controlling terminal now: no job control, everyone counts.
  EXPECT_TRUE(ForegroundAfterRestart(own, 9, /*controlling_now=*/false, bg));
  // A restart in the background puts nobody in the foreground.
  EXPECT_FALSE(ForegroundAfterRestart(outside, 0, true, bg));
  EXPECT_FALSE(ForegroundAfterRestart(own, 5, true, bg));
  // In the foreground: the job's own group if it had the terminal...
  EXPECT_TRUE(ForegroundAfterRestart(own, 5, true, fg));
  EXPECT_FALSE(ForegroundAfterRestart(own, 0, true, fg));
  EXPECT_FALSE(ForegroundAfterRestart(own, 9, true, fg));
  // ... else the processes that share the restarting command's group.
  EXPECT_TRUE(ForegroundAfterRestart(outside, 0, true, fg));
  EXPECT_FALSE(ForegroundAfterRestart(outside, 5, true, fg));
  EXPECT_TRUE(ForegroundAfterRestart(none, 0, true, fg));
}

// A child that makes the pty its controlling terminal (setsid, TIOCSCTTY),
// turns echo off and also opens it as /dev/tty: both descriptors report the
// pty's settings, its device and the child's own group as foreground.
TEST(TtyCapture, ControllingTerminalOfForkedChild) {
  Pty pty = OpenPty();
  ASSERT_TRUE(pty.slave.valid()) << strerror(errno);
  SetSize(pty.slave.get(), 33, 101);
  struct stat st;
  ASSERT_EQ(fstat(pty.slave.get(), &st), 0);
  const int slave = pty.slave.get();
  PausedChild child([&] {
    if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) != 0) _exit(3);
    if (dup2(slave, 10) != 10) _exit(3);
    struct termios t;
    if (tcgetattr(10, &t) != 0) _exit(3);
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    t.c_cc[VINTR] = 7;
    if (tcsetattr(10, TCSANOW, &t) != 0) _exit(3);
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
    if (tty < 0 || dup2(tty, 11) != 11) _exit(3);
    int null = open("/dev/null", O_RDWR);
    if (null < 0 || dup2(null, 12) != 12) _exit(3);
  });
  ASSERT_TRUE(child.ready());
  auto target = ProcTarget::Open(child.pid());
  ASSERT_TRUE(target.ok()) << target.status().message();
  for (int fd : {10, 11}) {
    SCOPED_TRACE("fd " + std::to_string(fd));
    auto t = CaptureTerminal(*target, fd);
    ASSERT_TRUE(t.ok()) << t.status().message();
    EXPECT_FALSE(t->lflag & ECHO);
    EXPECT_TRUE(t->lflag & ICANON);
    ASSERT_EQ(t->cc.size(), static_cast<size_t>(NCCS));
    EXPECT_EQ(t->cc[VINTR], 7);
    EXPECT_EQ(t->rows, 33);
    EXPECT_EQ(t->cols, 101);
    EXPECT_EQ(t->device, static_cast<uint64_t>(st.st_rdev));
    EXPECT_TRUE(t->controlling);
    EXPECT_EQ(t->foreground_pgid, child.pid());  // it leads the foreground group
  }
  // Not a terminal: an error, so no state is recorded.
  EXPECT_FALSE(CaptureTerminal(*target, 12).ok());
}

TEST(TtyCapture, HungUpTerminalIsAnError) {
  Pty pty = OpenPty();
  ASSERT_TRUE(pty.slave.valid());
  const int slave = pty.slave.get(), master = pty.master.get();
  PausedChild child([&] {
    if (dup2(slave, 10) != 10) _exit(3);
    close(master);  // else the child keeps the terminal alive
  });
  ASSERT_TRUE(child.ready());
  pty.master.reset();  // the terminal window closed
  auto target = ProcTarget::Open(child.pid());
  ASSERT_TRUE(target.ok());
  // Closing the master hangs the slave up: its ioctls answer EIO
  // (drivers/tty/tty_io.c, hung_up_tty_ioctl).
  auto t = CaptureTerminal(*target, 10);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("fd 10"), std::string::npos) << t.status().message();
}

// RestoreTerminals in a forked child (it changes its own signal mask): the
// saved no-echo settings land on a new pty whose window size differs, and
// SIGWINCH is left pending.
TEST(TtyRestore, AppliesSettingsAndQueuesWinch) {
  Pty pty = OpenPty();
  ASSERT_TRUE(pty.slave.valid());
  SetSize(pty.slave.get(), 40, 120);
  image::TerminalState saved;
  {
    struct termios t;
    ASSERT_EQ(tcgetattr(pty.slave.get(), &t), 0);
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO | ICANON);
    t.c_cc[VMIN] = 1;
    saved.iflag = t.c_iflag;
    saved.oflag = t.c_oflag;
    saved.cflag = t.c_cflag;
    saved.lflag = t.c_lflag;
    saved.cc.assign(t.c_cc, t.c_cc + NCCS);
    saved.rows = 24;
    saved.cols = 80;
  }
  image::ProcessImage img;
  img.pgid = 0;
  image::FileDescriptor f;
  f.fd = 0;
  f.kind = image::FileDescriptor::Kind::kTty;
  f.terminal = saved;
  img.fds.push_back(f);
  const int slave = pty.slave.get();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    RestoreTerminals(img, {{&img.fds[0], slave}}, CallerTerminal{}, 2);
    sigset_t pending;
    sigpending(&pending);
    _exit(sigismember(&pending, SIGWINCH) ? 0 : 4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "SIGWINCH was not left pending";
  struct termios now;
  ASSERT_EQ(tcgetattr(pty.master.get(), &now), 0);  // the master reports the slave's settings
  EXPECT_FALSE(now.c_lflag & ECHO);
  EXPECT_FALSE(now.c_lflag & ICANON);
}

TEST(TtyRestore, SameSizeNoWinchAndNotATerminalIsLeftAlone) {
  Pty pty = OpenPty();
  ASSERT_TRUE(pty.slave.valid());
  SetSize(pty.slave.get(), 24, 80);
  image::ProcessImage img;
  image::FileDescriptor tty, file;
  tty.fd = 0;
  tty.terminal = image::TerminalState{};
  {
    struct termios t;
    ASSERT_EQ(tcgetattr(pty.slave.get(), &t), 0);
    tty.terminal->lflag = t.c_lflag;
    tty.terminal->iflag = t.c_iflag;
    tty.terminal->oflag = t.c_oflag;
    tty.terminal->cflag = t.c_cflag;
    tty.terminal->cc.assign(t.c_cc, t.c_cc + NCCS);
  }
  tty.terminal->rows = 24;
  tty.terminal->cols = 80;
  file = tty;
  file.fd = 1;
  img.fds = {tty, file};
  ScopedFd devnull(open("/dev/null", O_RDWR | O_CLOEXEC));
  const int slave = pty.slave.get(), dn = devnull.get();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    RestoreTerminals(img, {{&img.fds[0], slave}, {&img.fds[1], dn}}, CallerTerminal{}, 2);
    sigset_t pending;
    sigpending(&pending);
    _exit(sigismember(&pending, SIGWINCH) ? 4 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "SIGWINCH sent although the size is unchanged";
}

TEST(TtyCodec, RoundTrip) {
  image::ProcessImage img;
  img.pid = 2;
  image::FileDescriptor f;
  f.fd = 0;
  f.kind = image::FileDescriptor::Kind::kTty;
  image::TerminalState t;
  t.iflag = 0x500;
  t.oflag = 5;
  t.cflag = 0xbf;
  t.lflag = 0x8a33;
  t.line = 1;
  t.cc = {3, 28, 127, 21, 4, 0, 1};
  t.rows = 50;
  t.cols = 132;
  t.xpixel = 640;
  t.ypixel = 480;
  t.device = makedev(136, 7);
  t.controlling = true;
  t.foreground_pgid = 17;
  f.terminal = t;
  img.fds.push_back(f);
  image::FileDescriptor plain;
  plain.fd = 3;
  img.fds.push_back(plain);
  std::vector<uint8_t> bytes = image::EncodeMetadata(img);
  auto back = image::DecodeMetadata(bytes.data(), bytes.size());
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->fds.size(), 2u);
  ASSERT_TRUE(back->fds[0].terminal.has_value());
  const image::TerminalState& b = *back->fds[0].terminal;
  EXPECT_EQ(b.iflag, t.iflag);
  EXPECT_EQ(b.oflag, t.oflag);
  EXPECT_EQ(b.cflag, t.cflag);
  EXPECT_EQ(b.lflag, t.lflag);
  EXPECT_EQ(b.line, t.line);
  EXPECT_EQ(b.cc, t.cc);
  EXPECT_EQ(b.rows, t.rows);
  EXPECT_EQ(b.cols, t.cols);
  EXPECT_EQ(b.xpixel, t.xpixel);
  EXPECT_EQ(b.ypixel, t.ypixel);
  EXPECT_EQ(b.device, t.device);
  EXPECT_TRUE(b.controlling);
  EXPECT_EQ(b.foreground_pgid, 17);
  EXPECT_FALSE(back->fds[1].terminal.has_value());

  // A terminal field of the wrong type is an error naming it.
  auto j = image::MetadataToJson(img);
  j["fds"][0]["terminal"]["rows"] = "tall";
  auto bad = image::MetadataFromJson(j);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("fds[0].terminal.rows"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace stasis::state
