// timerfd descriptors; contracts and the restore policy in timerfd.h.
// Sources: timerfd_create(2), proc(5), kernel fs/timerfd.c (fdinfo format,
// lazy periodic expiry, TFD_IOC_SET_TICKS), pidfd_getfd(2).
#include "state/timerfd.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "state/anon_inode.h"

namespace stasis::state {
namespace {

constexpr uint64_t kNsPerSec = 1000000000ull;

// linux/timerfd.h's definition; that header clashes with glibc's
// sys/timerfd.h, so it is repeated here.
#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

bool ParseUnsigned(const std::string& s, int base, uint64_t* out) {
  if (s.empty() || s[0] == '-' || s[0] == '+') return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtoull(s.c_str(), &end, base);
  return *end == '\0' && errno == 0;
}

// "(<sec>, <nsec>)" -> nanoseconds.
bool ParseTimespec(const std::string& s, uint64_t* ns) {
  unsigned long long sec = 0, nsec = 0;
  char close = 0;
  if (std::sscanf(s.c_str(), "(%llu, %llu%c", &sec, &nsec, &close) != 3 || close != ')') return false;
  if (s.find('-') != std::string::npos) return false;
  if (nsec >= kNsPerSec || sec > (UINT64_MAX - nsec) / kNsPerSec) return false;
  *ns = sec * kNsPerSec + nsec;
  return true;
}

struct timespec ToTimespec(uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / kNsPerSec);
  ts.tv_nsec = static_cast<long>(ns % kNsPerSec);
  return ts;
}

StatusOr<int64_t> ClockNs(int clockid) {
  struct timespec ts;
  if (::clock_gettime(clockid, &ts) != 0) return Status::Errno("clock_gettime(" + std::to_string(clockid) + ")");
  return static_cast<int64_t>(ts.tv_sec) * static_cast<int64_t>(kNsPerSec) + ts.tv_nsec;
}

bool IsRealtime(int clockid) { return clockid == CLOCK_REALTIME || clockid == CLOCK_REALTIME_ALARM; }

// Expirations counted so far by our own timerfd, from /proc/self/fdinfo.
uint64_t OwnTicks(int fd) {
  auto text = ReadProcFile("/proc/self/fdinfo/" + std::to_string(fd));
  if (!text.ok()) return 0;
  auto s = ParseTimerfdFdinfo(*text);
  return s.ok() ? s->ticks : 0;
}

}  // namespace

StatusOr<image::TimerfdState> ParseTimerfdFdinfo(const std::string& fdinfo) {
  image::TimerfdState t;
  std::string v;
  uint64_t u = 0;
  if (!FdinfoValue(fdinfo, "clockid", &v) || !ParseUnsigned(v, 10, &u) || u > 64)
    return Status::Error("fdinfo: missing or bad clockid: line");
  t.clockid = static_cast<int32_t>(u);
  if (!FdinfoValue(fdinfo, "ticks", &v) || !ParseUnsigned(v, 10, &t.ticks))
    return Status::Error("fdinfo: missing or bad ticks: line");
  if (!FdinfoValue(fdinfo, "settime flags", &v) || !ParseUnsigned(v, 8, &u) || u > 0xffff)
    return Status::Error("fdinfo: missing or bad settime flags: line");
  t.settime_flags = static_cast<int32_t>(u);
  if (!FdinfoValue(fdinfo, "it_value", &v) || !ParseTimespec(v, &t.value_ns))
    return Status::Error("fdinfo: missing or bad it_value: line");
  if (!FdinfoValue(fdinfo, "it_interval", &v) || !ParseTimespec(v, &t.interval_ns))
    return Status::Error("fdinfo: missing or bad it_interval: line");
  return t;
}

StatusOr<image::TimerfdState> CaptureTimerfd(const ProcTarget& target, int fd, const std::string& fdinfo) {
  std::string text = fdinfo;
  auto dup = DupTargetFd(target.pid, fd);
  if (dup.ok()) {
    struct itimerspec cur;
    if (::timerfd_gettime(dup->get(), &cur) != 0) return Status::Errno("timerfd_gettime");
    auto own = ReadProcFile("/proc/self/fdinfo/" + std::to_string(dup->get()));
    if (!own.ok()) return own.status();
    text = std::move(own).value();
  }
  ASSIGN_OR_RETURN(image::TimerfdState t, ParseTimerfdFdinfo(text));
  if (!dup.ok() && t.value_ns == 0 && t.interval_ns != 0 && t.ticks != 0) {
    // Stopped periodic timer whose missed periods cannot be counted.
    std::fprintf(stderr,
                 "stasis: warning: pid %d fd %d: periodic timerfd expired and not caught up (%s); "
                 "restored with %llu pending expiration(s), next one a period later\n",
                 static_cast<int>(target.pid), fd, dup.status().message().c_str(),
                 static_cast<unsigned long long>(t.ticks));
    t.value_ns = t.interval_ns;
  }
  auto now = ClockNs(t.clockid);
  if (!now.ok()) return now.status();
  t.clock_ns = *now;
  return t;
}

StatusOr<ScopedFd> RestoreTimerfd(const image::FileDescriptor& f, int warn_fd) {
  const image::TimerfdState& t = f.timerfd;
  int flags = TFD_CLOEXEC;
  if (f.flags & O_NONBLOCK) flags |= TFD_NONBLOCK;
  ScopedFd fd(::timerfd_create(t.clockid, flags));
  if (!fd) return Status::Errno("timerfd_create(clock " + std::to_string(t.clockid) + ")");
  if (t.value_ns != 0) {
    struct itimerspec its;
    its.it_interval = ToTimespec(t.interval_ns);
    int sflags = t.settime_flags;
    if ((sflags & TFD_TIMER_ABSTIME) && IsRealtime(t.clockid)) {
      its.it_value = ToTimespec(static_cast<uint64_t>(t.clock_ns) + t.value_ns);
    } else if (sflags & TFD_TIMER_ABSTIME) {
      ASSIGN_OR_RETURN(int64_t now, ClockNs(t.clockid));
      its.it_value = ToTimespec(static_cast<uint64_t>(now) + t.value_ns);
    } else {
      its.it_value = ToTimespec(t.value_ns);
    }
    if (::timerfd_settime(fd.get(), sflags, &its, nullptr) != 0) return Status::Errno("timerfd_settime");
  }
  if (t.ticks != 0) {
    // Arming reset the count; a deadline already passed may have added one.
    uint64_t ticks = t.ticks + (t.value_ns != 0 ? OwnTicks(fd.get()) : 0);
    if (::ioctl(fd.get(), TFD_IOC_SET_TICKS, &ticks) != 0) {
      AnonWarn(warn_fd, "fd " + std::to_string(f.fd) + " (timerfd): " + std::to_string(t.ticks) +
                            " expiration(s) not yet read are lost (TFD_IOC_SET_TICKS: " +
                            std::strerror(errno) + ")");
    }
  }
  return fd;
}

}  // namespace stasis::state
