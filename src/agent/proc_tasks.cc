// /proc readers for the agent that neither allocate nor take locks: they run
// while other threads are parked in the checkpoint handler, possibly holding
// the malloc lock (so no opendir(3), which mallocs its DIR buffer).
// Technique: getdents64(2) on a descriptor opened once; proc(5) for the
// formats of /proc/<pid>/status (SigPnd, ShdPnd) and /proc/<pid>/stat.
#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>

#include "agent/agent_internal.h"

namespace stasis::agent {
namespace {

struct LinuxDirent64 {  // getdents64(2)
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// One lister at a time (the agent thread); static so the agent stack stays small.
alignas(8) char g_dents[8192];

long RawReadFile(const char* path, char* buf, long size) {
  int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
  if (fd < 0) return -1;
  long total = 0;
  while (total < size - 1) {
    long n = syscall(SYS_read, fd, buf + total, size - 1 - total);
    if (n <= 0) break;
    total += n;
  }
  syscall(SYS_close, fd);
  buf[total] = '\0';
  return total;
}

}  // namespace

void TaskLister::Rewind() {
  syscall(SYS_lseek, fd_, 0, SEEK_SET);
  len_ = pos_ = 0;
}

int TaskLister::Next() {
  for (;;) {
    if (pos_ >= len_) {
      len_ = syscall(SYS_getdents64, fd_, g_dents, sizeof(g_dents));
      pos_ = 0;
      if (len_ <= 0) {
        len_ = 0;
        return 0;
      }
    }
    auto* d = reinterpret_cast<LinuxDirent64*>(g_dents + pos_);
    pos_ += d->d_reclen;
    int v = 0;
    const char* p = d->d_name;
    if (*p < '0' || *p > '9') continue;  // "." and ".."
    while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
    if (v > 0) return v;
  }
}

bool ReadStatusMask(const char* path, const char* key, uint64_t* mask) {
  char buf[4096];  // a thread's status is ~1.5 KiB
  if (RawReadFile(path, buf, sizeof(buf)) <= 0) return false;
  int klen = 0;
  while (key[klen]) ++klen;
  for (char* line = buf; *line;) {
    bool match = true;
    for (int i = 0; i < klen; ++i) {
      if (line[i] != key[i]) {
        match = false;
        break;
      }
    }
    if (match) {
      const char* p = line + klen;
      while (*p == ' ' || *p == '\t') ++p;
      uint64_t v = 0;
      for (;; ++p) {
        int d;
        if (*p >= '0' && *p <= '9') d = *p - '0';
        else if (*p >= 'a' && *p <= 'f') d = *p - 'a' + 10;
        else break;
        v = (v << 4) | static_cast<uint64_t>(d);  // the 64-bit mask is the last 16 digits
      }
      *mask = v;
      return true;
    }
    while (*line && *line != '\n') ++line;
    if (*line == '\n') ++line;
  }
  return false;
}

namespace {

// "/proc/self/task/<tid>/<leaf>" into path (>= 64 bytes).
void TaskPath(char* path, int tid, const char* leaf) {
  const char* head = "/proc/self/task/";
  int n = 0;
  while (head[n]) {
    path[n] = head[n];
    ++n;
  }
  n += FormatInt(path + n, tid);
  path[n++] = '/';
  for (int i = 0; leaf[i]; ++i) path[n++] = leaf[i];
  path[n] = '\0';
}

// State and flags (fields 3 and 9) of /proc/self/task/<tid>/stat; false if
// the task is gone or the line is malformed.
bool ReadTaskStat(int tid, char* state, unsigned long* flags) {
  char path[64];
  TaskPath(path, tid, "stat");
  char buf[512];
  if (RawReadFile(path, buf, sizeof(buf)) <= 0) return false;
  // "tid (comm) S ppid pgrp session tty tpgid flags ...": comm may contain ')'.
  const char* close = nullptr;
  for (const char* p = buf; *p; ++p)
    if (*p == ')') close = p;
  if (close == nullptr || close[1] != ' ') return false;
  *state = close[2];
  const char* p = close + 3;
  for (int field = 4; field <= 8; ++field) {  // skip ppid .. tpgid
    while (*p == ' ') ++p;
    while (*p && *p != ' ') ++p;
  }
  while (*p == ' ') ++p;
  unsigned long v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + static_cast<unsigned long>(*p++ - '0');
  *flags = v;
  return true;
}

}  // namespace

bool TaskIsZombie(int tid) {
  char state = 0;
  unsigned long flags = 0;
  if (!ReadTaskStat(tid, &state, &flags)) return true;  // gone
  return state == 'Z' || state == 'X' || state == 'x';
}

bool TaskIsIoWorker(int tid) {
  char state = 0;
  unsigned long flags = 0;
  return ReadTaskStat(tid, &state, &flags) && (flags & kPfIoWorker) != 0;
}

void TaskComm(int tid, char* buf, int size) {
  char path[64];
  TaskPath(path, tid, "comm");
  long n = RawReadFile(path, buf, size);
  if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
  if (n <= 0) buf[0] = '\0';
}

int FormatInt(char* buf, long v) {
  char tmp[24];
  int n = 0, len = 0;
  unsigned long u = v < 0 ? static_cast<unsigned long>(-(v + 1)) + 1 : static_cast<unsigned long>(v);
  if (v < 0) buf[len++] = '-';
  do {
    tmp[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  while (n > 0) buf[len++] = tmp[--n];
  buf[len] = '\0';
  return len;
}

double MonotonicSeconds() {
  struct timespec ts;
  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

int RawGettid() { return static_cast<int>(syscall(SYS_gettid)); }

}  // namespace stasis::agent
