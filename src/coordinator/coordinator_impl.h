// Internals of the coordinator, shared by coordinator.cc (event loop, peers,
// client requests) and barrier.cc (the checkpoint barrier).  Not a public
// interface.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/scoped_fd.h"
#include "coordinator/auth.h"
#include "coordinator/coordinator.h"
#include "coordinator/credential.h"
#include "coordinator/json_line.h"
#include "image/manifest.h"

namespace stasis::coordinator::internal {

double MonotonicNow();  // seconds, steady clock
double WallNow();       // seconds since the epoch

// A request sent to a supervisor whose reply is outstanding.  Supervisors
// answer in order, so replies are matched against the front of a FIFO; the
// generation tells a stale reply (to an aborted checkpoint) from a current one.
struct SentRequest {
  std::string type;
  uint64_t generation = 0;
};

struct Peer {
  enum class Role { kNew, kClient, kSupervisor, kRejected };
  uint64_t id = 0;
  ScopedFd fd;
  std::string addr;  // "127.0.0.1:40312"
  LineBuffer in;
  std::string out;       // bytes not yet sent
  bool closing = false;  // close once `out` is flushed
  Role role = Role::kNew;
  // Supervisors only.
  std::string host, program;
  int64_t supervisor_pid = 0;
  Json processes = Json::array();
  std::deque<SentRequest> sent;
  std::optional<int> exit_status;
  // Handshake (auth.h): the hello waiting for the peer's proof.
  std::optional<Json> pending_hello;
  ServerAuthState auth;
  double accepted_at = 0;  // monotonic; unauthenticated peers time out

  // "supervisor 1234 on node1 (prog)"
  std::string Name() const;
};

struct Checkpoint {
  enum class Phase { kQuiesce, kDump, kKill };
  uint64_t generation = 0;
  bool kill = false;
  Phase phase = Phase::kQuiesce;
  std::set<uint64_t> members;  // supervisors taking part
  std::set<uint64_t> waiting;  // members yet to answer the current phase
  std::vector<uint64_t> clients;
  std::string requested_by;  // "pid 12 (prog) on host: SIGUSR1" for a job's own request
  double start = 0;     // monotonic
  double deadline = 0;  // monotonic, of the current phase
  std::vector<image::ManifestProcess> processes;
  std::vector<std::string> warnings;  // dump replies: what a restart will not restore
  Json result;  // the success reply, once the manifest is durable
};

class CoordinatorImpl : public Coordinator {
 public:
  CoordinatorImpl(const CoordinatorOptions& options, ScopedFd listen_fd, uint16_t port, ScopedFd wake_fd,
                  std::unique_ptr<Credential> credential);
  ~CoordinatorImpl() override;
  uint16_t port() const override { return port_; }
  Status Run() override;
  void Stop() override;
  void Terminate() override;

 private:
  // coordinator.cc
  void Accept();
  void ReadFrom(Peer& p);
  void WriteTo(Peer& p);
  void HandleMessage(Peer& p, const Json& msg);
  void HandleHandshake(Peer& p, const Json& msg);
  bool RefuseForeignPeer(Peer& p);  // true: refused (wrong_user sent)
  void HandleHello(Peer& p, const Json& msg);
  void HandleClientRequest(Peer& p, const Json& msg);
  void HandleSupervisorMessage(Peer& p, const Json& msg);
  void Send(Peer& p, const Json& msg);
  void SendTo(uint64_t id, const Json& msg);  // no-op if the peer is gone
  void SendRequest(Peer& p, const std::string& type, const Json& extra);
  void Disconnect(uint64_t id, const std::string& why);
  void StartJob(const Json& hello);
  Json StatusReply() const;
  size_t SupervisorCount() const;
  size_t ClientCount() const;  // connected clients and peers yet to say hello
  Peer* Find(uint64_t id);
  void CheckTimers();
  int PollTimeoutMs() const;
  void StartQuit(uint64_t client);
  void FinishQuit();
  void StopListening();
  void FlushAll();

  // flood.cc: bounds on what unauthenticated peers may cost.
  // Out of descriptors: drops `drop` (default: half) of the peers that have
  // not said hello, oldest first; backs off if there is none.
  static constexpr size_t kDropHalf = ~size_t{0};
  void PauseAccepting(const std::string& why, size_t drop = kDropHalf);
  void LimitPendingPeers();
  void ExpireHandshakes(double now);
  double NextFloodDeadline() const;

  // barrier.cc
  void RequestCheckpoint(std::optional<uint64_t> client, bool kill);
  // A supervisor passed on a process's checkpoint request (a deferred
  // signal): checkpoint and kill, merged with any running checkpoint.
  void JobRequestsStop(const std::string& requested_by);
  // Answers every await_stop client with `reply` and forgets them.
  void AnswerStopWaiters(const Json& reply);
  void StartCheckpoint(std::vector<uint64_t> clients, bool kill);
  void OnSupervisorReply(Peer& p, const SentRequest& req, const Json& reply);
  void OnSupervisorGone(uint64_t id, const std::string& why);
  void AdvanceCheckpoint();
  void FailCheckpoint(const std::string& error);
  void CompleteCheckpoint();
  void StartQueuedCheckpoint();
  void CheckpointTimeout();
  std::string WaitingNames() const;

  CoordinatorOptions opts_;
  ScopedFd listen_fd_;
  uint16_t port_;
  ScopedFd wake_fd_;  // eventfd written by Stop()
  std::unique_ptr<Credential> credential_;  // what every peer's hello must prove (auth.h)
  std::map<uint64_t, std::unique_ptr<Peer>> peers_;
  std::vector<std::unique_ptr<Peer>> graveyard_;  // disconnected this iteration
  uint64_t next_id_ = 1;
  double accept_paused_until_ = 0;  // monotonic; flood.cc
  bool stop_ = false;
  std::atomic<bool> stop_requested_{false};  // Stop() / Terminate(), read on the wake_fd_ event
  std::atomic<bool> terminate_requested_{false};
  bool terminating_ = false;  // SIGTERM: exit once the job is gone
  double started_;

  // The job.
  bool have_job_ = false;
  bool ever_had_supervisor_ = false;
  std::string job_id_;
  std::string ckptdir_;
  double interval_ = 0;
  uint32_t keep_ = 2;
  std::string compression_ = "zstd:1";
  uint64_t next_generation_ = 1;
  double timer_base_ = 0;  // interval checkpoints are due at timer_base_ + interval_

  // Checkpoints.
  std::optional<Checkpoint> ckpt_;
  bool queued_ = false;  // a request arrived during ckpt_
  bool queued_kill_ = false;
  std::vector<uint64_t> queued_clients_;
  std::vector<uint64_t> stop_waiters_;  // await_stop clients
  Json last_checkpoint_ = nullptr;
  uint64_t checkpoints_taken_ = 0;
  std::optional<std::string> last_error_;

  // quit
  bool quitting_ = false;
  uint64_t quit_client_ = 0;
  double quit_deadline_ = 0;
};

// Writes "<dir>/stasis_restart.sh" atomically, mode 0755.
Status WriteRestartScript(const std::string& dir, const std::string& stasis_exe);

}  // namespace stasis::coordinator::internal
