// Tests of the anon-inode descriptor modules (src/state/eventfd, timerfd,
// signalfd, epoll, anon_inode): fdinfo parsers on text as this kernel
// prints it, capture from a forked child (incl. the lazy periodic timer
// catch-up, dups and unrestorable epoll targets), restore of each kind in
// this process, RestoreFiles + RestoreEpollTargets in a forked child, and
// the image codec round trip.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>

#include "image/codec.h"
#include "paused_child.h"
#include "state/anon_inode.h"
#include "state/epoll.h"
#include "state/eventfd.h"
#include "state/files.h"
#include "state/signalfd.h"
#include "state/timerfd.h"

namespace stasis::state {
namespace {

using Kind = image::FileDescriptor::Kind;
using testing::PausedChild;

constexpr uint64_t kMs = 1000000;

const image::FileDescriptor* Find(const std::vector<image::FileDescriptor>& fds, int fd) {
  for (const auto& f : fds) if (f.fd == fd) return &f;
  return nullptr;
}

// --- Parsers, on fdinfo text copied from this kernel (6.18). ---

TEST(AnonParse, Eventfd) {
  auto s = ParseEventfdFdinfo("pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1038\n"
                              "eventfd-count:              3ed\neventfd-id: 1\neventfd-semaphore: 1\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->count, 0x3edu);
  EXPECT_TRUE(s->semaphore);
  auto old = ParseEventfdFdinfo("pos:\t0\nflags:\t02\neventfd-count:                0\n");
  ASSERT_TRUE(old.ok()) << old.status().message();
  EXPECT_EQ(old->count, 0u);
  EXPECT_FALSE(old->semaphore);
  EXPECT_FALSE(ParseEventfdFdinfo("pos:\t0\nflags:\t02\n").ok());
  EXPECT_FALSE(ParseEventfdFdinfo("eventfd-count: xyz\n").ok());
  EXPECT_FALSE(ParseEventfdFdinfo("eventfd-count: ffffffffffffffff\n").ok());
  EXPECT_FALSE(ParseEventfdFdinfo("eventfd-count: 1\neventfd-semaphore: 2\n").ok());
}

TEST(AnonParse, Timerfd) {
  auto t = ParseTimerfdFdinfo("pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1038\nclockid: 1\nticks: 5\n"
                              "settime flags: 03\nit_value: (0, 4742733)\nit_interval: (2, 10000000)\n");
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->clockid, 1);
  EXPECT_EQ(t->ticks, 5u);
  EXPECT_EQ(t->settime_flags, 3);
  EXPECT_EQ(t->value_ns, 4742733u);
  EXPECT_EQ(t->interval_ns, 2010000000u);
  EXPECT_FALSE(ParseTimerfdFdinfo("clockid: 1\nticks: 5\nsettime flags: 00\nit_value: (0, 1)\n").ok());
  EXPECT_FALSE(ParseTimerfdFdinfo("clockid: 1\nticks: 5\nsettime flags: 09\n"
                                  "it_value: (0, 1)\nit_interval: (0, 0)\n").ok());  // not octal
  EXPECT_FALSE(ParseTimerfdFdinfo("clockid: 1\nticks: 5\nsettime flags: 00\n"
                                  "it_value: (0, 1000000000)\nit_interval: (0, 0)\n").ok());
  EXPECT_FALSE(ParseTimerfdFdinfo("clockid: 1\nticks: -5\nsettime flags: 00\n"
                                  "it_value: (0, 1)\nit_interval: (0, 0)\n").ok());
}

TEST(AnonParse, Signalfd) {
  auto s = ParseSignalfdFdinfo("pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\nsigmask:\t0000000800000200\n");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->sigmask, (uint64_t{1} << (SIGUSR1 - 1)) | (uint64_t{1} << 35));  // SIGUSR1, signal 36
  auto zero = ParseSignalfdFdinfo("sigmask:\t0000000000000000\n");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->sigmask, 0u);
  EXPECT_FALSE(ParseSignalfdFdinfo("pos:\t0\n").ok());
  EXPECT_FALSE(ParseSignalfdFdinfo("sigmask:\t00000g0000000000\n").ok());
  EXPECT_FALSE(ParseSignalfdFdinfo("sigmask:\t10000000000000000\n").ok());  // 65 bits
}

TEST(AnonParse, Epoll) {
  auto t = ParseEpollFdinfo(
      "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\n"
      "tfd:        3 events: 80000019 data: 1234567890abcdef  pos:0 ino:40e sdev:10\n"
      "tfd:        4 events: 40000019 data:                7  pos:0 ino:40e sdev:10\n");
  ASSERT_TRUE(t.ok()) << t.status().message();
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].fd, 3);
  EXPECT_EQ((*t)[0].events, 0x80000019u);
  EXPECT_EQ((*t)[0].data, 0x1234567890abcdefull);
  EXPECT_EQ((*t)[1].fd, 4);
  EXPECT_EQ((*t)[1].events, EPOLLONESHOT | EPOLLIN | EPOLLERR | EPOLLHUP);
  EXPECT_EQ((*t)[1].data, 7u);
  auto none = ParseEpollFdinfo("pos:\t0\nflags:\t02\n");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(ParseEpollFdinfo("tfd:        3 events: zz data: 1\n").ok());
  EXPECT_FALSE(ParseEpollFdinfo("tfd:       -3 events: 19 data: 1\n").ok());
}

TEST(AnonParse, Classify) {
  EXPECT_EQ(ClassifyAnonInode("anon_inode:[eventfd]"), Kind::kEventfd);
  EXPECT_EQ(ClassifyAnonInode("anon_inode:[timerfd]"), Kind::kTimerfd);
  EXPECT_EQ(ClassifyAnonInode("anon_inode:[signalfd]"), Kind::kSignalfd);
  EXPECT_EQ(ClassifyAnonInode("anon_inode:[eventpoll]"), Kind::kEpoll);
  EXPECT_EQ(ClassifyAnonInode("anon_inode:inotify"), Kind::kOther);
  EXPECT_EQ(ClassifyAnonInode("anon_inode:[io_uring]"), Kind::kOther);
}

// --- Capture from a live process. ---

// Moves `fd` to number `to` (close-on-exec as `cloexec`).
void MoveFd(int fd, int to, bool cloexec = false) {
  if (fd < 0 || dup3(fd, to, cloexec ? O_CLOEXEC : 0) != to) _exit(1);
  close(fd);
}

TEST(AnonCapture, ForkedChild) {
  PausedChild child([] {
    int e = eventfd(7, EFD_SEMAPHORE | EFD_NONBLOCK);
    uint64_t add = 1000;
    if (write(e, &add, sizeof add) != sizeof add) _exit(1);
    dup2(e, 50);
    dup2(e, 51);  // a dup: same_file_as 50
    close(e);
    int t = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {{0, 1000000}, {0, 1000000}};  // every 1 ms
    timerfd_settime(t, 0, &its, nullptr);
    dup2(t, 52);
    close(t);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGUSR2);
    MoveFd(signalfd(-1, &m, 0), 53, /*cloexec=*/true);
    MoveFd(epoll_create1(0), 54);
    auto add_target = [](int fd, uint32_t events, uint64_t data) {
      struct epoll_event ev = {};
      ev.events = events;
      ev.data.u64 = data;
      if (epoll_ctl(54, EPOLL_CTL_ADD, fd, &ev) != 0) _exit(1);
    };
    add_target(50, EPOLLIN | EPOLLET, 0xabc);
    add_target(52, EPOLLIN, 2);
    MoveFd(eventfd(0, 0), 55);
    add_target(55, EPOLLIN, 5);
    dup2(55, 56);
    close(55);  // registered as 55, kept open by 56 only
    MoveFd(eventfd(0, 0), 57);
    add_target(57, EPOLLIN, 7);
    dup2(57, 58);
    dup2(50, 57);  // 57 now names another file
    struct timespec wait = {0, 30 * 1000000};
    nanosleep(&wait, nullptr);  // ~30 expirations, none read
  });
  ASSERT_TRUE(child.ready());
  auto target = ProcTarget::Open(child.pid());
  ASSERT_TRUE(target.ok()) << target.status().message();
  auto fds = CaptureFiles(*target, -1);
  ASSERT_TRUE(fds.ok()) << fds.status().message();

  const image::FileDescriptor* e = Find(*fds, 50);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->kind, Kind::kEventfd);
  EXPECT_EQ(e->eventfd.count, 1007u);
  EXPECT_TRUE(e->eventfd.semaphore);
  EXPECT_TRUE(e->flags & O_NONBLOCK);
  EXPECT_EQ(e->same_file_as, -1);
  ASSERT_NE(Find(*fds, 51), nullptr);
  EXPECT_EQ(Find(*fds, 51)->same_file_as, 50);

  const image::FileDescriptor* t = Find(*fds, 52);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->kind, Kind::kTimerfd);
  EXPECT_EQ(t->timerfd.clockid, CLOCK_MONOTONIC);
  EXPECT_EQ(t->timerfd.interval_ns, 1 * kMs);
  // fdinfo alone would say ticks 1, it_value (0, 0): the catch-up counted
  // every period since.
  EXPECT_GE(t->timerfd.ticks, 20u);
  EXPECT_GT(t->timerfd.value_ns, 0u);
  EXPECT_LE(t->timerfd.value_ns, 1 * kMs);
  EXPECT_GT(t->timerfd.clock_ns, 0);

  const image::FileDescriptor* s = Find(*fds, 53);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->kind, Kind::kSignalfd);
  EXPECT_EQ(s->signalfd.sigmask, (uint64_t{1} << (SIGUSR1 - 1)) | (uint64_t{1} << (SIGUSR2 - 1)));
  EXPECT_TRUE(s->cloexec);

  const image::FileDescriptor* ep = Find(*fds, 54);
  ASSERT_NE(ep, nullptr);
  EXPECT_EQ(ep->kind, Kind::kEpoll);
  std::map<int, image::EpollTarget> by_fd;
  for (const auto& x : ep->epoll.targets) by_fd[x.fd] = x;
  ASSERT_EQ(by_fd.size(), 4u);
  EXPECT_EQ(by_fd[50].data, 0xabcu);
  EXPECT_EQ(by_fd[50].events & (EPOLLIN | EPOLLET), EPOLLIN | EPOLLET);
  EXPECT_TRUE(by_fd[50].restorable);
  EXPECT_TRUE(by_fd[52].restorable);
  EXPECT_FALSE(by_fd[55].restorable);  // closed
  EXPECT_FALSE(by_fd[57].restorable);  // another file now
}

// --- Restore of each kind, in this process. ---

image::FileDescriptor AnonFd(Kind kind, int flags = O_RDWR) {
  image::FileDescriptor f;
  f.fd = 9;
  f.kind = kind;
  f.flags = flags;
  return f;
}

TEST(AnonRestore, Eventfd) {
  image::FileDescriptor f = AnonFd(Kind::kEventfd, O_RDWR | O_NONBLOCK);
  f.eventfd.count = (uint64_t{1} << 40) + 3;  // beyond eventfd(2)'s unsigned int initval
  auto fd = RestoreAnonFd(f, -1);
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  EXPECT_TRUE(fcntl(fd->get(), F_GETFL) & O_NONBLOCK);
  EXPECT_EQ(fcntl(fd->get(), F_GETFD), FD_CLOEXEC);
  uint64_t v = 0;
  ASSERT_EQ(read(fd->get(), &v, sizeof v), 8);
  EXPECT_EQ(v, f.eventfd.count);
  EXPECT_EQ(read(fd->get(), &v, sizeof v), -1);  // empty, non-blocking
  EXPECT_EQ(errno, EAGAIN);

  f.eventfd = {2, true};
  auto sem = RestoreAnonFd(f, -1);
  ASSERT_TRUE(sem.ok()) << sem.status().message();
  ASSERT_EQ(read(sem->get(), &v, sizeof v), 8);
  EXPECT_EQ(v, 1u);  // EFD_SEMAPHORE: one at a time
  ASSERT_EQ(read(sem->get(), &v, sizeof v), 8);
  EXPECT_EQ(read(sem->get(), &v, sizeof v), -1);
}

TEST(AnonRestore, TimerfdTicksAndRemainingTime) {
  image::FileDescriptor f = AnonFd(Kind::kTimerfd, O_RDWR | O_NONBLOCK);
  f.timerfd.clockid = CLOCK_MONOTONIC;
  f.timerfd.ticks = 5;                 // expired, not read
  f.timerfd.value_ns = 400 * kMs;      // next one in 400 ms
  f.timerfd.interval_ns = 1000 * kMs;
  auto fd = RestoreAnonFd(f, -1);
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  struct itimerspec cur;
  ASSERT_EQ(timerfd_gettime(fd->get(), &cur), 0);
  const uint64_t left = static_cast<uint64_t>(cur.it_value.tv_sec) * 1000000000 + cur.it_value.tv_nsec;
  EXPECT_GT(left, 300 * kMs);
  EXPECT_LE(left, 400 * kMs);
  EXPECT_EQ(cur.it_interval.tv_sec, 1);
  uint64_t ticks = 0;
  ASSERT_EQ(read(fd->get(), &ticks, sizeof ticks), 8);  // TFD_IOC_SET_TICKS (CONFIG_CHECKPOINT_RESTORE)
  EXPECT_EQ(ticks, 5u);

  // Disarmed one-shot that fired twice, unread.
  f.timerfd = {};
  f.timerfd.clockid = CLOCK_BOOTTIME;
  f.timerfd.ticks = 2;
  auto once = RestoreAnonFd(f, -1);
  ASSERT_TRUE(once.ok()) << once.status().message();
  ASSERT_EQ(read(once->get(), &ticks, sizeof ticks), 8);
  EXPECT_EQ(ticks, 2u);
  ASSERT_EQ(timerfd_gettime(once->get(), &cur), 0);
  EXPECT_EQ(cur.it_value.tv_sec + cur.it_value.tv_nsec, 0);
}

TEST(AnonRestore, TimerfdRealtimeAbsoluteKeepsTheDeadline) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  const int64_t now_ns = static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
  image::FileDescriptor f = AnonFd(Kind::kTimerfd, O_RDWR | O_NONBLOCK);
  f.timerfd.clockid = CLOCK_REALTIME;
  f.timerfd.settime_flags = TFD_TIMER_ABSTIME;
  f.timerfd.clock_ns = now_ns - 10000 * static_cast<int64_t>(kMs);  // captured 10 s ago
  f.timerfd.value_ns = 1000 * kMs;  // deadline 9 s ago
  f.timerfd.interval_ns = 1000 * kMs;
  f.timerfd.ticks = 1;
  auto fd = RestoreAnonFd(f, -1);
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  uint64_t ticks = 0;
  ASSERT_EQ(read(fd->get(), &ticks, sizeof ticks), 8);
  // 1 unread + the expirations at -9 s, -8 s, ..., 0 s: the downtime counts.
  EXPECT_GE(ticks, 10u);
  EXPECT_LE(ticks, 12u);
}

TEST(AnonRestore, Signalfd) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  ASSERT_EQ(sigprocmask(SIG_BLOCK, &block, &old), 0);
  image::FileDescriptor f = AnonFd(Kind::kSignalfd, O_RDWR | O_NONBLOCK);
  f.signalfd.sigmask = uint64_t{1} << (SIGUSR2 - 1);
  auto fd = RestoreAnonFd(f, -1);
  ASSERT_TRUE(fd.ok()) << fd.status().message();
  struct signalfd_siginfo si;
  EXPECT_EQ(read(fd->get(), &si, sizeof si), -1);  // nothing pending, non-blocking
  ASSERT_EQ(kill(getpid(), SIGUSR2), 0);
  ASSERT_EQ(read(fd->get(), &si, sizeof si), static_cast<ssize_t>(sizeof si));
  EXPECT_EQ(si.ssi_signo, static_cast<uint32_t>(SIGUSR2));
  sigprocmask(SIG_SETMASK, &old, nullptr);
}

// RestoreFiles closes every descriptor, so this runs in a child that
// reports "OK" or what was wrong through a kept descriptor.
TEST(AnonRestore, FilesDupsAndEpollTargetsInForkedChild) {
  image::ProcessImage img;
  image::FileDescriptor e = AnonFd(Kind::kEventfd, O_RDWR | O_NONBLOCK);
  e.fd = 5;
  e.eventfd.count = 3;
  img.fds.push_back(e);
  image::FileDescriptor dup = e;
  dup.fd = 6;
  dup.same_file_as = 5;
  dup.eventfd.count = 999;  // ignored: a dup is not a new object
  img.fds.push_back(dup);
  image::FileDescriptor t = AnonFd(Kind::kTimerfd);
  t.fd = 7;
  t.timerfd.clockid = CLOCK_MONOTONIC;
  t.timerfd.value_ns = 3600 * 1000 * kMs;  // never fires during the test
  img.fds.push_back(t);
  image::FileDescriptor ep = AnonFd(Kind::kEpoll, O_RDWR | O_NONBLOCK);
  ep.fd = 8;
  ep.epoll.targets = {{5, EPOLLIN, 0x55, true},
                      {7, EPOLLIN, 0x77, true},
                      {9, EPOLLIN, 0x99, false},   // left out at checkpoint
                      {12, EPOLLIN, 0x12, true}};  // no such descriptor: EBADF, reported
  img.fds.push_back(ep);

  int report[2];
  ASSERT_EQ(pipe(report), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(report[0]);
    int rep = fcntl(report[1], F_DUPFD_CLOEXEC, 101);
    int stdio[3] = {-1, -1, -1};
    std::string errors;
    auto check = [&](bool ok, const char* what) { if (!ok) errors += std::string(what) + "; "; };
    Status st = RestoreFiles(img, stdio, {rep});
    check(st.ok(), st.message().c_str());
    RestoreEpollTargets(img);
    uint64_t one = 1, v = 0;
    check(write(6, &one, 8) == 8, "write to the dup");
    check(read(5, &v, 8) == 8 && v == 4, "fd 5 and its dup 6 must share one counter of 3 + 1");
    check(write(6, &one, 8) == 8, "write to the dup");
    struct epoll_event evs[4];
    int n = epoll_wait(8, evs, 4, 0);
    check(n == 1 && evs[0].data.u64 == 0x55, "epoll must report the eventfd only");
    check(fcntl(8, F_GETFD) == 0, "fd 8 cloexec");
    check(fcntl(8, F_GETFL) & O_NONBLOCK, "fd 8 O_NONBLOCK");
    check(fcntl(5, F_GETFL) & O_NONBLOCK, "fd 5 O_NONBLOCK");
    if (errors.empty()) errors = "OK";
    (void)!write(rep, errors.data(), errors.size());
    _exit(0);
  }
  close(report[1]);
  std::string got;
  char buf[512];
  ssize_t n;
  while ((n = read(report[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  close(report[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(got, "OK");
}

// --- Image codec. ---

TEST(AnonCodec, RoundTripAndOldImages) {
  image::ProcessImage img;
  image::FileDescriptor e = AnonFd(Kind::kEventfd);
  e.fd = 3;
  e.eventfd = {UINT64_MAX - 1, true};
  image::FileDescriptor d = e;
  d.fd = 4;
  d.same_file_as = 3;
  image::FileDescriptor t = AnonFd(Kind::kTimerfd);
  t.fd = 5;
  t.timerfd = {CLOCK_REALTIME, 7, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, 123456789, 1000000000,
               -5};
  image::FileDescriptor s = AnonFd(Kind::kSignalfd);
  s.fd = 6;
  s.signalfd.sigmask = 0x8000000000000201ull;
  image::FileDescriptor ep = AnonFd(Kind::kEpoll);
  ep.fd = 7;
  ep.epoll.targets = {{3, 0x80000019u, 0xfedcba9876543210ull, true}, {5, EPOLLIN, 0, false}};
  img.fds = {e, d, t, s, ep};
  std::vector<uint8_t> cbor = image::EncodeMetadata(img);
  auto back = image::DecodeMetadata(cbor.data(), cbor.size());
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->fds.size(), 5u);
  const auto& b = back->fds;
  EXPECT_EQ(b[0].kind, Kind::kEventfd);
  EXPECT_EQ(b[0].eventfd.count, UINT64_MAX - 1);
  EXPECT_TRUE(b[0].eventfd.semaphore);
  EXPECT_EQ(b[0].same_file_as, -1);
  EXPECT_EQ(b[1].same_file_as, 3);
  EXPECT_EQ(b[2].kind, Kind::kTimerfd);
  EXPECT_EQ(b[2].timerfd.clockid, CLOCK_REALTIME);
  EXPECT_EQ(b[2].timerfd.ticks, 7u);
  EXPECT_EQ(b[2].timerfd.settime_flags, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET);
  EXPECT_EQ(b[2].timerfd.value_ns, 123456789u);
  EXPECT_EQ(b[2].timerfd.interval_ns, 1000000000u);
  EXPECT_EQ(b[2].timerfd.clock_ns, -5);
  EXPECT_EQ(b[3].kind, Kind::kSignalfd);
  EXPECT_EQ(b[3].signalfd.sigmask, 0x8000000000000201ull);
  EXPECT_EQ(b[4].kind, Kind::kEpoll);
  ASSERT_EQ(b[4].epoll.targets.size(), 2u);
  EXPECT_EQ(b[4].epoll.targets[0].fd, 3);
  EXPECT_EQ(b[4].epoll.targets[0].events, 0x80000019u);
  EXPECT_EQ(b[4].epoll.targets[0].data, 0xfedcba9876543210ull);
  EXPECT_TRUE(b[4].epoll.targets[0].restorable);
  EXPECT_FALSE(b[4].epoll.targets[1].restorable);

  // The display JSON names the kinds and shows the state.
  nlohmann::json j = image::ToJson(img);
  EXPECT_EQ(j["fds"][0]["kind"], "eventfd");
  EXPECT_EQ(j["fds"][4]["epoll"]["targets"][1]["restorable"], false);

  // An image written before these kinds: an anon inode was "other", with
  // no state fields; it still decodes, as the kind it was.
  nlohmann::json old = image::MetadataToJson(img);
  for (auto& f : old["fds"]) {
    f["kind"] = "other";
    f.erase("eventfd");
    f.erase("timerfd");
    f.erase("signalfd");
    f.erase("epoll");
    f.erase("same_file_as");
  }
  auto o = image::MetadataFromJson(old);
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->fds[0].kind, Kind::kOther);
  EXPECT_EQ(o->fds[1].same_file_as, -1);
  EXPECT_TRUE(o->fds[4].epoll.targets.empty());

  old = image::MetadataToJson(img);
  old["fds"][2]["timerfd"]["ticks"] = "many";
  auto bad = image::MetadataFromJson(old);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("fds[2].timerfd.ticks"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace stasis::state
