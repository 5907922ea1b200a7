// libstasis_agent.so entry points: the constructor (run in every process of
// a job via LD_PRELOAD, again after each execve), the agent thread that talks
// to the supervisor (agent_protocol.h), and fork handling.
//
// Rule: the host program must never die or hang because of Stasis.  Every
// failure here is logged (RawLog) and leaves the agent inert.
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "agent/agent_internal.h"
#include "common/raw_log.h"

namespace stasis::agent {

// One per process, in this library's .bss; its address goes to the
// supervisor in kHello.  `used` keeps it even though only pointers reach it.
__attribute__((used)) ControlBlock g_cb;
AgentGlobals g;

namespace {

constexpr size_t kAgentStackSize = 64 * 1024;  // the handler's xsave frame fits easily

void CopyStr(char* dst, size_t size, const char* src) {
  size_t i = 0;
  for (; src != nullptr && src[i] != '\0' && i + 1 < size; ++i) dst[i] = src[i];
  dst[i] = '\0';
}

// Held from socket(2) until the new descriptor is in g.sock (and around any
// other descriptor the agent opens for a moment), and by fork(2)
// (pthread_atfork prepare) so that a child never inherits an agent
// descriptor that AtForkChild does not know about: it would stay open in
// the child and show up at its checkpoint as a descriptor of the program.
// Futex lock, raw system calls only.
volatile uint32_t g_connect_lock = 0;

void ConnectLock() {
  while (__atomic_exchange_n(&g_connect_lock, 1u, __ATOMIC_ACQUIRE) != 0) {
    syscall(SYS_futex, &g_connect_lock, FUTEX_WAIT_PRIVATE, 1u, nullptr, nullptr, 0);
  }
}
void ConnectUnlock() {
  __atomic_store_n(&g_connect_lock, 0u, __ATOMIC_RELEASE);
  syscall(SYS_futex, &g_connect_lock, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

// One attempt, under the lock: connect and move the socket to >= kHighFd,
// so it rarely collides with descriptor numbers the program expects to be
// free; stores it in g.sock.  Returns 0, or an errno.
int ConnectOnce(const struct sockaddr_un& addr) {
  ConnectLock();
  int fd = static_cast<int>(syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (fd < 0) {
    int err = errno;
    ConnectUnlock();
    return err;
  }
  long r;
  do {
    r = syscall(SYS_connect, fd, &addr, sizeof(addr));
  } while (r != 0 && errno == EINTR);
  int err = r == 0 ? 0 : errno;
  if (r == 0) {
    int high = static_cast<int>(syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, kHighFd));
    if (high >= 0) {
      syscall(SYS_close, fd);
      fd = high;
    }
    __atomic_store_n(&g.sock, fd, __ATOMIC_SEQ_CST);
  } else {
    syscall(SYS_close, fd);
  }
  ConnectUnlock();
  return err;
}

// Connects g.sock to the supervisor.  Retries for about a second (the
// supervisor may still be starting).  False (g.sock -1) on failure.
bool Connect(const char* path) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  CopyStr(addr.sun_path, sizeof(addr.sun_path), path);
  for (int attempt = 0; attempt < 20; ++attempt) {
    int err = ConnectOnce(addr);
    if (err == 0) return true;
    if (err != ECONNREFUSED && err != ENOENT && err != EAGAIN) {
      LogVerbose("connect failed, errno", err);
      return false;
    }
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  LogVerbose("supervisor not reachable; agent inert, errno", ECONNREFUSED);
  return false;
}

void SendHello(bool restarted) {
  Message m;
  InitMessage(&m, MsgType::kHello);
  m.restarted = restarted ? 1 : 0;
  m.control_block = reinterpret_cast<uint64_t>(&g_cb);
  ConnectLock();  // a fork meanwhile must not inherit this descriptor
  int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/comm", O_RDONLY | O_CLOEXEC));
  if (fd >= 0) {
    long n = syscall(SYS_read, fd, m.text, sizeof(m.text) - 1);
    syscall(SYS_close, fd);
    if (n > 0 && m.text[n - 1] == '\n') --n;
    m.text[n > 0 ? n : 0] = '\0';
  }
  ConnectUnlock();
  if (!SendMessage(m)) LogVerbose("hello not sent, errno", errno);
}

// After a restart: the restorer wrote g_cb.restart and returned this thread
// from its saved frame.  The old connection's descriptor was not restored
// (its number may now belong to the program), so it is left alone.
bool ReconnectAfterRestart() {
  // The old number first: a deferred signal's handler must not send on it.
  __atomic_store_n(&g.sock, -1, __ATOMIC_SEQ_CST);
  ResetQuiesceState();
  ForgetDeferredTimers();
  CopyStr(g.socket_path, sizeof(g.socket_path), g_cb.restart.supervisor_socket);
  // The restorer region is unmapped by the last thread to pass
  // stasis_restart_trampoline (restart_trampoline.cc), not here: this thread
  // cannot know when the others have left it.
  __atomic_store_n(&g_cb.restart.restarted, 0u, __ATOMIC_SEQ_CST);
  Connect(g.socket_path);
  g_cb.socket_fd = g.sock;
  if (g.sock < 0) return false;
  SendHello(true);
  FlushCheckpointRequest();
  return true;
}

void Serve() {
  for (;;) {
    Message m;
    long k = syscall(SYS_recvfrom, g.sock, &m, sizeof(m), 0, nullptr, nullptr);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      LogVerbose("supervisor connection closed, errno", k < 0 ? errno : 0);
      return;
    }
    if (k != static_cast<long>(sizeof(m)) || m.version != kProtocolVersion) {
      RawLog("agent: malformed message (%ld bytes) ignored", k);
      continue;
    }
    if (m.type != MsgType::kQuiesce) continue;  // a late kResume after a failed quiesce
    char reason[sizeof(m.text)];
    int r = QuiesceProcess(m.generation, reason, sizeof(reason));
    if (r < 0) {
      if (g.verbose) RawLog("agent: quiesce failed: %s", reason);
      Message f;
      InitMessage(&f, MsgType::kFailed);
      f.generation = m.generation;
      CopyStr(f.text, sizeof(f.text), reason);
      SendMessage(f);
    } else if (r == 1) {
      if (!ReconnectAfterRestart()) return;
    }
  }
}

void* AgentMain(void*) {
  g.agent_tid = RawGettid();
  prctl(PR_SET_NAME, "stasis-agent", 0, 0, 0);
  // Only the checkpoint signal reaches this thread, so the program's handlers
  // never run on it.  libc's pthread_sigmask keeps glibc's internal SIGCANCEL
  // and SIGSETXID unblocked (setuid(2) in the program needs every thread).
  sigset_t set;
  sigfillset(&set);
  sigdelset(&set, g.sigckpt);
  RealPthreadSigmask(SIG_SETMASK, &set, nullptr);
  Connect(g.socket_path);
  g_cb.socket_fd = g.sock;
  if (g.sock >= 0) {
    SendHello(false);
    FlushCheckpointRequest();
    Serve();
  }
  ConnectLock();  // a fork now must not see a closed number in g.sock
  if (g.sock >= 0) syscall(SYS_close, g.sock);
  __atomic_store_n(&g.sock, -1, __ATOMIC_SEQ_CST);
  ConnectUnlock();
  g_cb.socket_fd = -1;
  g.agent_tid = 0;
  return nullptr;
}

void StartAgentThread() {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, kAgentStackSize);
  // The thread starts with every signal blocked and opens only its own.
  sigset_t all, old;
  sigfillset(&all);
  RealPthreadSigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  int err = pthread_create(&t, &attr, AgentMain, nullptr);
  if (err != 0) {  // e.g. large static TLS does not fit in a small stack
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    err = pthread_create(&t, &attr, AgentMain, nullptr);
  }
  RealPthreadSigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (err != 0) RawLog("agent: cannot start the agent thread (error %d); agent inert", err);
}

void AtForkPrepare() { ConnectLock(); }
void AtForkParent() { ConnectUnlock(); }

// In the child of fork(2): only the forking thread exists; the inherited
// connection is the parent's (complete: fork held the connect lock), and
// must be closed before the child's agent thread opens its own.  A new
// agent thread says hello with our pid.
void AtForkChild() {
  __atomic_store_n(&g_connect_lock, 0u, __ATOMIC_RELEASE);  // no waiter in the child
  if (g.sigckpt == 0) return;
  if (g.sock >= 0) syscall(SYS_close, g.sock);
  g.sock = -1;
  g.agent_tid = 0;
  ResetQuiesceState();
  ForgetDeferredTimers();  // timers are not inherited
  g_cb.generation = 0;
  g_cb.socket_fd = -1;
  g_cb.restart.restarted = 0;
  StartAgentThread();
}

int ParseSignal(const char* s) {
  if (s == nullptr || *s == '\0') return kDefaultCheckpointSignal;
  char* end = nullptr;
  long v = strtol(s, &end, 10);
  // 32 and 33 are glibc's SIGCANCEL/SIGSETXID; 9 and 19 cannot be caught.
  if (*end != '\0' || v < 1 || v > 64 || v == SIGKILL || v == SIGSTOP || v == 32 || v == 33) {
    RawLog("agent: %s=%s is not a usable signal; using %d", kCheckpointSignalEnv, s,
           kDefaultCheckpointSignal);
    return kDefaultCheckpointSignal;
  }
  return static_cast<int>(v);
}

__attribute__((constructor)) void AgentInit() {
  const char* path = getenv(kSupervisorSocketEnv);
  if (path == nullptr || *path == '\0') return;
  const char* verbose = getenv("STASIS_VERBOSE");
  g.verbose = verbose != nullptr && strcmp(verbose, "1") == 0;
  if (strlen(path) >= sizeof(g.socket_path)) {
    RawLog("agent: %s too long for a Unix socket path; agent inert", kSupervisorSocketEnv);
    return;
  }
  CopyStr(g.socket_path, sizeof(g.socket_path), path);
  InitExecInjection();
  if (const char* t = getenv("STASIS_QUIESCE_TIMEOUT")) {
    double v = strtod(t, nullptr);
    if (v > 0) g.quiesce_timeout_s = v;
  }
  g_cb.magic = kControlBlockMagic;
  g_cb.version = kControlBlockVersion;
  g_cb.socket_fd = -1;
  int sig = ParseSignal(getenv(kCheckpointSignalEnv));

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = CheckpointHandler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);  // parked threads run no program handler
  struct sigaction old;
  if (RealSigaction(sig, &sa, &old) != 0) {
    RawLog("agent: sigaction(%d): errno %d; agent inert", sig, errno);
    return;
  }
  g.user_action = old;
  g.sigckpt = sig;  // from here on the interposed functions protect it
  // Make sure the program cannot block it already (inherited across execve).
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, sig);
  RealPthreadSigmask(SIG_UNBLOCK, &unblock, nullptr);
  InitDeferredSignals();
  pthread_atfork(AtForkPrepare, AtForkParent, AtForkChild);
  StartAgentThread();
}

}  // namespace

bool SendMessage(const Message& m) {
  if (g.sock < 0) return false;
  long r;
  do {
    r = syscall(SYS_sendto, g.sock, &m, sizeof(m), MSG_NOSIGNAL, nullptr, 0);
  } while (r < 0 && errno == EINTR);
  return r == static_cast<long>(sizeof(m));
}

void InitMessage(Message* m, MsgType type) {
  memset(m, 0, sizeof(*m));
  m->type = type;
  m->version = kProtocolVersion;
  m->pid = static_cast<int32_t>(syscall(SYS_getpid));
  m->ppid = static_cast<int32_t>(syscall(SYS_getppid));
}

void LogVerbose(const char* what, long value) {
  if (g.verbose) RawLog("agent: %s %ld", what, value);
}

}  // namespace stasis::agent
