// Writes records to a file in a scratch directory and to a deleted temp file
// (open, unlink, keep writing), one step at a time; at the end reads both
// back and prints their checksums.  tests/e2e/test_save_files.py checkpoints
// it mid-run, removes the scratch directory (as on another node) and
// restarts it with --save-files.
//
// usage: scratchfiles SCRATCH_DIR STEPS PERIOD_MS
// prints "step N" after each step, then "scratch SUM BYTES" and
// "deleted SUM BYTES" (FNV-1a of the whole file) and "done".
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t fnv(int fd, long* bytes) {
  uint64_t h = 1469598103934665603ULL;
  unsigned char buf[4096];
  ssize_t n;
  off_t at = 0;
  *bytes = 0;
  while ((n = pread(fd, buf, sizeof buf, at)) > 0) {
    for (ssize_t i = 0; i < n; ++i) h = (h ^ buf[i]) * 1099511628211ULL;
    at += n;
    *bytes += n;
  }
  return h;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s SCRATCH_DIR STEPS PERIOD_MS\n", argv[0]);
    return 2;
  }
  const char* dir = argv[1];
  int steps = atoi(argv[2]);
  int period_ms = atoi(argv[3]);
  mkdir(dir, 0700);
  char path[4096], tmp[4096];
  snprintf(path, sizeof path, "%s/records.dat", dir);
  snprintf(tmp, sizeof tmp, "%s/tmpXXXXXX", dir);
  int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  int del = mkstemp(tmp);
  if (out < 0 || del < 0) {
    perror("open");
    return 1;
  }
  unlink(tmp);
  // A hole at the start of the deleted file: exercises sparse copies.
  if (lseek(del, 1 << 20, SEEK_SET) < 0) return 1;
  for (int i = 1; i <= steps; ++i) {
    char rec[128];
    int n = snprintf(rec, sizeof rec, "record %d %d\n", i, i * i);
    if (write(out, rec, n) != n || write(del, rec, n) != n) {
      perror("write");
      return 1;
    }
    printf("step %d\n", i);
    fflush(stdout);
    struct timespec ts = {period_ms / 1000, (period_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  long a_bytes, b_bytes;
  int rd = open(path, O_RDONLY);
  if (rd < 0) {
    perror(path);
    return 1;
  }
  uint64_t a = fnv(rd, &a_bytes), b = fnv(del, &b_bytes);
  printf("scratch %016llx %ld\n", (unsigned long long)a, a_bytes);
  printf("deleted %016llx %ld\n", (unsigned long long)b, b_bytes);
  printf("done\n");
  return 0;
}
