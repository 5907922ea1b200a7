// memwork: the benchmark workload.
//   memwork SIZE KIND HEARTBEAT_FILE
//     SIZE  bytes, with optional suffix K, M, G (powers of 1024), e.g. 256M, 4G
//     KIND  random | zero | mixed  (mixed: first half random, then a quarter
//           zeros, then a quarter a repeated line of text)
// Allocates SIZE bytes with mmap and writes every byte (so all pages are
// resident), prints "ready", then loops forever, about every millisecond:
//   - rewrites HEARTBEAT_FILE in place (pwrite at offset 0, fixed width) with
//     "<counter> <CLOCK_REALTIME ns>\n", the counter increasing by one,
//   - measures the gap since the previous iteration (CLOCK_MONOTONIC); when it
//     exceeds 50 ms the program was paused: it prints
//     "pause_ms=<gap> max_pause_ms=<largest so far> counter=<n>".
// Runs until killed.
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_ms(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t parse_size(const char* s) {
  char* end = NULL;
  double v = strtod(s, &end);
  switch (end && *end ? *end : 0) {
    case 'k': case 'K': v *= 1024.0; break;
    case 'm': case 'M': v *= 1024.0 * 1024; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
    default: break;
  }
  return (uint64_t)v;
}

static void fill_random(uint8_t* p, uint64_t n, uint64_t seed) {
  uint64_t x = seed | 1;
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;  // xorshift64
    memcpy(p + i, &x, 8);
  }
  for (; i < n; i++) p[i] = (uint8_t)(x >> (8 * (i % 8)));
}

static void fill_text(uint8_t* p, uint64_t n) {
  static const char line[] = "The quick brown fox jumps over the lazy dog; checkpoint me. 0123456789\n";
  const uint64_t len = sizeof line - 1;
  for (uint64_t i = 0; i < n; i += len) memcpy(p + i, line, n - i < len ? n - i : len);
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: memwork SIZE random|zero|mixed HEARTBEAT_FILE\n");
    return 2;
  }
  uint64_t size = parse_size(argv[1]);
  const char* kind = argv[2];
  if (size == 0 || (strcmp(kind, "random") && strcmp(kind, "zero") && strcmp(kind, "mixed"))) {
    fprintf(stderr, "memwork: bad SIZE or KIND\n");
    return 2;
  }
  int hb = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (hb < 0) {
    fprintf(stderr, "memwork: %s: %s\n", argv[3], strerror(errno));
    return 1;
  }
  uint8_t* mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    fprintf(stderr, "memwork: mmap %llu bytes: %s\n", (unsigned long long)size, strerror(errno));
    return 1;
  }
  if (!strcmp(kind, "random")) {
    fill_random(mem, size, 0x9e3779b97f4a7c15ull);
  } else if (!strcmp(kind, "zero")) {
    memset(mem, 0, size);  // touches every page: resident zero pages
  } else {
    uint64_t half = size / 2, quarter = size / 4;
    fill_random(mem, half, 0x9e3779b97f4a7c15ull);
    memset(mem + half, 0, quarter);
    fill_text(mem + half + quarter, size - half - quarter);
  }
  printf("ready size=%llu kind=%s\n", (unsigned long long)size, kind);
  fflush(stdout);

  uint64_t counter = 0;
  double last = now_ms(CLOCK_MONOTONIC), max_pause = 0;
  volatile uint64_t sink = 0;
  for (;;) {
    counter++;
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%020llu %020llu\n", (unsigned long long)counter,
                     (unsigned long long)realtime_ns());
    if (pwrite(hb, buf, (size_t)n, 0) != n) {
      fprintf(stderr, "memwork: heartbeat write: %s\n", strerror(errno));
    }
    // Touch a little memory so the program is doing "work".
    sink += mem[(counter * 4096) % size];
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    double t = now_ms(CLOCK_MONOTONIC);
    double gap = t - last;
    last = t;
    if (gap > 50.0) {
      if (gap > max_pause) max_pause = gap;
      printf("pause_ms=%.1f max_pause_ms=%.1f counter=%llu\n", gap, max_pause,
             (unsigned long long)counter);
      fflush(stdout);
    }
  }
}
