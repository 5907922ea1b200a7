// Helpers shared by the libFuzzer targets of tests/fuzz (see README there).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>

#include "common/scoped_fd.h"

namespace stasis::fuzz {

// A memfd holding `size` bytes of `data` (memfd_create(2)): the image reader
// then sees a real regular file, read with pread(2) like any image.
inline ScopedFd MemFile(const uint8_t* data, size_t size) {
  ScopedFd fd(::memfd_create("fuzz-input", MFD_CLOEXEC));
  if (!fd) {
    std::perror("memfd_create");
    std::abort();
  }
  size_t off = 0;
  while (off < size) {
    ssize_t n = ::write(fd.get(), data + off, size - off);
    if (n <= 0) {
      std::perror("write memfd");
      std::abort();
    }
    off += static_cast<size_t>(n);
  }
  return fd;
}

// A decoder's invariant failed: crash, so libFuzzer records the input.
#define FUZZ_CHECK(cond)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                             \
    }                                                                           \
  } while (0)

}  // namespace stasis::fuzz
