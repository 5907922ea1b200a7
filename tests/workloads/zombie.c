// zombie: a parent with two exited but unreaped children, for the e2e
// tests of zombies across a restart (tests/e2e/test_trees.py).
//   zombie GO_FILE
// Child A exits with status 7, child B is killed by SIGTERM.  Once both are
// zombies (waitid WNOWAIT: observed, not reaped) the parent prints
//   "zombies a=<pid> b=<pid>"
// then polls for GO_FILE to exist (every 20 ms), reaps them and prints
//   "reaped <pid> exited <code>" / "reaped <pid> signaled <sig>"
// and "no more children" once waitpid(-1) reports ECHILD.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(pid_t pid) {
  int st = 0;
  pid_t w;
  do w = waitpid(pid, &st, 0); while (w < 0 && errno == EINTR);
  if (w < 0) {
    printf("waitpid %d: errno %d\n", (int)pid, errno);
  } else if (WIFEXITED(st)) {
    printf("reaped %d exited %d\n", (int)w, WEXITSTATUS(st));
  } else if (WIFSIGNALED(st)) {
    printf("reaped %d signaled %d\n", (int)w, WTERMSIG(st));
  }
  fflush(stdout);
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  pid_t a = fork();
  if (a == 0) _exit(7);
  pid_t b = fork();
  if (b == 0) {
    for (;;) pause();
  }
  siginfo_t si;
  while (waitid(P_PID, (id_t)a, &si, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  kill(b, SIGTERM);
  while (waitid(P_PID, (id_t)b, &si, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  printf("zombies a=%d b=%d\n", (int)a, (int)b);
  fflush(stdout);
  struct timespec ts = {0, 20 * 1000 * 1000};
  while (access(argv[1], F_OK) != 0) nanosleep(&ts, NULL);
  report(a);
  report(b);
  int st;
  if (waitpid(-1, &st, 0) < 0 && errno == ECHILD) printf("no more children\n");
  return 0;
}
