// Internal helpers of the image library (not a public interface): retrying
// I/O loops, directory fsync and block-header checksumming shared by the
// writer, reader and manifest code.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"
#include "image/format.h"

namespace stasis::image::internal {

// write(2) until all `len` bytes are written; EINTR retried.  The error text
// is "<path>: write: <strerror>".
Status WriteAll(int fd, const void* data, size_t len, const std::string& path);
// writev(2) of all iovecs (modifies `iov`).
Status WritevAll(int fd, struct iovec* iov, int iovcnt, const std::string& path);
// pread(2) of exactly `len` bytes at `offset`; returns the count actually read
// (short only at end of file) or an errno error naming `path`.
StatusOr<size_t> PreadUpTo(int fd, void* data, size_t len, uint64_t offset, const std::string& path);
// fsync(2) of the directory containing `path` (so a rename in it is durable).
Status FsyncParentDir(const std::string& path);
// "a/b/c" -> "a/b"; "c" -> ".".
std::string DirName(const std::string& path);
// "a/b/c" -> "c".
std::string BaseName(const std::string& path);

uint64_t Xxh3(const void* data, size_t len);
// Header checksums cover everything before the checksum field.
uint64_t HeaderChecksum(const FileHeader& h);
uint64_t HeaderChecksum(const BlockHeader& h);

}  // namespace stasis::image::internal
