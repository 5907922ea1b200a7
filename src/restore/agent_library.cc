#include "restore/agent_library.h"

#include <sys/stat.h>

#include <cstdint>
#include <string>

namespace stasis::restore {

// The restored process maps the agent it ran with, not this Stasis's: that
// file must be the one of the checkpoint.  Installed agents live in a
// directory of their version (lib/stasis/<version>/), so installing another
// version keeps it; this names the case where it is gone or was replaced.
Status CheckAgentLibrary(const image::ProcessImage& img) {
  if (img.agent.path.empty()) return Status::Ok();  // image of an older Stasis
  const std::string who = "the Stasis agent " + img.agent.path + " that this process ran with (Stasis " +
                          (img.agent.stasis_version.empty() ? "?" : img.agent.stasis_version) + ")";
  struct stat st;
  if (::stat(img.agent.path.c_str(), &st) != 0) {
    return Status::Errno(who + " is missing; install that version of Stasis again (it keeps its agent in "
                               "lib/stasis/<version>/) to restart this checkpoint: stat");
  }
  for (const auto& a : img.areas) {
    if (a.name != img.agent.path || a.kind != image::MemoryArea::Kind::kFilePrivate) continue;
    const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    if (static_cast<uint64_t>(st.st_size) != a.file_size || mtime != a.file_mtime_ns) {
      return Status::Error(who + " was replaced since the checkpoint (reinstalled with the same version?); "
                                 "the checkpoint needs the agent it was taken with");
    }
    break;
  }
  return Status::Ok();
}

}  // namespace stasis::restore
