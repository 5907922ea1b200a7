// spawn: children started the three other ways a program starts programs,
// for the e2e test of process trees (tests/e2e/test_ipc.py).
//   spawn [N=40] [DELAY=0.05]
// The parent starts three copies of itself in "child" mode -- with
// posix_spawn(3), with vfork(2)+execv(2), and with system(3) (a /bin/sh in
// between) -- each printing "<how> <i>" for i = 1..N, DELAY apart, then
// waits for them and prints "<how> status <code>" in a fixed order.
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 5 && strcmp(argv[1], "child") == 0) {
    int n = atoi(argv[3]);
    double delay = atof(argv[4]);
    for (int i = 1; i <= n; i++) {
      printf("%s %d\n", argv[2], i);
      sleep_seconds(delay);
    }
    return 7;
  }
  const char* n = argc > 1 ? argv[1] : "40";
  const char* delay = argc > 2 ? argv[2] : "0.05";
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return 1;
  self[len] = '\0';

  char* spawn_argv[] = {self, "child", "posix_spawn", (char*)n, (char*)delay, NULL};
  pid_t spawned;
  if (posix_spawn(&spawned, self, NULL, NULL, spawn_argv, environ) != 0) return 1;

  char* vfork_argv[] = {self, "child", "vfork", (char*)n, (char*)delay, NULL};
  pid_t vforked = vfork();
  if (vforked == 0) {
    execv(self, vfork_argv);
    _exit(127);
  }

  char cmd[8192];
  snprintf(cmd, sizeof cmd, "'%s' child system %s %s", self, n, delay);
  int sys = system(cmd);

  int st1 = 0, st2 = 0;
  waitpid(spawned, &st1, 0);
  waitpid(vforked, &st2, 0);
  printf("posix_spawn status %d\n", WEXITSTATUS(st1));
  printf("vfork status %d\n", WEXITSTATUS(st2));
  printf("system status %d\n", WIFEXITED(sys) ? WEXITSTATUS(sys) : -1);
  return 0;
}
