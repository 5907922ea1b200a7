// Async-signal-safe logging for code that runs in a signal handler, in the
// agent while user threads are quiesced, or in the restorer: no malloc, no
// stdio, no locks -- formats into a stack buffer and write(2)s it to stderr.
// Only %s, %d, %u, %ld, %lu, %lx, %x, %p and %% are understood.
#pragma once

#include <cstdarg>

namespace stasis {

// Writes "stasis[<pid>]: <formatted>\n" to fd 2. Never allocates.
void RawLog(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Same, into `fd`.
void RawLogFd(int fd, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// Formats into buf (always NUL-terminated); returns the length written.
int RawFormat(char* buf, int size, const char* fmt, va_list ap);

}  // namespace stasis
