// lossy: a process holding a descriptor that a restart cannot bring back,
// for tests/e2e/test_partial.py.
//   lossy MODE [GOFILE]
//   inotify  an inotify instance (inotify_init1(2))
//   pidfd    a pidfd of itself (pidfd_open(2))
//   ptmx     a pty master (/dev/ptmx)
//   deleted  a file in $TMPDIR, unlinked while open
// With GOFILE, waits until that file exists before opening the descriptor.
// Prints "ready" once it is open, then "tick <i>" every 0.05 s for ever.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) return 2;
  const char* mode = argv[1];
  int i = 0;
  if (argc > 2) {
    while (access(argv[2], F_OK) != 0) {
      printf("tick %d\n", ++i);
      sleep_seconds(0.05);
    }
  }
  int fd = -1;
  if (strcmp(mode, "inotify") == 0) {
    fd = inotify_init1(IN_CLOEXEC);
  } else if (strcmp(mode, "pidfd") == 0) {
    fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  } else if (strcmp(mode, "ptmx") == 0) {
    fd = open("/dev/ptmx", O_RDWR | O_NOCTTY);
  } else if (strcmp(mode, "deleted") == 0) {
    char path[4096];
    snprintf(path, sizeof path, "%s/lossy.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    fd = mkstemp(path);
    if (fd >= 0 && (write(fd, "data\n", 5) != 5 || unlink(path) != 0)) return 1;
  } else {
    return 2;
  }
  if (fd < 0) {
    printf("%s: %s\n", mode, strerror(errno));
    return 3;
  }
  printf("ready\n");
  for (;;) {
    printf("tick %d\n", ++i);
    sleep_seconds(0.05);
  }
}
