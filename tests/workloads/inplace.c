// Updates a fixed-size file in place, one step at a time: step i adds i to
// counter (i % 64) -- read, add, write back -- either with pread/pwrite
// ("pwrite") or through a MAP_SHARED writable mapping ("mmap").  The file's
// size never changes, so only its contents tell whether a restart saw the
// checkpoint-time file or the lost run's later one (which counted some steps
// already).  tests/e2e/test_file_fidelity.py checkpoints it, lets it run on,
// kills it and restarts.
//
// usage: inplace FILE STEPS PERIOD_MS pwrite|mmap
// prints "step N" after each step, then "sum S" (of all counters, read back
// with pread) and "done".
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 64
#define SLOT_SIZE 4096  // one counter per page: pages rewritten all over the file

int main(int argc, char** argv) {
  if (argc != 5 || (strcmp(argv[4], "pwrite") != 0 && strcmp(argv[4], "mmap") != 0)) {
    fprintf(stderr, "usage: %s FILE STEPS PERIOD_MS pwrite|mmap\n", argv[0]);
    return 2;
  }
  int steps = atoi(argv[2]), period_ms = atoi(argv[3]);
  int use_mmap = strcmp(argv[4], "mmap") == 0;
  int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ftruncate(fd, SLOTS * SLOT_SIZE) != 0) {
    perror(argv[1]);
    return 1;
  }
  unsigned char* map = NULL;
  if (use_mmap) {
    map = mmap(NULL, SLOTS * SLOT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      perror("mmap");
      return 1;
    }
    close(fd);  // the mapping alone keeps the file
    fd = -1;
  }
  for (int i = 1; i <= steps; ++i) {
    off_t off = (off_t)(i % SLOTS) * SLOT_SIZE;
    uint64_t v;
    if (use_mmap) {
      memcpy(&v, map + off, sizeof v);
      v += (uint64_t)i;
      memcpy(map + off, &v, sizeof v);
    } else {
      if (pread(fd, &v, sizeof v, off) != (ssize_t)sizeof v) return 1;
      v += (uint64_t)i;
      if (pwrite(fd, &v, sizeof v, off) != (ssize_t)sizeof v) return 1;
    }
    printf("step %d\n", i);
    fflush(stdout);
    struct timespec ts = {period_ms / 1000, (period_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  int rd = open(argv[1], O_RDONLY);
  if (rd < 0) {
    perror(argv[1]);
    return 1;
  }
  uint64_t sum = 0;
  for (int s = 0; s < SLOTS; ++s) {
    uint64_t v;
    if (pread(rd, &v, sizeof v, (off_t)s * SLOT_SIZE) != (ssize_t)sizeof v) return 1;
    sum += v;
  }
  printf("sum %llu\n", (unsigned long long)sum);
  printf("done\n");
  return 0;
}
