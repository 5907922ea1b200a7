#include "image/io_util.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstddef>

#include "common/scoped_fd.h"

namespace stasis::image::internal {

constexpr int kIovMax = 1024;  // Linux UIO_MAXIOV

Status WriteAll(int fd, const void* data, size_t len, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Errno(path + ": write");
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status WritevAll(int fd, struct iovec* iov, int iovcnt, const std::string& path) {
  while (iovcnt > 0) {
    if (iov->iov_len == 0) {
      ++iov;
      --iovcnt;
      continue;
    }
    ssize_t n = ::writev(fd, iov, iovcnt > kIovMax ? kIovMax : iovcnt);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Errno(path + ": write");
    }
    auto left = static_cast<size_t>(n);
    while (iovcnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --iovcnt;
    }
    if (iovcnt > 0) {
      iov->iov_base = static_cast<uint8_t*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return Status::Ok();
}

StatusOr<size_t> PreadUpTo(int fd, void* data, size_t len, uint64_t offset, const std::string& path) {
  auto* p = static_cast<uint8_t*>(data);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, p + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Errno(path + ": read");
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

std::string DirName(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Status FsyncParentDir(const std::string& path) {
  const std::string dir = DirName(path);
  ScopedFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::Errno(dir + ": open directory");
  if (::fsync(fd.get()) != 0 && errno != EINVAL) return Status::Errno(dir + ": fsync");
  return Status::Ok();
}

uint64_t Xxh3(const void* data, size_t len) { return XXH3_64bits(data, len); }

uint64_t HeaderChecksum(const FileHeader& h) {
  return XXH3_64bits(&h, offsetof(FileHeader, header_checksum));
}

uint64_t HeaderChecksum(const BlockHeader& h) {
  return XXH3_64bits(&h, offsetof(BlockHeader, header_checksum));
}

}  // namespace stasis::image::internal
