// Interposed libc functions (exported; LD_PRELOAD puts them ahead of libc):
// the program may neither replace the checkpoint signal's handler nor block
// it.  Its requested action is remembered and reported back (sigaction's
// oldact) but never installed; the checkpoint signal is removed from every
// mask it asks to block.  Technique: dlsym(RTLD_NEXT) (dlsym(3)), as DMTCP
// and other preload wrappers do.  No allocation; safe in signal handlers.
// Not covered: masks passed to ppoll/pselect/epoll_pwait/signalfd, and raw
// rt_sigprocmask/rt_sigaction system calls.
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "agent/agent_internal.h"

namespace stasis::agent {
namespace {

using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);
using MaskFn = int (*)(int, const sigset_t*, sigset_t*);
using SignalFn = sighandler_t (*)(int, sighandler_t);
using SigsuspendFn = int (*)(const sigset_t*);

SigactionFn g_real_sigaction;
MaskFn g_real_sigprocmask;
MaskFn g_real_pthread_sigmask;
SignalFn g_real_signal;
SigsuspendFn g_real_sigsuspend;

// Benign race: every resolver stores the same value.
template <typename Fn>
Fn Resolve(Fn* slot, const char* name) {
  Fn f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (f == nullptr) {
    f = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
    __atomic_store_n(slot, f, __ATOMIC_RELEASE);
  }
  return f;
}

bool Protected(int sig) { return sig != 0 && sig == g.sigckpt; }

// Copy of `set` without the checkpoint signal, if the call would block it.
const sigset_t* Filter(int how, const sigset_t* set, sigset_t* copy) {
  if (set == nullptr || g.sigckpt == 0 || how == SIG_UNBLOCK || !sigismember(set, g.sigckpt)) return set;
  *copy = *set;
  sigdelset(copy, g.sigckpt);
  return copy;
}

}  // namespace

int RealSigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  SigactionFn f = Resolve(&g_real_sigaction, "sigaction");
  if (f == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return f(sig, act, old);
}

int RealPthreadSigmask(int how, const sigset_t* set, sigset_t* old) {
  MaskFn f = Resolve(&g_real_pthread_sigmask, "pthread_sigmask");
  return f == nullptr ? ENOSYS : f(how, set, old);
}

}  // namespace stasis::agent

using stasis::agent::g;

#define STASIS_EXPORT extern "C" __attribute__((visibility("default")))

STASIS_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) noexcept {
  if (stasis::agent::Protected(sig)) {
    struct sigaction prev = g.user_action;
    if (act != nullptr) g.user_action = *act;
    if (old != nullptr) *old = prev;
    return 0;
  }
  if (stasis::agent::DeferredSigaction(sig, act, old)) return 0;
  return stasis::agent::RealSigaction(sig, act, old);
}

STASIS_EXPORT sighandler_t signal(int sig, sighandler_t handler) noexcept {
  if (stasis::agent::Protected(sig)) {
    sighandler_t prev = (g.user_action.sa_flags & SA_SIGINFO) ? nullptr : g.user_action.sa_handler;
    g.user_action.sa_handler = handler;
    g.user_action.sa_flags = SA_RESTART;
    sigemptyset(&g.user_action.sa_mask);
    return prev;
  }
  {
    struct sigaction act, old;
    memset(&act, 0, sizeof(act));
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    if (stasis::agent::DeferredSigaction(sig, &act, &old)) {
      return (old.sa_flags & SA_SIGINFO) ? nullptr : old.sa_handler;
    }
  }
  auto f = stasis::agent::Resolve(&stasis::agent::g_real_signal, "signal");
  if (f == nullptr) {
    errno = ENOSYS;
    return SIG_ERR;
  }
  return f(sig, handler);
}

STASIS_EXPORT int sigprocmask(int how, const sigset_t* set, sigset_t* old) noexcept {
  sigset_t copy;
  auto f = stasis::agent::Resolve(&stasis::agent::g_real_sigprocmask, "sigprocmask");
  if (f == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return f(how, stasis::agent::Filter(how, set, &copy), old);
}

STASIS_EXPORT int pthread_sigmask(int how, const sigset_t* set, sigset_t* old) noexcept {
  sigset_t copy;
  return stasis::agent::RealPthreadSigmask(how, stasis::agent::Filter(how, set, &copy), old);
}

STASIS_EXPORT int sigsuspend(const sigset_t* mask) {
  sigset_t copy;
  auto f = stasis::agent::Resolve(&stasis::agent::g_real_sigsuspend, "sigsuspend");
  if (f == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return f(stasis::agent::Filter(SIG_SETMASK, mask, &copy));
}
