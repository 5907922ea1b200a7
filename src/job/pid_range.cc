#include "job/pid_range.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "common/scoped_fd.h"

namespace stasis::job {

pid_t JobPidBase(const std::string& job_id) {
  // FNV-1a, 64 bit (http://www.isthe.com/chongo/tech/comp/fnv/).
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : job_id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return kPidBaseMin + static_cast<pid_t>(h % static_cast<uint64_t>(kPidBaseSlots));
}

Status SetLastPid(pid_t last) {
  constexpr const char* kPath = "/proc/sys/kernel/ns_last_pid";
  ScopedFd fd(open(kPath, O_WRONLY | O_CLOEXEC));
  if (!fd) return Status::Errno(std::string("cannot set the job's pid range: open ") + kPath);
  const std::string text = std::to_string(last);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Status::Errno("cannot set the job's pid range: write " + text + " to " + kPath);
  }
  return Status::Ok();
}

pid_t LastPidAfterRestore(pid_t base, const std::vector<pid_t>& restored) {
  pid_t top = restored.empty() ? 0 : *std::max_element(restored.begin(), restored.end());
  return top >= base ? top : base - 1;
}

}  // namespace stasis::job
