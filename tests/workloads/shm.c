// shm: a parent and a child that talk only through shared memory, for the
// e2e tests of shared memory across a restart (tests/e2e/test_shmem.py).
//   shm MODE [N=100] [DELAY=0.02]
// MODE selects the shared region: anon (mmap MAP_SHARED|MAP_ANONYMOUS),
// posix (shm_open "/stasis-shm-<hash of the cwd>", removed at the end), unlinked (shm_open then
// shm_unlink, as Python's multiprocessing does with its semaphores), memfd
// (memfd_create, the descriptor kept open), sysv (shmget IPC_PRIVATE).
// The region holds a process-shared semaphore pair and a 1 MiB array.  For
// round i = 1..N the parent writes i into the array at page i % 256, posts
// the child's semaphore and waits for its answer; the child reads the value
// through its own mapping, writes 3*i next to it and posts back.  The parent
// prints "round <i> answer <3i>" and sleeps DELAY; a wrong answer prints
// "BAD ..." and exits 2.  At the end: "sum <of all answers>" and the
// child's exit status.
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kArray = 1 << 20, kPage = 4096 };

struct Shared {
  sem_t to_child, to_parent;
  volatile int64_t stop;
  char pad[kPage - 2 * sizeof(sem_t) - sizeof(int64_t)];
  volatile int64_t array[kArray / sizeof(int64_t)];
};

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void die(const char* what) {
  printf("BAD %s: %s\n", what, strerror(errno));
  exit(2);
}

static int wait_sem(sem_t* s) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_sec += 30;
  while (sem_timedwait(s, &t) != 0) {
    if (errno != EINTR) return -1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) return 1;
  const char* mode = argv[1];
  int n = argc > 2 ? atoi(argv[2]) : 100;
  double delay = argc > 3 ? atof(argv[3]) : 0.02;
  setvbuf(stdout, NULL, _IOLBF, 0);
  const size_t size = sizeof(struct Shared);
  void* p = MAP_FAILED;
  // Unique per working directory: in a job's pid namespace every run is pid 2.
  char name[64], cwd[4096];
  uint64_t h = 1469598103934665603ull;
  if (getcwd(cwd, sizeof cwd) != NULL)
    for (const char* c = cwd; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
  snprintf(name, sizeof name, "/stasis-shm-%016llx", (unsigned long long)h);
  shm_unlink(name);  // left over by a killed run
  if (strcmp(mode, "anon") == 0) {
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  } else if (strcmp(mode, "posix") == 0 || strcmp(mode, "unlinked") == 0) {
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0) die("shm_open");
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (strcmp(mode, "unlinked") == 0) shm_unlink(name);
  } else if (strcmp(mode, "memfd") == 0) {
    int fd = memfd_create("shm-test", 0);
    if (fd < 0 || ftruncate(fd, (off_t)size) != 0) die("memfd_create");
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  } else if (strcmp(mode, "sysv") == 0) {
    int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
    if (id < 0) die("shmget");
    p = shmat(id, NULL, 0);
    if (p == (void*)-1) p = MAP_FAILED;
    shmctl(id, IPC_RMID, NULL);  // destroyed when the last process detaches
  } else {
    return 1;
  }
  if (p == MAP_FAILED) die("mapping the shared region");
  struct Shared* sh = p;
  if (sem_init(&sh->to_child, 1, 0) != 0 || sem_init(&sh->to_parent, 1, 0) != 0) die("sem_init");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    for (;;) {
      if (wait_sem(&sh->to_child) != 0) _exit(3);
      if (sh->stop) _exit(0);
      for (int k = 0; k < kArray / kPage; k++) {
        int64_t v = sh->array[k * (kPage / 8)];
        if (v != 0) {
          sh->array[k * (kPage / 8) + 1] = 3 * v;
          sh->array[k * (kPage / 8)] = 0;
        }
      }
      sem_post(&sh->to_parent);
    }
  }
  int64_t sum = 0;
  for (int i = 1; i <= n; i++) {
    int slot = (i % 256) * (kPage / 8);
    sh->array[slot] = i;
    sem_post(&sh->to_child);
    if (wait_sem(&sh->to_parent) != 0) die("no answer from the child");
    int64_t answer = sh->array[slot + 1];
    if (answer != 3 * (int64_t)i) {
      printf("BAD round %d answer %lld\n", i, (long long)answer);
      return 2;
    }
    sum += answer;
    printf("round %d answer %lld\n", i, (long long)answer);
    sleep_seconds(delay);
  }
  sh->stop = 1;
  sem_post(&sh->to_child);
  int st = 0;
  waitpid(child, &st, 0);
  if (strcmp(mode, "posix") == 0) shm_unlink(name);
  printf("sum %lld\n", (long long)sum);
  printf("child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  return 0;
}
