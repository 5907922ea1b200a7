/* Signal state across checkpoint/restart: thread-directed and
 * process-directed pending signals (with their siginfo), dispositions and an
 * interval timer.  usage: signals GOFILE
 * Prints "ready" once every signal is pending, waits until GOFILE exists,
 * then reports what it finds; the output must equal an uninterrupted run. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char* go_file;
static pthread_barrier_t barrier;
static pid_t worker_tid;

static void on_term(int sig) { (void)sig; }

/* The vDSO serves clock_gettime/gettimeofday/time: after a restart these
 * calls go through the new kernel's vDSO (moved into place or proxied). */
static int clocks_ok = 1;
static void check_clocks(void) {
  static struct timespec last;
  struct timespec mono, real;
  struct timeval tv;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  gettimeofday(&tv, NULL);
  time_t t = time(NULL);
  if (mono.tv_sec < last.tv_sec || (mono.tv_sec == last.tv_sec && mono.tv_nsec < last.tv_nsec)) clocks_ok = 0;
  if (real.tv_sec - tv.tv_sec > 2 || tv.tv_sec - real.tv_sec > 2 || t - real.tv_sec > 2 || real.tv_sec - t > 2) clocks_ok = 0;
  last = mono;
}

static void wait_for_go(void) {
  struct stat st;
  struct timespec ts = {0, 20 * 1000 * 1000};
  while (stat(go_file, &st) != 0) {
    check_clocks();
    nanosleep(&ts, NULL);
  }
  check_clocks();
}

static void* worker(void* arg) {
  (void)arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  worker_tid = (pid_t)syscall(SYS_gettid);
  pthread_barrier_wait(&barrier); /* mask in place */
  pthread_barrier_wait(&barrier); /* go */
  siginfo_t si;
  int sig = sigwaitinfo(&set, &si);
  printf("worker: signal %d code %d from own process %d\n", sig, si.si_code, si.si_pid == getpid());
  fflush(stdout);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 2) { fprintf(stderr, "usage: signals GOFILE\n"); return 2; }
  go_file = argv[1];
  setvbuf(stdout, NULL, _IOLBF, 0);

  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR2);
  sigaddset(&blocked, SIGRTMIN + 1);
  pthread_sigmask(SIG_BLOCK, &blocked, NULL); /* inherited by the worker */

  signal(SIGHUP, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sa.sa_flags = SA_RESTART;
  sigaddset(&sa.sa_mask, SIGINT);
  sigaction(SIGTERM, &sa, NULL);

  struct itimerval it = {{0, 0}, {3600, 0}};
  setitimer(ITIMER_REAL, &it, NULL);

  pthread_t t;
  pthread_barrier_init(&barrier, NULL, 2);
  pthread_create(&t, NULL, worker, NULL);
  pthread_barrier_wait(&barrier);

  syscall(SYS_tgkill, getpid(), worker_tid, SIGUSR1); /* pending on the worker only */
  kill(getpid(), SIGUSR2);                            /* pending on the process */
  union sigval v;
  v.sival_int = 42;
  sigqueue(getpid(), SIGRTMIN + 1, v);
  v.sival_int = 43;
  sigqueue(getpid(), SIGRTMIN + 1, v);

  printf("ready\n");
  wait_for_go();
  pthread_barrier_wait(&barrier);
  pthread_join(t, NULL);

  siginfo_t si;
  int sig = sigwaitinfo(&blocked, &si);
  printf("main: signal %d code %d\n", sig, si.si_code);
  for (int i = 0; i < 2; ++i) {
    sig = sigwaitinfo(&blocked, &si);
    printf("main: signal SIGRTMIN+%d value %d\n", sig - SIGRTMIN, si.si_value.sival_int);
  }
  sigset_t pending;
  sigpending(&pending);
  printf("still pending: %s\n", sigismember(&pending, SIGUSR2) || sigismember(&pending, SIGRTMIN + 1) ? "yes" : "no");

  struct sigaction cur;
  sigaction(SIGHUP, NULL, &cur);
  printf("SIGHUP ignored: %s\n", cur.sa_handler == SIG_IGN ? "yes" : "no");
  sigaction(SIGTERM, NULL, &cur);
  printf("SIGTERM handler kept: %s, SA_RESTART: %s, mask has SIGINT: %s\n",
         cur.sa_handler == on_term ? "yes" : "no", (cur.sa_flags & SA_RESTART) ? "yes" : "no",
         sigismember(&cur.sa_mask, SIGINT) ? "yes" : "no");
  getitimer(ITIMER_REAL, &it);
  printf("itimer running: %s\n", it.it_value.tv_sec > 3000 && it.it_value.tv_sec <= 3600 ? "yes" : "no");
  printf("vDSO clocks consistent: %s\n", clocks_ok ? "yes" : "no");
  return 0;
}
