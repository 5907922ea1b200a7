#include "common/safe_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace stasis {

namespace {

void SplitPath(const std::string& path, std::string* dir, std::string* name) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    *dir = ".";
    *name = path;
  } else {
    *dir = slash == 0 ? "/" : path.substr(0, slash);
    *name = path.substr(slash + 1);
  }
}

}  // namespace

StatusOr<ScopedFd> OpenDirectory(const std::string& dir) {
  ScopedFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::Errno(dir + ": open directory");
  return fd;
}

StatusOr<ScopedFd> CreateExclusiveAt(int dirfd, const std::string& name, int flags, mode_t mode,
                                     const std::string& display, bool replace_stale) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return Status::Error(display + ": not a plain file name");
  }
  const int oflags = flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  for (int attempt = 0;; ++attempt) {
    ScopedFd fd(::openat(dirfd, name.c_str(), oflags, mode));
    if (fd) return fd;
    if (errno != EEXIST || !replace_stale || attempt > 0) return Status::Errno(display + ": create");
    if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return Status::Errno(display + ": remove the stale entry");
    }
  }
}

AtomicFile::AtomicFile(ScopedFd dir, ScopedFd fd, std::string path, std::string name, mode_t mode)
    : dir_(std::move(dir)), fd_(std::move(fd)), path_(std::move(path)), tmp_path_(path_ + ".tmp"),
      name_(std::move(name)), mode_(mode) {}

AtomicFile& AtomicFile::operator=(AtomicFile&& o) noexcept {
  if (this != &o) {
    Abandon();
    dir_ = std::move(o.dir_);
    fd_ = std::move(o.fd_);
    path_ = std::move(o.path_);
    tmp_path_ = std::move(o.tmp_path_);
    name_ = std::move(o.name_);
    mode_ = o.mode_;
    done_ = o.done_;
    o.done_ = true;
  }
  return *this;
}

StatusOr<AtomicFile> AtomicFile::Create(const std::string& path, mode_t mode, bool replace_stale) {
  std::string dir, name;
  SplitPath(path, &dir, &name);
  ScopedFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) return Status::Errno(path + ".tmp: create: directory " + dir);
  ASSIGN_OR_RETURN(ScopedFd fd, CreateExclusiveAt(dfd.get(), name + ".tmp", O_WRONLY, mode & 0600,
                                                  path + ".tmp", replace_stale));
  return AtomicFile(std::move(dfd), std::move(fd), path, name, mode);
}

void AtomicFile::Abandon() {
  if (done_ || !dir_) return;
  fd_.reset();
  ::unlinkat(dir_.get(), (name_ + ".tmp").c_str(), 0);
  done_ = true;
}

Status AtomicFile::Commit() {
  if (done_ || !fd_) return Status::Error(tmp_path_ + ": already committed or abandoned");
  Status st;
  if (::fchmod(fd_.get(), mode_) != 0) st = Status::Errno(tmp_path_ + ": chmod");
  if (st.ok() && ::fsync(fd_.get()) != 0) st = Status::Errno(tmp_path_ + ": fsync");
  if (st.ok() && ::close(fd_.release()) != 0) st = Status::Errno(tmp_path_ + ": close");
  if (st.ok() && ::renameat(dir_.get(), (name_ + ".tmp").c_str(), dir_.get(), name_.c_str()) != 0) {
    st = Status::Errno("rename " + tmp_path_ + " -> " + path_);
  }
  if (!st.ok()) {
    Abandon();
    return st;
  }
  done_ = true;
  if (::fsync(dir_.get()) != 0 && errno != EINVAL) {
    st = Status::Errno(path_ + ": fsync of the directory");
    ::unlinkat(dir_.get(), name_.c_str(), 0);
    return st;
  }
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
  ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(path, mode));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(f.fd(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Errno(f.tmp_path() + ": write");
    off += static_cast<size_t>(n);
  }
  return f.Commit();
}

}  // namespace stasis
