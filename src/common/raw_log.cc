#include "common/raw_log.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace stasis {
namespace {

struct Out {
  char* buf;
  int size;
  int len = 0;
  void Put(char c) {
    if (len < size - 1) buf[len++] = c;
  }
  void PutStr(const char* s) {
    if (s == nullptr) s = "(null)";
    while (*s) Put(*s++);
  }
  void PutUnsigned(unsigned long v, unsigned base) {
    char tmp[24];
    int n = 0;
    do {
      unsigned d = static_cast<unsigned>(v % base);
      tmp[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
      v /= base;
    } while (v != 0);
    while (n > 0) Put(tmp[--n]);
  }
  void PutSigned(long v) {
    if (v < 0) {
      Put('-');
      PutUnsigned(static_cast<unsigned long>(-(v + 1)) + 1, 10);
    } else {
      PutUnsigned(static_cast<unsigned long>(v), 10);
    }
  }
};

void WriteAll(int fd, const char* p, int n) {
  while (n > 0) {
    long w = syscall(SYS_write, fd, p, n);
    if (w <= 0) return;
    p += w;
    n -= static_cast<int>(w);
  }
}

void VLog(int fd, const char* fmt, va_list ap) {
  char buf[1024];
  Out o{buf, sizeof(buf)};
  o.PutStr("stasis[");
  o.PutSigned(syscall(SYS_getpid));
  o.PutStr("]: ");
  char* rest = buf + o.len;
  int used = o.len;
  used += RawFormat(rest, static_cast<int>(sizeof(buf)) - used - 1, fmt, ap);
  buf[used++] = '\n';
  WriteAll(fd, buf, used);
}

}  // namespace

int RawFormat(char* buf, int size, const char* fmt, va_list ap) {
  Out o{buf, size};
  for (const char* p = fmt; *p; ++p) {
    if (*p != '%') {
      o.Put(*p);
      continue;
    }
    ++p;
    bool is_long = false;
    if (*p == 'l') {
      is_long = true;
      ++p;
    }
    switch (*p) {
      case 's': o.PutStr(va_arg(ap, const char*)); break;
      case 'd': o.PutSigned(is_long ? va_arg(ap, long) : va_arg(ap, int)); break;
      case 'u': o.PutUnsigned(is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 10); break;
      case 'x': o.PutUnsigned(is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 16); break;
      case 'p':
        o.PutStr("0x");
        o.PutUnsigned(reinterpret_cast<uintptr_t>(va_arg(ap, void*)), 16);
        break;
      case '%': o.Put('%'); break;
      case '\0': --p; break;
      default: o.Put('?'); break;
    }
  }
  if (size > 0) buf[o.len < size ? o.len : size - 1] = '\0';
  return o.len;
}

void RawLog(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  VLog(2, fmt, ap);
  va_end(ap);
}

void RawLogFd(int fd, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  VLog(fd, fmt, ap);
  va_end(ap);
}

}  // namespace stasis
