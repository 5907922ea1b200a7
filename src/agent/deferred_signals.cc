// Deferred termination signals, for `stasis run` under Slurm.  At the
// walltime and at preemption Slurm sends SIGTERM to every process of the job
// step at once: the program would die before `stasis run` (which receives
// the same SIGTERM) has checkpointed it.  With STASIS_DEFER_SIGNALS=TERM[,..]
// (set by `stasis run`), the agent catches those signals in programs that
// keep the default action, and lets the checkpoint's SIGKILL end the process
// instead.  The program still sees SIG_DFL through sigaction/signal; once it
// installs a handler of its own (or SIG_IGN) that is installed for real and
// the signal is no longer deferred.  If no checkpoint ends the process within
// STASIS_DEFER_TIMEOUT seconds (default 60), the default action is taken
// after all (a POSIX timer re-sends the signal; it does not survive a
// restart, so a restarted process defers without that timeout).
// Handler and hooks: raw system calls only, no allocation (signal-safety(7)).
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_internal.h"
#include "common/raw_log.h"

namespace stasis::agent {
namespace {

constexpr int kMaxDeferred = 4;

struct Deferred {
  int sig = 0;
  volatile int active = 0;      // 1 while the program keeps the default action
  volatile int armed = 0;       // fallback timer started
  int timer_ok = 0;
  timer_t timer{};
  struct sigaction program = {};  // what the program asked for (SIG_DFL so far)
};

Deferred g_deferred[kMaxDeferred];
double g_timeout_s = 60;
// si_value of the fallback timers' signals.
char g_timer_cookie;

Deferred* Find(int sig) {
  for (auto& d : g_deferred) {
    if (d.sig != 0 && d.sig == sig) return &d;
  }
  return nullptr;
}

void DeferHandler(int sig, siginfo_t* info, void*) {
  Deferred* d = Find(sig);
  if (d == nullptr) return;
  if (info != nullptr && info->si_code == SI_TIMER && info->si_value.sival_ptr == &g_timer_cookie) {
    // No checkpoint came: take the default action now.
    RawLog("agent: no checkpoint %d s after signal %d; taking its default action", static_cast<int>(g_timeout_s),
           sig);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    RealSigaction(sig, &dfl, nullptr);
    // Blocked while this handler runs; delivered (and fatal) when it returns.
    syscall(SYS_tgkill, syscall(SYS_getpid), RawGettid(), sig);
    return;
  }
  if (g.verbose) RawLog("agent: signal %d deferred until the checkpoint", sig);
  if (d->timer_ok && !d->armed) {
    d->armed = 1;
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = static_cast<time_t>(g_timeout_s);
    its.it_value.tv_nsec = static_cast<long>((g_timeout_s - static_cast<double>(its.it_value.tv_sec)) * 1e9);
    syscall(SYS_timer_settime, d->timer, 0, &its, nullptr);
  }
}

int SignalFromName(const char* s, size_t n) {
  if (n > 3 && strncmp(s, "SIG", 3) == 0) {
    s += 3;
    n -= 3;
  }
  struct {
    const char* name;
    int sig;
  } const kNames[] = {{"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP},
                      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"XCPU", SIGXCPU}};
  for (const auto& k : kNames) {
    if (strlen(k.name) == n && strncmp(s, k.name, n) == 0) return k.sig;
  }
  return 0;
}

}  // namespace

void InitDeferredSignals() {
  const char* list = getenv(kDeferSignalsEnv);
  if (list == nullptr || *list == '\0') return;
  if (const char* t = getenv("STASIS_DEFER_TIMEOUT")) {
    double v = strtod(t, nullptr);
    if (v > 0) g_timeout_s = v;
  }
  int n = 0;
  for (const char* p = list; *p != '\0' && n < kMaxDeferred;) {
    const char* end = strchr(p, ',');
    size_t len = end ? static_cast<size_t>(end - p) : strlen(p);
    int sig = SignalFromName(p, len);
    p += len + (end ? 1 : 0);
    if (sig == 0 || sig == g.sigckpt || Find(sig) != nullptr) continue;
    struct sigaction cur;
    if (RealSigaction(sig, nullptr, &cur) != 0) continue;
    // Only signals the program leaves at their default (inherited SIG_IGN stays).
    if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler != SIG_DFL) continue;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction != nullptr) continue;
    Deferred& d = g_deferred[n];
    d.sig = sig;
    d.program = cur;
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = sig;
    sev.sigev_value.sival_ptr = &g_timer_cookie;
    d.timer_ok = timer_create(CLOCK_MONOTONIC, &sev, &d.timer) == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = DeferHandler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (RealSigaction(sig, &sa, nullptr) != 0) {
      d.sig = 0;
      continue;
    }
    d.active = 1;
    ++n;
  }
}

void ForgetDeferredTimers() {
  for (auto& d : g_deferred) {
    d.timer_ok = 0;
    d.armed = 0;
  }
}

bool DeferredSigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  Deferred* d = Find(sig);
  if (d == nullptr || !d->active) return false;
  struct sigaction prev = d->program;
  if (act != nullptr) {
    const bool dfl = (act->sa_flags & SA_SIGINFO) ? act->sa_sigaction == nullptr : act->sa_handler == SIG_DFL;
    if (dfl) {
      d->program = *act;
    } else {
      // The program handles (or ignores) it itself: no more deferral.
      if (RealSigaction(sig, act, nullptr) != 0) return false;  // errno from the real call
      d->active = 0;
      if (d->timer_ok) {
        struct itimerspec zero;
        memset(&zero, 0, sizeof(zero));
        syscall(SYS_timer_settime, d->timer, 0, &zero, nullptr);
      }
    }
  }
  if (old != nullptr) *old = prev;
  return true;
}

}  // namespace stasis::agent
