// count: the seed's count.c (prints 1..N, one number per second), made
// configurable for tests:
//   count [N=10] [DELAY_SECONDS=1] [PROGRESS_FILE]
// stdout is flushed after every line.  If PROGRESS_FILE is given, the number
// is also appended to it after printing (open/append/close each time, so the
// file is never held open across a checkpoint); tests use it to know how far
// the program got and to detect that a process ran.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void sleep_seconds(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void progress(const char* path, int i) {
  if (!path) return;
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%d\n", i);
  (void)!write(fd, buf, (size_t)n);
  close(fd);
}

int main(int argc, char** argv) {
  int the_start = 1;
  int the_end = argc > 1 ? atoi(argv[1]) : 10;
  double delay = argc > 2 ? atof(argv[2]) : 1.0;
  const char* progress_file = argc > 3 ? argv[3] : NULL;
  for (int i = the_start; i <= the_end; i++) {
    printf("%d\n", i);
    fflush(stdout);
    progress(progress_file, i);
    if (i < the_end) sleep_seconds(delay);
  }
  return 0;
}
