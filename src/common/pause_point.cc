#include "common/pause_point.h"

#include "common/safe_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/scoped_fd.h"

namespace stasis {

bool PauseRequested(const std::string& phase, uint64_t generation) {
  const char* at = getenv("STASIS_PAUSE_AT");
  if (at == nullptr) return false;
  const std::string spec = at;
  const std::string with_gen = phase + ":" + std::to_string(generation);
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(start, end - start);
    if (item == phase || item == with_gen) return true;
    start = end + 1;
  }
  return false;
}

std::string PauseMarkerPath(const std::string& dir, const std::string& phase, uint64_t generation) {
  if (phase == "quiesced") return dir + "/stasis_paused_" + std::to_string(generation);
  return dir + "/stasis_paused_" + phase + "_" + std::to_string(generation);
}

void MaybePause(const std::string& phase, uint64_t generation, const std::string& dir,
                const std::string& text) {
  if (!PauseRequested(phase, generation)) return;
  const std::string marker = PauseMarkerPath(dir, phase, generation);
  // Written whole and renamed into place, never through a planted symlink.
  if (Status st = WriteFileAtomic(marker, text, 0644); !st.ok()) {
    fprintf(stderr, "stasis: pause point %s: %s\n", phase.c_str(), st.message().c_str());
    return;
  }
  fprintf(stderr, "stasis: paused at %s (checkpoint %llu): remove %s to go on\n", phase.c_str(),
          static_cast<unsigned long long>(generation), marker.c_str());
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int>(kPauseLimitSeconds * 1000));
  while (access(marker.c_str(), F_OK) == 0 && std::chrono::steady_clock::now() < deadline) {
    usleep(10 * 1000);
  }
  unlink(marker.c_str());
}

}  // namespace stasis
