// pipes: a reader and a writer joined by a pipe, for the e2e tests of pipes
// across a restart (tests/e2e/test_trees.py).
//   pipes [N=40] [WRITE_DELAY=0.005] [READ_DELAY=0.05] [fifo]
// With "fifo" the two are joined by a FIFO "fifo" in the cwd (mkfifo(3);
// each side opens it by path) instead of pipe(2).
// The child writes "line <i>\n" for i = 1..N into the pipe (one write per
// line, WRITE_DELAY apart) and exits 0; the parent reads the pipe one byte
// at a time, printing "got line <i>" per line (READ_DELAY apart), so bytes
// wait in the pipe; at end-of-file it prints "eof" and then
// "writer status <code>" from waitpid.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 40;
  double wdelay = argc > 2 ? atof(argv[2]) : 0.005;
  double rdelay = argc > 3 ? atof(argv[3]) : 0.05;
  int fifo = argc > 4 && strcmp(argv[4], "fifo") == 0;
  int p[2];
  if (fifo) {
    unlink("fifo");
    if (mkfifo("fifo", 0600) != 0) return 1;
  } else if (pipe(p) != 0) {
    return 1;
  }
  pid_t child = fork();
  if (child == 0) {
    if (fifo) {
      p[1] = open("fifo", O_WRONLY);
      if (p[1] < 0) _exit(4);
    } else {
      close(p[0]);
    }
    for (int i = 1; i <= n; i++) {
      char buf[32];
      int len = snprintf(buf, sizeof buf, "line %d\n", i);
      if (write(p[1], buf, (size_t)len) != len) _exit(3);
      sleep_seconds(wdelay);
    }
    _exit(0);
  }
  if (fifo) {
    p[0] = open("fifo", O_RDONLY);
    if (p[0] < 0) return 1;
  } else {
    close(p[1]);
  }
  char line[64];
  size_t used = 0;
  for (;;) {
    char c;
    ssize_t r = read(p[0], &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (c != '\n' && used < sizeof line - 1) {
      line[used++] = c;
      continue;
    }
    line[used] = '\0';
    used = 0;
    printf("got %s\n", line);
    fflush(stdout);
    sleep_seconds(rdelay);
  }
  printf("eof\n");
  if (fifo) unlink("fifo");
  int st = 0;
  waitpid(child, &st, 0);
  printf("writer status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  return 0;
}
