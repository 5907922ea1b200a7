// threads: a deterministic multi-threaded workload.
//   threads [ROUNDS=20] [DELAY_SECONDS=0.1] [NTHREADS=4]
// Each round:
//   1. the main thread sleeps DELAY, then opens the round (barrier);
//   2. the workers pass a token in order 0,1,..,N-1 through a condition
//      variable; the holder folds its index into a rolling hash;
//   3. every worker adds a round-dependent amount (which also depends on its
//      __thread counter) to a mutex-protected shared total;
//   4. all meet at a barrier; the main thread prints the round's line.
// The printed lines depend only on ROUNDS and NTHREADS, never on timing, so a
// restarted run must print exactly what an uninterrupted one prints.
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 64

static int nthreads = 4;
static int rounds = 20;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t token_cv = PTHREAD_COND_INITIALIZER;
static int token = 0;             // index of the worker whose turn it is
static uint64_t total = 0;        // protected by lock
static uint64_t hash = 1469598103934665603ull;  // protected by lock
static pthread_barrier_t round_start, round_end;
static uint64_t published[MAX_THREADS];  // each worker's __thread counter after the round

static __thread uint64_t tls_counter = 0;

static void sleep_seconds(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void* worker(void* arg) {
  int idx = (int)(intptr_t)arg;
  for (int r = 1; r <= rounds; r++) {
    pthread_barrier_wait(&round_start);
    // Token ring: wait for our turn.
    pthread_mutex_lock(&lock);
    while (token != idx) pthread_cond_wait(&token_cv, &lock);
    hash = (hash ^ (uint64_t)(idx + 1) * (uint64_t)r) * 1099511628211ull;
    token = (idx + 1) % nthreads;
    pthread_cond_broadcast(&token_cv);
    pthread_mutex_unlock(&lock);
    // Some private work on thread-local state.
    uint64_t local = 0;
    for (int k = 0; k < 1000 * (idx + 1); k++) local += (uint64_t)k * (uint64_t)r ^ (uint64_t)idx;
    tls_counter += (uint64_t)(idx + 1);
    pthread_mutex_lock(&lock);
    total += tls_counter * (uint64_t)r + (local & 0xff);
    pthread_mutex_unlock(&lock);
    published[idx] = tls_counter;
    pthread_barrier_wait(&round_end);
  }
  return NULL;
}

int main(int argc, char** argv) {
  rounds = argc > 1 ? atoi(argv[1]) : 20;
  double delay = argc > 2 ? atof(argv[2]) : 0.1;
  nthreads = argc > 3 ? atoi(argv[3]) : 4;
  if (nthreads < 1 || nthreads > MAX_THREADS) {
    fprintf(stderr, "threads: NTHREADS must be 1..%d\n", MAX_THREADS);
    return 2;
  }
  pthread_barrier_init(&round_start, NULL, (unsigned)nthreads + 1);
  pthread_barrier_init(&round_end, NULL, (unsigned)nthreads + 1);
  pthread_t tids[MAX_THREADS];
  for (int i = 0; i < nthreads; i++) {
    int rc = pthread_create(&tids[i], NULL, worker, (void*)(intptr_t)i);
    if (rc != 0) {
      fprintf(stderr, "threads: pthread_create: %s\n", strerror(rc));
      return 1;
    }
  }
  printf("threads=%d rounds=%d\n", nthreads, rounds);
  fflush(stdout);
  for (int r = 1; r <= rounds; r++) {
    sleep_seconds(delay);
    pthread_barrier_wait(&round_start);
    pthread_barrier_wait(&round_end);
    pthread_mutex_lock(&lock);
    printf("round %d total %llu hash %016llx tls", r, (unsigned long long)total,
           (unsigned long long)hash);
    for (int i = 0; i < nthreads; i++) printf("%c%llu", i ? ',' : ' ', (unsigned long long)published[i]);
    printf("\n");
    pthread_mutex_unlock(&lock);
    fflush(stdout);
  }
  for (int i = 0; i < nthreads; i++) pthread_join(tids[i], NULL);
  printf("done total %llu\n", (unsigned long long)total);
  return 0;
}
