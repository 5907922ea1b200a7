// The coordinator (`stasis coordinator`): one per job.  A single-threaded
// poll(2) loop serving protocol.h: it tracks the supervisors of the job and
// their processes, runs the checkpoint barrier (on request or every
// `interval` seconds), writes the manifest and restart script, prunes old
// checkpoints and answers status queries.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "coordinator/protocol.h"

namespace stasis::coordinator {

struct CoordinatorOptions {
  std::string host = kDefaultHost;  // address to listen on
  uint16_t port = kDefaultPort;     // 0 = ephemeral (see Coordinator::port())
  // Job settings given on the command line win over the first supervisor's
  // hello; unset ones come from that hello.
  std::optional<std::string> ckptdir;
  std::optional<double> interval;   // seconds; 0 = no periodic checkpoints
  std::optional<uint32_t> keep;
  std::optional<std::string> compression;
  // Exit when the last supervisor disconnects, or if none connects within
  // first_connect_timeout seconds -- in both cases only while no client is
  // connected (stasis launch/restart stay connected until their job ends, so
  // a coordinator they joined cannot exit under them).
  bool exit_on_last = false;
  double first_connect_timeout = 60;
  // Limit on each barrier phase (quiesce, dump), seconds.
  double phase_timeout = 600;
  // Written into the restart script; default: this process's executable.
  std::string stasis_exe;
  // Prefix messages go to stderr with ("stasis coordinator: ...").
  bool verbose = false;
};

class Coordinator {
 public:
  // Binds host:port (SO_REUSEADDR) and listens.  Errors name the address.
  static StatusOr<std::unique_ptr<Coordinator>> Listen(const CoordinatorOptions& options);
  virtual ~Coordinator() = default;

  // The port actually bound (the ephemeral one when options.port was 0).
  virtual uint16_t port() const = 0;
  // Serves until `quit`, --exit-on-last, or Stop().  Error only if the loop
  // itself fails (poll).
  virtual Status Run() = 0;
  // Makes Run() return soon; safe from another thread or a signal handler.
  virtual void Stop() = 0;
  // SIGTERM: Run() returns once no supervisor is connected and no
  // checkpoint runs (at once if that is so now).  Slurm's scancel, walltime
  // and preemption send SIGTERM to every process of the job at once: the
  // job's final checkpoint (`stasis run`, deferred signals) must still find
  // its coordinator.  Safe from another thread or a signal handler.
  virtual void Terminate() = 0;
};

// Logs "stasis coordinator: <msg>" to stderr (the log file under --daemon).
void Log(const std::string& msg);

}  // namespace stasis::coordinator
