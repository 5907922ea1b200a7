#include "job/runtime_dir.h"

#include <dirent.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

namespace stasis::job {
Status EnsurePrivateDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Errno("runtime directory " + dir);
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return Status::Errno("runtime directory " + dir);
  if (!S_ISDIR(st.st_mode)) {
    return Status::Error("runtime directory " + dir + ": exists and is not a directory");
  }
  if (st.st_uid != geteuid()) {
    return Status::Error(fmt::format(
        "runtime directory {}: owned by uid {}, not by us (uid {}); remove it or set "
        "XDG_RUNTIME_DIR",
        dir, st.st_uid, geteuid()));
  }
  if ((st.st_mode & 077) != 0 && chmod(dir.c_str(), 0700) != 0) {
    return Status::Errno("runtime directory " + dir + ": chmod 0700");
  }
  return Status::Ok();
}

std::string RandomHex(size_t n_bytes) {
  std::string raw(n_bytes, '\0');
  size_t got = 0;
  while (got < n_bytes) {
    ssize_t n = getrandom(raw.data() + got, n_bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // getrandom cannot fail on Linux >= 3.17 short of a bad buffer; be safe.
      for (; got < n_bytes; ++got) raw[got] = static_cast<char>(std::rand());
      break;
    }
    got += static_cast<size_t>(n);
  }
  std::string hex;
  hex.reserve(2 * n_bytes);
  for (unsigned char c : raw) hex += fmt::format("{:02x}", c);
  return hex;
}

StatusOr<std::string> RuntimeBaseDir() {
  const char* xdg = getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && xdg[0] == '/' && access(xdg, W_OK | X_OK) == 0) {
    std::string dir = std::string(xdg) + "/stasis";
    if (EnsurePrivateDir(dir).ok()) return dir;
    // Fall through to /tmp: XDG_RUNTIME_DIR is a convenience, not a requirement.
  }
  std::string dir = fmt::format("/tmp/stasis-{}", geteuid());
  RETURN_IF_ERROR(EnsurePrivateDir(dir));
  return dir;
}

StatusOr<RuntimeDir> RuntimeDir::CreateIn(const std::string& base, const std::string& job_id) {
  std::string path = base + "/" + job_id + "." + RandomHex(4);
  RuntimeDir dir(path);
  if (dir.supervisor_socket().size() >= kMaxSocketPath) {
    return Status::Error(fmt::format(
        "runtime directory {}: socket path would be {} bytes, the limit is {}; set "
        "XDG_RUNTIME_DIR to a shorter directory",
        base, dir.supervisor_socket().size(), kMaxSocketPath - 1));
  }
  if (mkdir(path.c_str(), 0700) != 0) {
    dir.path_.clear();  // not ours: do not remove on destruction
    return Status::Errno("runtime directory " + path);
  }
  return dir;
}

StatusOr<RuntimeDir> RuntimeDir::Create(const std::string& job_id) {
  ASSIGN_OR_RETURN(std::string base, RuntimeBaseDir());
  return CreateIn(base, job_id);
}

RuntimeDir::RuntimeDir(RuntimeDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }

RuntimeDir& RuntimeDir::operator=(RuntimeDir&& o) noexcept {
  if (this != &o) {
    Remove();
    path_ = std::move(o.path_);
    o.path_.clear();
  }
  return *this;
}

RuntimeDir::~RuntimeDir() { Remove(); }

void RuntimeDir::Remove() {
  if (path_.empty()) return;
  if (DIR* d = opendir(path_.c_str())) {
    while (struct dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      unlinkat(dirfd(d), name.c_str(), 0);
    }
    closedir(d);
  }
  rmdir(path_.c_str());
  path_.clear();
}

}  // namespace stasis::job
