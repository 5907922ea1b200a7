/* Workload for tests/unit/agent_test.cc: 4 worker threads increment their
 * own counter while the main thread ticks.  Prints the counters' address and
 * each worker's stack range so the test can check the agent's records from
 * outside, then "done ok" if every counter matches what its thread counted.
 *
 *   agent_selftest [mode] [ticks]
 *     mode: "count" (default); "blockall": every thread blocks all signals
 *           with pthread_sigmask; "rawblock": worker 0 blocks all signals
 *           with the raw rt_sigprocmask system call (cannot be quiesced);
 *           "fork": additionally forks a child that runs the same workload;
 *           "pending": before the workers start, queues SIGUSR1 and twice
 *           SIGRTMIN+2 to the main thread and SIGUSR2 to the process (all
 *           blocked), and at the end checks they are all still pending.
 *     ticks: main-thread ticks of 100 ms (default 30).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NWORKERS 4

static volatile uint64_t counters[NWORKERS];
static volatile int stop;
static const char* mode = "count";
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void block_all(void) {
  if (strcmp(mode, "blockall") == 0) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
  }
}

static void* worker(void* arg) {
  int i = (int)(intptr_t)arg;
  block_all();
  if (i == 0 && strcmp(mode, "rawblock") == 0) {
    uint64_t all = ~0ull;
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, 8);
  }
  pthread_attr_t attr;
  void* lo = NULL;
  size_t size = 0;
  pthread_getattr_np(pthread_self(), &attr);
  pthread_attr_getstack(&attr, &lo, &size);
  pthread_attr_destroy(&attr);
  pthread_mutex_lock(&out_lock);
  printf("stack %ld %lx %lx\n", (long)syscall(SYS_gettid), (unsigned long)lo,
         (unsigned long)lo + size);
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);
  uint64_t mine = 0;
  while (!stop) {
    counters[i]++;
    mine++;
  }
  return (void*)(uintptr_t)mine;
}

static void sleep_100ms(void) {
  struct timespec ts = {0, 100 * 1000 * 1000};
  while (nanosleep(&ts, &ts) != 0) {
  }  /* EINTR (the checkpoint signal): sleep the rest */
}

/* Queues signals that stay pending (blocked in every thread). */
static void queue_pending(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  sigaddset(&set, SIGRTMIN + 2);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  raise(SIGUSR1);          /* thread-directed (tgkill) */
  union sigval v = {.sival_int = 42};
  pthread_sigqueue(pthread_self(), SIGRTMIN + 2, v);  /* thread-directed, twice */
  pthread_sigqueue(pthread_self(), SIGRTMIN + 2, v);
  kill(getpid(), SIGUSR2); /* process-directed, SI_USER */
}

/* 1 if exactly the signals queue_pending() queued are pending, with their siginfo. */
static int check_pending(void) {
  struct timespec zero = {0, 0};
  siginfo_t si;
  sigset_t one;
  int rt = 0, usr1 = 0, usr2 = 0;
  for (int k = 0; k < 4; ++k) {
    sigemptyset(&one);
    sigaddset(&one, SIGUSR1);
    sigaddset(&one, SIGUSR2);
    sigaddset(&one, SIGRTMIN + 2);
    int sig = sigtimedwait(&one, &si, &zero);
    if (sig == SIGUSR1 && si.si_code <= 0 && si.si_pid == getpid()) usr1++;
    else if (sig == SIGUSR2 && si.si_code == SI_USER && si.si_pid == getpid()) usr2++;
    else if (sig == SIGRTMIN + 2 && si.si_code == SI_QUEUE && si.si_value.sival_int == 42) rt++;
    else printf("unexpected signal %d code %d\n", sig, sig > 0 ? si.si_code : 0);
  }
  return usr1 == 1 && usr2 == 1 && rt == 2 && sigtimedwait(&one, &si, &zero) < 0;
}

static int run(int ticks) {
  pthread_t t[NWORKERS];
  block_all();
  int pending = strcmp(mode, "pending") == 0;
  if (pending) queue_pending();
  pthread_mutex_lock(&out_lock);
  printf("addr %lx pid %d\n", (unsigned long)counters, getpid());
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);
  for (int i = 0; i < NWORKERS; ++i) pthread_create(&t[i], NULL, worker, (void*)(intptr_t)i);
  for (int k = 0; k < ticks; ++k) sleep_100ms();
  stop = 1;
  int ok = 1;
  for (int i = 0; i < NWORKERS; ++i) {
    void* r;
    pthread_join(t[i], &r);
    if ((uint64_t)(uintptr_t)r != counters[i] || counters[i] == 0) ok = 0;
  }
  if (pending) {
    int p = check_pending();
    printf(p ? "pending ok\n" : "pending LOST\n");
    if (!p) ok = 0;
  }
  pthread_mutex_lock(&out_lock);
  printf(ok ? "done ok\n" : "done MISMATCH\n");
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);
  return ok ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc > 1) mode = argv[1];
  int ticks = argc > 2 ? atoi(argv[2]) : 30;
  if (strcmp(mode, "fork") == 0) {
    pid_t child = fork();
    if (child == 0) _exit(run(ticks));
    int rc = run(ticks);
    int status = 0;
    waitpid(child, &status, 0);
    return rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  }
  return run(ticks);
}
