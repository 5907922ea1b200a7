// `stasis coordinator --daemon`: detaches from the terminal and tells the
// parent, through a pipe, once the coordinator listens, so whoever started it
// (stasis launch) can connect as soon as the parent exits.
#pragma once

#include <string>

#include "common/status.h"

namespace stasis::coordinator {

class Daemonizer {
 public:
  // Forks.  In the parent, waits for the child's readiness (or failure)
  // message, prints a failure to stderr and _exit()s: 0 once ready, 1 if
  // the child failed.  Returns only in the child, which is in a new session
  // with stdin on /dev/null and stdout/stderr on `log_file` (appended) or
  // /dev/null.  Errors (fork, log file) are returned before forking.
  static StatusOr<Daemonizer> Start(const std::string& log_file);

  // Child side: report success or a failure message to the waiting parent.
  void Ready();
  void Failed(const std::string& message);

 private:
  explicit Daemonizer(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace stasis::coordinator
