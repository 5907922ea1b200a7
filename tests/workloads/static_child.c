// static_child: a statically linked program (tests/CMakeLists.txt links it
// with -static), which ignores LD_PRELOAD and so never has the agent.
//   static_child [N=40] [DELAY=0.05]: prints "static <i>" for i = 1..N.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int n = argc > 1 ? atoi(argv[1]) : 40;
  double delay = argc > 2 ? atof(argv[2]) : 0.05;
  for (int i = 1; i <= n; i++) {
    printf("static %d\n", i);
    struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  return 0;
}
