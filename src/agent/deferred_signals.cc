// Deferred termination signals, for `stasis run` under Slurm.  At the
// walltime and at preemption Slurm sends SIGTERM to every process of the job
// step at once, and `--signal=USR1@T` (without B:) sends USR1 to every
// process of the step: the program would die before `stasis run` has
// checkpointed it.  With STASIS_DEFER_SIGNALS=USR1,TERM (set by `stasis run`
// to its checkpoint signals), the agent catches those signals in programs
// that keep the default action, and lets the checkpoint's SIGKILL end the
// process instead.  The first such signal also asks for that checkpoint
// (kCheckpointRequest to the supervisor, which passes it to the
// coordinator), so the job is checkpointed and ended even when only the
// program received the signal.  The program still sees SIG_DFL through sigaction/signal; once it
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
  volatile int requested = 0;   // kCheckpointRequest sent (or queued) for this signal
  int timer_ok = 0;
  timer_t timer{};
  struct sigaction program = {};  // what the program asked for (SIG_DFL so far)
};

Deferred g_deferred[kMaxDeferred];
double g_timeout_s = 60;
// si_value of the fallback timers' signals.
char g_timer_cookie;
// A checkpoint request not sent yet (the agent is not connected): its signal.
volatile int g_pending_request = 0;

// Names for kCheckpointRequest and STASIS_DEFER_SIGNALS: the signals whose
// default action ends the process (signal(7)); the others (CHLD, CONT, URG,
// WINCH, stop signals) are never deferred.
struct SigName {
  const char* name;
  int sig;
};
constexpr SigName kTerminating[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
    {"ALRM", SIGALRM}, {"TERM", SIGTERM},   {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM},
    {"PROF", SIGPROF}, {"PWR", SIGPWR},     {"IO", SIGIO},     {"STKFLT", SIGSTKFLT}};

void SendRequest(int sig) {
  Message m;
  InitMessage(&m, MsgType::kCheckpointRequest);
  const char* name = nullptr;
  for (const auto& k : kTerminating) {
    if (k.sig == sig) name = k.name;
  }
  if (name != nullptr) {
    for (int i = 0; name[i] != '\0' && i + 1 < static_cast<int>(sizeof(m.text)); ++i) m.text[i] = name[i];
  } else {
    FormatInt(m.text, sig);  // real-time signals
  }
  if (!SendMessage(m)) LogVerbose("checkpoint request not sent, errno", errno);
}

// From the handler: send now if connected, else leave it to the agent
// thread (FlushCheckpointRequest after its hello).  The exchange makes sure
// only one of them sends it.
void RequestCheckpoint(int sig) {
  __atomic_store_n(&g_pending_request, sig, __ATOMIC_SEQ_CST);
  // Right after a restart g.sock is the old run's number until the agent
  // thread reconnects; it may be one of the program's descriptors now.
  if (__atomic_load_n(&g_cb.restart.restarted, __ATOMIC_SEQ_CST) != 0) return;
  if (__atomic_load_n(&g.sock, __ATOMIC_SEQ_CST) < 0) return;
  int s = __atomic_exchange_n(&g_pending_request, 0, __ATOMIC_SEQ_CST);
  if (s != 0) SendRequest(s);
}

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
  if (!d->requested) {
    d->requested = 1;
    RequestCheckpoint(sig);
  }
  if (d->timer_ok && !d->armed) {
    d->armed = 1;
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = static_cast<time_t>(g_timeout_s);
    its.it_value.tv_nsec = static_cast<long>((g_timeout_s - static_cast<double>(its.it_value.tv_sec)) * 1e9);
    syscall(SYS_timer_settime, d->timer, 0, &its, nullptr);
  }
}

// "TERM", "SIGTERM" or "15" -> 15; 0 for unknown names and for signals
// whose default action does not end the process.  Real-time signals
// (34..64) terminate by default and are accepted as numbers.
int SignalFromName(const char* s, size_t n) {
  if (n > 3 && strncmp(s, "SIG", 3) == 0) {
    s += 3;
    n -= 3;
  }
  for (const auto& k : kTerminating) {
    if (strlen(k.name) == n && strncmp(s, k.name, n) == 0) return k.sig;
  }
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9' || v > 64) return 0;
    v = v * 10 + (s[i] - '0');
  }
  if (n == 0) return 0;
  for (const auto& k : kTerminating) {
    if (k.sig == v) return v;
  }
  return v >= 34 && v <= 64 ? v : 0;  // 32, 33: glibc's own
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
    d.requested = 0;  // a new process (or run): a new signal asks again
  }
  __atomic_store_n(&g_pending_request, 0, __ATOMIC_SEQ_CST);
}

void FlushCheckpointRequest() {
  int s = __atomic_exchange_n(&g_pending_request, 0, __ATOMIC_SEQ_CST);
  if (s != 0) SendRequest(s);
}

bool IsDeferredSignal(int sig) {
  Deferred* d = Find(sig);
  return d != nullptr && d->active;
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
