// jobwork: the multi-process / multi-threaded benchmark workload.
//   jobwork NPROCS NTHREADS SIZE KIND DIR
//     NPROCS    processes in the job: this one (index 0) forks NPROCS-1 workers
//     NTHREADS  threads per process, the main thread included (1..256)
//     SIZE      bytes of memory per process, suffix K, M, G (powers of 1024)
//     KIND      random | zero | mixed, as memwork.c (mixed: half random, a
//               quarter zeros, a quarter a repeated line of text); the random
//               part is seeded by the process index, so processes differ
//     DIR       existing directory for the heartbeat and trigger files
// Every process fills its SIZE bytes (all pages resident), remembers their
// checksum, prints "ready <index>", and runs NTHREADS threads that compute
// busily: each keeps a 16 KiB array on its stack, a __thread counter, and a
// 256 KiB heap permutation of 0..65535 whose entries it keeps swapping.
// About every millisecond of its own running time each thread rewrites
// DIR/hb.<process>.<thread> in place with "<iterations> <CLOCK_REALTIME ns>".
// When DIR/verify exists (checked every 10 ms by each main thread), every
// thread checks its state: stack array intact, heap still a permutation,
// __thread counter equal to its iteration count; each process then checks
// its memory against the checksum taken after filling, prints
// "verified <index> ok" (or "FAILED <index>: ..."), and exits 0 if all is
// well; process 0 first waits for its workers and fails if any failed.
// A checkpoint/restart anywhere in between must not change the outcome.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
#define STACK_WORDS 2048   // 16 KiB of stack state per thread
#define PERM_SIZE 65536    // 256 KiB heap permutation per thread

static int proc_index;
static const char* dir;
static atomic_int verify_now;
static __thread uint64_t tls_iterations;

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

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t* x) {
  *x ^= *x << 13; *x ^= *x >> 7; *x ^= *x << 17;
  return *x;
}

static void fill_random(uint8_t* p, uint64_t n, uint64_t seed) {
  uint64_t x = seed | 1, i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = xorshift(&x);
    memcpy(p + i, &v, 8);
  }
  for (; i < n; i++) p[i] = (uint8_t)(x >> (8 * (i % 8)));
}

static void fill_text(uint8_t* p, uint64_t n) {
  static const char line[] = "The quick brown fox jumps over the lazy dog; checkpoint me. 0123456789\n";
  const uint64_t len = sizeof line - 1;
  for (uint64_t i = 0; i < n; i += len) memcpy(p + i, line, n - i < len ? n - i : len);
}

static uint64_t checksum(const uint8_t* p, uint64_t n) {
  uint64_t h = 0x84222325cbf29ce4ull, i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    h = (h ^ v) * 0x100000001b3ull + (h >> 29);
  }
  for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

struct thread_arg {
  int index;
  char error[160];  // empty when the thread's state verified
};

static uint64_t stack_word(int t, int i) {
  return ((uint64_t)proc_index << 48) ^ ((uint64_t)t << 32) ^ (uint64_t)i * 0x9e3779b97f4a7c15ull;
}

static void* compute(void* p) {
  struct thread_arg* arg = p;
  const int t = arg->index;
  uint64_t stack_state[STACK_WORDS];
  for (int i = 0; i < STACK_WORDS; i++) stack_state[i] = stack_word(t, i);
  // The array escapes, so the compiler must keep it in memory and reread it.
  __asm__ volatile("" : : "r"(stack_state) : "memory");
  uint32_t* perm = malloc(PERM_SIZE * sizeof *perm);
  if (!perm) {
    snprintf(arg->error, sizeof arg->error, "thread %d: malloc failed", t);
    return NULL;
  }
  for (uint32_t i = 0; i < PERM_SIZE; i++) perm[i] = i;
  char path[4096];
  snprintf(path, sizeof path, "%s/hb.%d.%d", dir, proc_index, t);
  int hb = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (hb < 0) {
    snprintf(arg->error, sizeof arg->error, "thread %d: %s: %s", t, path, strerror(errno));
    free(perm);
    return NULL;
  }
  char trigger[4096];
  snprintf(trigger, sizeof trigger, "%s/verify", dir);

  uint64_t rng = 0x2545f4914f6cdd1dull ^ ((uint64_t)proc_index << 40) ^ (uint64_t)t;
  uint64_t iterations = 0, last_beat = 0, last_poll = 0;
  for (;;) {
    // A burst of work on the heap: swap two entries of the permutation.
    for (int k = 0; k < 1024; k++) {
      uint64_t r = xorshift(&rng);
      uint32_t a = (uint32_t)(r % PERM_SIZE), b = (uint32_t)((r >> 32) % PERM_SIZE);
      uint32_t tmp = perm[a];
      perm[a] = perm[b];
      perm[b] = tmp;
    }
    iterations++;
    tls_iterations++;
    uint64_t now = mono_ns();
    if (now - last_beat >= 1000000) {
      last_beat = now;
      char buf[64];
      int n = snprintf(buf, sizeof buf, "%020llu %020llu\n", (unsigned long long)iterations,
                       (unsigned long long)realtime_ns());
      if (pwrite(hb, buf, (size_t)n, 0) != n) {
        snprintf(arg->error, sizeof arg->error, "thread %d: heartbeat: %s", t, strerror(errno));
        break;
      }
    }
    if (t == 0 && now - last_poll >= 10000000) {
      last_poll = now;
      if (access(trigger, F_OK) == 0) atomic_store(&verify_now, 1);
    }
    if (atomic_load_explicit(&verify_now, memory_order_relaxed)) break;
  }
  __asm__ volatile("" : : "r"(stack_state) : "memory");
  if (!arg->error[0]) {
    for (int i = 0; i < STACK_WORDS; i++) {
      if (stack_state[i] != stack_word(t, i)) {
        snprintf(arg->error, sizeof arg->error, "thread %d: stack word %d changed", t, i);
        break;
      }
    }
  }
  if (!arg->error[0]) {
    uint8_t seen[PERM_SIZE / 8] = {0};
    for (uint32_t i = 0; i < PERM_SIZE && !arg->error[0]; i++) {
      uint32_t v = perm[i];
      if (v >= PERM_SIZE || (seen[v / 8] & (1u << (v % 8)))) {
        snprintf(arg->error, sizeof arg->error, "thread %d: heap is no longer a permutation at %u",
                 t, i);
      } else {
        seen[v / 8] |= (uint8_t)(1u << (v % 8));
      }
    }
  }
  if (!arg->error[0] && tls_iterations != iterations) {
    snprintf(arg->error, sizeof arg->error, "thread %d: __thread counter %llu != %llu", t,
             (unsigned long long)tls_iterations, (unsigned long long)iterations);
  }
  close(hb);
  free(perm);
  return NULL;
}

static int run_process(int nthreads, uint64_t size, const char* kind) {
  uint8_t* mem = NULL;
  uint64_t sum = 0;
  if (size) {
    mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      fprintf(stderr, "jobwork %d: mmap %llu bytes: %s\n", proc_index, (unsigned long long)size,
              strerror(errno));
      return 1;
    }
    uint64_t seed = 0x9e3779b97f4a7c15ull + (uint64_t)proc_index * 0x632be59bd9b4e019ull;
    if (!strcmp(kind, "random")) {
      fill_random(mem, size, seed);
    } else if (!strcmp(kind, "zero")) {
      memset(mem, 0, size);
    } else {
      uint64_t half = size / 2, quarter = size / 4;
      fill_random(mem, half, seed);
      memset(mem + half, 0, quarter);
      fill_text(mem + half + quarter, size - half - quarter);
    }
    sum = checksum(mem, size);
  }
  static struct thread_arg args[MAX_THREADS];
  pthread_t tids[MAX_THREADS];
  for (int t = 1; t < nthreads; t++) {
    args[t].index = t;
    int rc = pthread_create(&tids[t], NULL, compute, &args[t]);
    if (rc != 0) {
      fprintf(stderr, "jobwork %d: pthread_create: %s\n", proc_index, strerror(rc));
      return 1;
    }
  }
  printf("ready %d\n", proc_index);
  fflush(stdout);
  args[0].index = 0;
  compute(&args[0]);
  for (int t = 1; t < nthreads; t++) pthread_join(tids[t], NULL);
  for (int t = 0; t < nthreads; t++) {
    if (args[t].error[0]) {
      printf("FAILED %d: %s\n", proc_index, args[t].error);
      fflush(stdout);
      return 1;
    }
  }
  if (size && checksum(mem, size) != sum) {
    printf("FAILED %d: memory checksum changed\n", proc_index);
    fflush(stdout);
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: jobwork NPROCS NTHREADS SIZE random|zero|mixed DIR\n");
    return 2;
  }
  int nprocs = atoi(argv[1]), nthreads = atoi(argv[2]);
  uint64_t size = parse_size(argv[3]);
  const char* kind = argv[4];
  dir = argv[5];
  if (nprocs < 1 || nthreads < 1 || nthreads > MAX_THREADS ||
      (strcmp(kind, "random") && strcmp(kind, "zero") && strcmp(kind, "mixed"))) {
    fprintf(stderr, "jobwork: bad NPROCS, NTHREADS or KIND\n");
    return 2;
  }
  pid_t workers[nprocs];
  for (int i = 1; i < nprocs; i++) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "jobwork: fork: %s\n", strerror(errno));
      return 1;
    }
    if (pid == 0) {
      proc_index = i;
      int rc = run_process(nthreads, size, kind);
      if (rc == 0) printf("verified %d ok\n", i);
      fflush(stdout);
      _exit(rc);
    }
    workers[i] = pid;
  }
  int rc = run_process(nthreads, size, kind);
  for (int i = 1; i < nprocs; i++) {
    int status = 0;
    if (waitpid(workers[i], &status, 0) != workers[i]) {
      printf("FAILED 0: waitpid worker %d: %s\n", i, strerror(errno));
      rc = 1;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      printf("FAILED 0: worker %d ended with status 0x%x\n", i, status);
      rc = 1;
    }
  }
  if (rc == 0) printf("verified 0 ok\n");
  fflush(stdout);
  return rc;
}
