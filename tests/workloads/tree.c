// tree: a parent and two children that print their identity, for the
// process-tree e2e tests (tests/e2e/test_trees.py).
//   tree [N=40] [DELAY_SECONDS=0.03] [MODE=session]
// MODE session: child1 stays in the parent's session and group; child2
// leads a new session (setsid).  MODE group: child1 leads a new process
// group and child2 joins it (setpgid in parent and child, as a shell does
// for a pipeline).  Each child prints N lines
//   "child<k> i=<i> pid=<pid> ppid=<ppid> pgid=<pgid> sid=<sid>"
// (one write(2) per line, DELAY between lines) and exits with 10+k; the
// parent prints its identity, waits for both with waitpid and prints
//   "parent: child<k> pid=<pid> status=<exit code>"
// then "parent: no more children" once waitpid(-1) reports ECHILD.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static void line(const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  buf[n++] = '\n';
  (void)!write(1, buf, (size_t)n);
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 40;
  double delay = argc > 2 ? atof(argv[2]) : 0.03;
  int groups = argc > 3 && strcmp(argv[3], "group") == 0;
  line("parent pid=%d ppid=%d pgid=%d sid=%d", getpid(), getppid(), getpgid(0), getsid(0));
  pid_t kids[2];
  for (int k = 1; k <= 2; k++) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 1;
    }
    if (pid == 0) {
      if (!groups && k == 2) setsid();
      if (groups) setpgid(0, k == 1 ? 0 : kids[0]);
      for (int i = 1; i <= n; i++) {
        line("child%d i=%d pid=%d ppid=%d pgid=%d sid=%d", k, i, getpid(), getppid(), getpgid(0),
             getsid(0));
        if (i < n) sleep_seconds(delay);
      }
      _exit(10 + k);
    }
    kids[k - 1] = pid;
    if (groups) setpgid(pid, k == 1 ? pid : kids[0]);
  }
  for (int k = 1; k <= 2; k++) {
    int st = 0;
    pid_t w;
    do w = waitpid(kids[k - 1], &st, 0); while (w < 0 && errno == EINTR);
    line("parent: child%d pid=%d status=%d", k, (int)w, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  }
  int st;
  if (waitpid(-1, &st, 0) < 0 && errno == ECHILD) line("parent: no more children");
  return 0;
}
