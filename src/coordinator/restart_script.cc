// "<ckptdir>/stasis_restart.sh": restarts the newest complete checkpoint of
// the directory it lives in, so a copied directory still works.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "coordinator/coordinator_impl.h"

namespace stasis::coordinator::internal {

namespace {

// POSIX sh single quoting: 'it'\''s'
std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

}  // namespace

Status WriteRestartScript(const std::string& dir, const std::string& stasis_exe) {
  const std::string path = (std::filesystem::path(dir) / "stasis_restart.sh").string();
  const std::string tmp = path + ".tmp";
  std::string text =
      "#!/bin/sh\n"
      "# Written by stasis: restarts the newest complete checkpoint in this directory.\n"
      "# Extra arguments go to 'stasis restart' (see 'stasis restart --help').\n"
      "STASIS=" + ShellQuote(stasis_exe.empty() ? "stasis" : stasis_exe) + "\n"
      "[ -x \"$STASIS\" ] || STASIS=stasis\n"
      "exec \"$STASIS\" restart \"$(dirname \"$0\")\" \"$@\"\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  if (fd < 0) return Status::Errno(tmp);
  ScopedFd owner(fd);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status st = Status::Errno(tmp + ": write");
      ::unlink(tmp.c_str());
      return st;
    }
    off += static_cast<size_t>(n);
  }
  // The umask may have cleared bits of the create mode.
  if (::fchmod(fd, 0755) != 0 || ::fsync(fd) != 0) {
    Status st = Status::Errno(tmp);
    ::unlink(tmp.c_str());
    return st;
  }
  owner.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = Status::Errno("rename " + tmp);
    ::unlink(tmp.c_str());
    return st;
  }
  return Status::Ok();
}

}  // namespace stasis::coordinator::internal
