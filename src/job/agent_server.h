// The supervisor's end of the agent protocol (src/agent/agent_protocol.h):
// a SOCK_SEQPACKET listening socket that every job process's agent connects
// to, and the quiesce / resume steps of a checkpoint.  Single-threaded: the
// supervisor's event loop calls Poll(); QuiesceAll() runs its own loop.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace stasis::job {

struct AgentInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  uint64_t control_block = 0;  // address in the agent's process
  bool restarted = false;      // the last kHello came from a restarted process
  std::string program;         // comm
};

// A process asked for "checkpoint, then end the job" (agent kCheckpointRequest:
// it received a deferred signal).
struct AgentCheckpointRequest {
  pid_t pid = 0;
  std::string program;  // comm
  std::string signal;   // "USR1"
};

class AgentServer {
 public:
  // Binds and listens on `socket_path` (removed first if stale).  Errors name the path.
  static StatusOr<std::unique_ptr<AgentServer>> Listen(const std::string& socket_path);
  virtual ~AgentServer() = default;

  virtual const std::string& socket_path() const = 0;
  // Descriptors to poll(2) for input (listening socket + connections).
  virtual std::vector<int> PollFds() const = 0;
  // Accepts connections and reads pending messages without blocking; call
  // after poll(2) reports input on any of PollFds().  Disconnected agents
  // (exited processes) are forgotten.
  virtual void HandleInput() = 0;

  // Connected agents, by pid (a process that exec'd reconnects with the same pid).
  virtual std::vector<AgentInfo> Agents() const = 0;
  // Blocks until the agent of `pid` has said hello (true) or timeout (false).
  virtual bool WaitForAgent(pid_t pid, double timeout_seconds) = 0;

  // Sends kQuiesce{generation} to every agent in `pids` and waits for all
  // kQuiesced.  If any fails, times out or disconnects, every agent that
  // quiesced is resumed and the error names the process and the reason.
  virtual Status QuiesceAll(const std::vector<pid_t>& pids, uint64_t generation,
                            double timeout_seconds) = 0;
  // Sends kResume to every agent quiesced by the last QuiesceAll().
  virtual void ResumeAll() = 0;

  // Checkpoint requests received since the last call (by HandleInput,
  // WaitForAgent or QuiesceAll), oldest first; clears them.
  virtual std::vector<AgentCheckpointRequest> TakeCheckpointRequests() = 0;
};

}  // namespace stasis::job
