#include "state/losses.h"

#include <sys/socket.h>

#include <fmt/format.h>

#include "state/files.h"

namespace stasis::state {
namespace {

using Kind = image::FileDescriptor::Kind;

bool EndsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::vector<std::string> RestartLosses(const image::ProcessImage& img) {
  std::vector<std::string> out;
  for (const image::FileDescriptor& f : img.fds) {
    if (f.stdio_alias >= 0 || f.shmem_id != 0 || f.fd == img.agent.socket_fd) continue;
    const std::string who = fmt::format("fd {} ({})", f.fd, f.path);
    switch (f.kind) {
      case Kind::kRegular:
      case Kind::kDirectory:
        if (EndsWith(f.path, " (deleted)") && !f.saved) {
          out.push_back(who + ": deleted while open and its contents are not saved (--save-files); "
                              "a restart refuses it");
        }
        break;
      case Kind::kSocket:
        if (f.socket.family != AF_UNIX && f.socket.family != AF_INET && f.socket.family != AF_INET6) {
          out.push_back(fmt::format("{}: a socket of family {}, which cannot be restored yet; it is "
                                    "/dev/null after a restart",
                                    who, f.socket.family));
        }
        break;
      case Kind::kOther:
        out.push_back(who + ": a " + FdKindName(f.kind) +
                      " of a kind that cannot be restored yet; it is /dev/null after a restart");
        break;
      default:
        break;
    }
  }
  return out;
}

}  // namespace stasis::state
