// exec_env: a parent that starts a copy of itself in a new environment of
// its own, for the e2e tests of exec interposition (tests/e2e/test_partial.py).
//   exec_env MODE [N=40] [DELAY=0.05] [PROGRAM]
// MODE says how the child is started, each without the parent's environment:
//   envi    fork + execlp("env", "-i", self, ...)   (env(1) clears environ)
//   empty   fork + execve(self, argv, {NULL})
//   execle  fork + execle(self, ..., NULL, {"ONLY=1", NULL})
//   spawn   posix_spawn(self, ..., {NULL})
//   fexecve fork + fexecve(open(self), argv, {NULL})
//   program fork + execve(PROGRAM, {PROGRAM, N, DELAY}, environ)
// The child ("exec_env child N DELAY") prints "child <i>" for i = 1..N,
// DELAY apart, and exits 7; the parent then prints "parent: child status 7".
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
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

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 4 && strcmp(argv[1], "child") == 0) {
    int n = atoi(argv[2]);
    double delay = atof(argv[3]);
    for (int i = 1; i <= n; i++) {
      printf("child %d\n", i);
      sleep_seconds(delay);
    }
    return 7;
  }
  if (argc < 2) return 2;
  const char* mode = argv[1];
  char* n = argc > 2 ? argv[2] : "40";
  char* delay = argc > 3 ? argv[3] : "0.05";
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return 1;
  self[len] = '\0';
  char* child_argv[] = {self, "child", n, delay, NULL};
  char* empty_env[] = {NULL};
  char* only_env[] = {"ONLY=1", NULL};
  pid_t pid;
  if (strcmp(mode, "spawn") == 0) {
    if (posix_spawn(&pid, self, NULL, NULL, child_argv, empty_env) != 0) return 1;
  } else {
    pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      if (strcmp(mode, "envi") == 0) {
        execlp("env", "env", "-i", self, "child", n, delay, (char*)NULL);
      } else if (strcmp(mode, "empty") == 0) {
        execve(self, child_argv, empty_env);
      } else if (strcmp(mode, "fexecve") == 0) {
        int fd = open(self, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) fexecve(fd, child_argv, empty_env);
      } else if (strcmp(mode, "execle") == 0) {
        execle(self, self, "child", n, delay, (char*)NULL, only_env);
      } else if (strcmp(mode, "program") == 0 && argc > 4) {
        extern char** environ;
        char* prog_argv[] = {argv[4], n, delay, NULL};
        execve(argv[4], prog_argv, environ);
      }
      perror("exec");
      _exit(127);
    }
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return 1;
  printf("parent: child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  return 0;
}
