// unreachable: a process with a thread the agent's checkpoint signal cannot
// reach, for tests/e2e/test_partial.py.
//   unreachable MODE [SECONDS=300]
//   uring   an io_uring instance (io_uring_setup(2), raw system call: no
//           liburing), kept open
//   vfork   vfork(2); the child sleeps SECONDS before _exit, the parent
//           is suspended in the kernel until then
//   blocked a second thread blocks every signal with the raw
//           rt_sigprocmask system call (the agent's sigprocmask wrapper
//           never sees it)
// Prints "ready" once in that state, then "tick <i>" every 0.1 s from the
// main thread (the vfork parent: after the child exits) for SECONDS.
#include <errno.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static volatile int g_blocked = 0;

static void* blocked_thread(void* arg) {
  (void)arg;
  unsigned long all = ~0ul;
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, 8);
  __atomic_store_n(&g_blocked, 1, __ATOMIC_SEQ_CST);
  for (;;) sleep_seconds(1);
  return NULL;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) return 2;
  double seconds = argc > 2 ? atof(argv[2]) : 300;
  if (strcmp(argv[1], "uring") == 0) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    long fd = syscall(__NR_io_uring_setup, 8, &p);
    if (fd < 0) {
      printf("io_uring_setup: %s\n", strerror(errno));
      return 3;
    }
    printf("ready\n");
  } else if (strcmp(argv[1], "vfork") == 0) {
    printf("ready\n");
    pid_t pid = vfork();
    if (pid == 0) {
      sleep_seconds(seconds);
      _exit(0);
    }
  } else if (strcmp(argv[1], "blocked") == 0) {
    pthread_t t;
    if (pthread_create(&t, NULL, blocked_thread, NULL) != 0) return 1;
    while (!__atomic_load_n(&g_blocked, __ATOMIC_SEQ_CST)) sleep_seconds(0.001);
    printf("ready\n");
  } else {
    return 2;
  }
  for (int i = 1; i <= (int)(seconds * 10); i++) {
    printf("tick %d\n", i);
    sleep_seconds(0.1);
  }
  return 0;
}
