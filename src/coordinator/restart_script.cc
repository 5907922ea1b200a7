// "<ckptdir>/stasis_restart.sh": restarts the newest complete checkpoint of
// the directory it lives in, so a copied directory still works.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/safe_file.h"
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
  std::string text =
      "#!/bin/sh\n"
      "# Written by stasis: restarts the newest complete checkpoint in this directory.\n"
      "# Extra arguments go to 'stasis restart' (see 'stasis restart --help').\n"
      "STASIS=" + ShellQuote(stasis_exe.empty() ? "stasis" : stasis_exe) + "\n"
      "[ -x \"$STASIS\" ] || STASIS=stasis\n"
      "exec \"$STASIS\" restart \"$(dirname \"$0\")\" \"$@\"\n";
  // Never through a symlink planted in the directory (common/safe_file.h).
  return WriteFileAtomic(path, text, 0755);
}

}  // namespace stasis::coordinator::internal
