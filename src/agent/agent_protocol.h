// Messages between the agent in each job process and the job's supervisor
// (the `stasis` init process, pid 1 of the job's pid namespace).  Transport:
// a SOCK_SEQPACKET Unix socket whose path the supervisor puts in
// STASIS_SUPERVISOR_SOCKET (and, after a restart, in
// ControlBlock::restart.supervisor_socket).  One message per packet, fixed
// size, native byte order (both ends are on the same host).
//
// Checkpoint sequence for one process:
//   supervisor -> agent   kQuiesce{generation}
//   agent: signals every thread; each parks in the handler and fills its
//          ThreadRecord; the agent's own thread parks last and sends
//   agent -> supervisor   kQuiesced{n_threads}      (or kFailed{reason})
//   supervisor: dumps the process from outside (/proc/<pid>/mem, maps, fds)
//   supervisor -> agent   kResume                   (or SIGKILL for --kill)
//   agent: wakes all threads; they return from the handler.
// After a restart the agent reconnects and sends kHello with restarted=1.
#pragma once

#include <stdint.h>

namespace stasis::agent {

constexpr uint32_t kProtocolVersion = 1;
constexpr const char* kSupervisorSocketEnv = "STASIS_SUPERVISOR_SOCKET";
constexpr const char* kCheckpointSignalEnv = "STASIS_SIGCKPT";
// Comma-separated signals ("USR1,TERM", names or numbers) the agent defers
// in programs that keep their default action, until a checkpoint ends the
// process; the first delivery also sends kCheckpointRequest (set by `stasis
// run` to its checkpoint signals; deferred_signals.cc).
constexpr const char* kDeferSignalsEnv = "STASIS_DEFER_SIGNALS";
// Default checkpoint signal: SIGRTMAX-2, rarely used by programs (DMTCP uses
// SIGUSR2 by default; a real-time signal collides less with user code).
constexpr int kDefaultCheckpointSignal = 62;

enum class MsgType : uint32_t {
  kHello = 1,     // agent -> supervisor, on connect
  kQuiesce = 2,   // supervisor -> agent
  kQuiesced = 3,  // agent -> supervisor
  kFailed = 4,    // agent -> supervisor: quiesce failed, process resumed
  kResume = 5,    // supervisor -> agent
  // agent -> supervisor: the process received a deferred signal (see
  // kDeferSignalsEnv) and asks for "checkpoint, then end the job"; text:
  // the signal's name ("USR1").  No reply; the supervisor passes it on to
  // the coordinator, which merges concurrent requests into one checkpoint.
  kCheckpointRequest = 6,
};

struct Message {
  MsgType type;
  uint32_t version;         // kProtocolVersion
  int32_t pid;              // sender's pid (agent) in the job's pid namespace
  int32_t ppid;
  uint32_t restarted;       // kHello: 1 if this process was just restarted
  int32_t n_threads;        // kQuiesced
  uint64_t generation;      // kQuiesce / kQuiesced
  uint64_t control_block;   // kHello: address of the ControlBlock
  char text[200];           // kFailed: reason; kHello: program name (comm)
};

}  // namespace stasis::agent
