// The job supervisor: pid 1 of the job's pid namespace (see namespace.h).
//
// Single-threaded poll loop over a signalfd (SIGCHLD and the forwarded
// signals), the agent socket (AgentServer) and the coordinator connection.
// It starts the program (launch: fork + exec with the agent preloaded;
// restart: restore::RestoreTree), reaps every process of the job
// (pid 1 adopts orphans), forwards the launcher's signals to the main
// process, and serves the coordinator's quiesce / dump / resume / kill /
// abort requests.  The job ends when no child is left; its exit code is the
// main process's.
//
// Failure policy: Stasis failing must never kill the user's program, and a
// checkpoint whose manifest may be durable is never deleted here.  If the
// coordinator connection drops, the job keeps running (with a warning), any
// quiesced process is resumed, and images already written stay (orphans
// are removed by the next prune).  If the coordinator stays silent for
// STASIS_COORD_TIMEOUT seconds in the middle of a checkpoint, the job is
// resumed the same way and the checkpoint fails.  A failed dump removes
// this generation's images and leaves the processes parked until the
// coordinator resumes or aborts; only "abort" (the coordinator knows there
// is no manifest) removes images written for a checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "job/job.h"
#include "job/namespace.h"

namespace stasis::job {

struct SupervisorConfig {
  JobSettings settings;
  std::string job_id;
  std::string socket_path;        // agent socket, < 108 bytes
  std::string program;            // name for messages and the coordinator (comm-like)
  bool restart = false;
  uint64_t generation = 0;        // generation restored from (0 for launch)
  std::vector<std::string> argv;  // launch: the program and its arguments
  std::vector<std::string> image_paths;  // restart: absolute image paths
};

// Seconds to wait for the main process's agent to say hello.
constexpr double kAgentHelloTimeout = 10;
// Seconds for all agents to report quiesced.
constexpr double kQuiesceTimeout = 30;
// Seconds the job stays quiesced waiting for the coordinator in the middle of
// a checkpoint before the supervisor gives it up (env STASIS_COORD_TIMEOUT).
constexpr double kCoordinatorStallTimeout = 60;
// Seconds to connect to the coordinator and for its hello reply.
constexpr double kCoordinatorTimeout = 10;

// Runs the supervisor in C2 (namespace.h).  Reports Started()/Failed()
// through ctx.reporter; returns the job's exit code (the main process's exit
// status, 128+signal, or 0 if the coordinator had it killed after a
// checkpoint).  1 if the job could not start (the error went to the reporter).
int RunSupervisor(const SupervisorConfig& config, InitContext& ctx);

}  // namespace stasis::job
