/* eventfd, timerfd, signalfd and epoll across checkpoint/restart.
 * usage: anon_fds STEPS PERIOD_MS
 * One loop waits in epoll_wait on a periodic timerfd, a self-pipe, an
 * eventfd and a signalfd.  Every expiration of the timer is one step s:
 *   - s is added to the eventfd counter; every 7th step the counter is read
 *     and printed (the sum of the steps since the last read: the counter
 *     carries over a checkpoint);
 *   - at s % 5 == 0 SIGUSR1 is queued (sigqueue value s, blocked, so it
 *     waits for the signalfd) and read back through the signalfd at
 *     s % 5 == 2;
 *   - at s % 4 == 0 a line is written into the pipe, read back at s % 4 == 3;
 *   - epoll_wait(0) then lists which of pipe/eventfd/signalfd are ready
 *     (the timer is left out: it may fire again meanwhile).
 * Missed periods (a slow step, a restart) arrive as several ticks and are
 * run as several steps, so the output depends only on STEPS.  A second,
 * one-shot CLOCK_REALTIME timer armed an hour ahead must still be armed at
 * the end.  Output: "step s ..." lines, then "done". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define TAG_TIMER 1
#define TAG_PIPE 2
#define TAG_EVENT 3
#define TAG_SIGNAL 4

static void die(const char* what) {
  perror(what);
  exit(1);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: anon_fds STEPS PERIOD_MS\n");
    return 2;
  }
  const long steps = atol(argv[1]);
  const long period_ms = atol(argv[2]);
  setvbuf(stdout, NULL, _IOLBF, 0);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGUSR1);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) die("sigprocmask");
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  int efd = eventfd(0, EFD_NONBLOCK);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  int later = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
  int p[2];
  if (sfd < 0 || efd < 0 || tfd < 0 || later < 0 || pipe2(p, O_NONBLOCK) != 0) die("create");
  struct itimerspec its = {{period_ms / 1000, (period_ms % 1000) * 1000000},
                           {period_ms / 1000, (period_ms % 1000) * 1000000}};
  if (timerfd_settime(tfd, 0, &its, NULL) != 0) die("timerfd_settime");
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct itimerspec hour = {{0, 0}, {now.tv_sec + 3600, 0}};
  if (timerfd_settime(later, TFD_TIMER_ABSTIME, &hour, NULL) != 0) die("timerfd_settime abs");

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct { int fd; uint64_t tag; uint32_t events; } watch[] = {
      {tfd, TAG_TIMER, EPOLLIN}, {p[0], TAG_PIPE, EPOLLIN}, {efd, TAG_EVENT, EPOLLIN},
      {sfd, TAG_SIGNAL, EPOLLIN}};
  for (size_t i = 0; i < sizeof watch / sizeof watch[0]; ++i) {
    struct epoll_event ev = {.events = watch[i].events, .data.u64 = watch[i].tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, watch[i].fd, &ev) != 0) die("epoll_ctl");
  }

  long s = 0;
  while (s < steps) {
    struct epoll_event evs[8];
    int n = epoll_wait(ep, evs, 8, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    int timer = 0;
    for (int i = 0; i < n; ++i) timer |= evs[i].data.u64 == TAG_TIMER;
    if (!timer) continue; /* the others are polled per step below */
    uint64_t ticks = 0;
    if (read(tfd, &ticks, sizeof ticks) != sizeof ticks) die("read timerfd");
    for (uint64_t k = 0; k < ticks && s < steps; ++k) {
      ++s;
      char line[256];
      int len = snprintf(line, sizeof line, "step %ld", s);
      uint64_t v = (uint64_t)s;
      if (write(efd, &v, sizeof v) != sizeof v) die("write eventfd");
      if (s % 7 == 0) {
        if (read(efd, &v, sizeof v) != sizeof v) die("read eventfd");
        len += snprintf(line + len, sizeof line - len, " eventfd %llu", (unsigned long long)v);
      }
      if (s % 5 == 0) {
        union sigval val = {.sival_int = (int)s};
        if (sigqueue(getpid(), SIGUSR1, val) != 0) die("sigqueue");
      }
      if (s % 5 == 2 && s > 5) {
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof si) != sizeof si) die("read signalfd");
        len += snprintf(line + len, sizeof line - len, " signal %u value %d", si.ssi_signo, si.ssi_int);
      }
      if (s % 4 == 0) {
        char msg[32];
        int m = snprintf(msg, sizeof msg, "pipe %ld\n", s);
        if (write(p[1], msg, m) != m) die("write pipe");
      }
      if (s % 4 == 3 && s > 4) {
        char msg[32] = {0};
        ssize_t m = read(p[0], msg, sizeof msg - 1);
        if (m <= 0) die("read pipe");
        msg[strcspn(msg, "\n")] = 0;
        len += snprintf(line + len, sizeof line - len, " read \"%s\"", msg);
      }
      struct epoll_event ready[8];
      int r = epoll_wait(ep, ready, 8, 0);
      int tags = 0;
      for (int i = 0; i < r; ++i) tags |= 1 << ready[i].data.u64;
      len += snprintf(line + len, sizeof line - len, " ready%s%s%s", tags & (1 << TAG_PIPE) ? " pipe" : "",
                      tags & (1 << TAG_EVENT) ? " eventfd" : "", tags & (1 << TAG_SIGNAL) ? " signalfd" : "");
      puts(line);
    }
  }
  struct itimerspec left;
  if (timerfd_gettime(later, &left) != 0) die("timerfd_gettime");
  printf("realtime timer %s\n", left.it_value.tv_sec > 3000 ? "still armed" : "lost");
  puts("done");
  return 0;
}
