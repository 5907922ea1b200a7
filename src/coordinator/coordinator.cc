#include "coordinator/coordinator.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "coordinator/coordinator_impl.h"
#include "coordinator/peer_uid.h"

namespace stasis::coordinator {

void Log(const std::string& msg) {
  std::string line = "stasis coordinator: " + msg + "\n";
  // One write(2) so lines of concurrent processes sharing a log do not mix.
  ssize_t r = ::write(2, line.data(), line.size());
  (void)r;
}

namespace internal {

double MonotonicNow() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double WallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Peer::Name() const {
  std::string s = "supervisor " + std::to_string(supervisor_pid);
  if (!host.empty()) s += " on " + host;
  if (!program.empty()) s += " (" + program + ")";
  return s;
}

CoordinatorImpl::CoordinatorImpl(const CoordinatorOptions& options, ScopedFd listen_fd, uint16_t port,
                                 ScopedFd wake_fd, std::unique_ptr<Credential> credential)
    : opts_(options), listen_fd_(std::move(listen_fd)), port_(port), wake_fd_(std::move(wake_fd)),
      credential_(std::move(credential)), started_(MonotonicNow()) {
  if (opts_.ckptdir) ckptdir_ = *opts_.ckptdir;
  if (opts_.interval) interval_ = *opts_.interval;
  if (opts_.keep) keep_ = *opts_.keep;
  if (opts_.compression) compression_ = *opts_.compression;
}

CoordinatorImpl::~CoordinatorImpl() { StopListening(); }

void CoordinatorImpl::Stop() {
  stop_requested_.store(true);
  uint64_t one = 1;
  ssize_t r = ::write(wake_fd_.get(), &one, sizeof one);
  (void)r;
}

void CoordinatorImpl::Terminate() {
  terminate_requested_.store(true);
  uint64_t one = 1;
  ssize_t r = ::write(wake_fd_.get(), &one, sizeof one);
  (void)r;
}

Peer* CoordinatorImpl::Find(uint64_t id) {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second.get();
}

size_t CoordinatorImpl::SupervisorCount() const {
  size_t n = 0;
  for (const auto& [id, p] : peers_) n += p->role == Peer::Role::kSupervisor;
  return n;
}

Status CoordinatorImpl::Run() {
  while (!stop_) {
    graveyard_.clear();
    std::vector<pollfd> fds;
    std::vector<uint64_t> ids;  // parallel to fds; 0 = listen / wake
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    ids.push_back(0);
    // After EMFILE/ENFILE the listener stays readable: not polled while
    // backing off, else the loop spins (flood.cc).
    if (listen_fd_ && MonotonicNow() >= accept_paused_until_) {
      fds.push_back({listen_fd_.get(), POLLIN, 0});
      ids.push_back(0);
    }
    for (const auto& [id, p] : peers_) {
      short ev = POLLIN;
      if (!p->out.empty()) ev |= POLLOUT;
      fds.push_back({p->fd.get(), ev, 0});
      ids.push_back(id);
    }
    int r = ::poll(fds.data(), fds.size(), PollTimeoutMs());
    if (r < 0 && errno == EINVAL && fds.size() > 2) {
      // More descriptors than RLIMIT_NOFILE (lowered under us): shed just
      // enough idle peers, oldest first, rather than exit (flood.cc).
      rlimit rl{};
      getrlimit(RLIMIT_NOFILE, &rl);
      const size_t fit = rl.rlim_cur > 8 ? static_cast<size_t>(rl.rlim_cur) - 8 : 0;
      PauseAccepting(Status::Errno("poll").message(), fds.size() > fit ? fds.size() - fit : 1);
      continue;
    }
    if (r < 0 && errno != EINTR) return Status::Errno("poll");
    if (r > 0) {
      if (fds[0].revents) {
        uint64_t v;
        ssize_t n = ::read(wake_fd_.get(), &v, sizeof v);
        (void)n;
        if (stop_requested_.load()) {
          stop_ = true;
          break;
        }
        if (terminate_requested_.exchange(false) && !terminating_) {
          terminating_ = true;
          if (SupervisorCount() > 0 || ckpt_) {
            Log("SIGTERM: staying until the job's checkpoint is complete and the job has ended");
          }
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        if (ids[i] == 0) {
          if (listen_fd_ && fds[i].fd == listen_fd_.get()) Accept();
          continue;
        }
        // Handlers may disconnect any peer; look each one up again.
        if (Peer* p = Find(ids[i]); p && (fds[i].revents & POLLOUT)) WriteTo(*p);
        if (Peer* p = Find(ids[i]); p && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) ReadFrom(*p);
      }
    }
    std::vector<uint64_t> done;
    for (const auto& [id, p] : peers_) {
      if (p->closing && p->out.empty()) done.push_back(id);
    }
    for (uint64_t id : done) Disconnect(id, "closed");
    CheckTimers();
  }
  FlushAll();
  return Status::Ok();
}

int CoordinatorImpl::PollTimeoutMs() const {
  const double now = MonotonicNow();
  double next = now + 3600;
  if (ckpt_) next = std::min(next, ckpt_->deadline);
  if (quitting_) next = std::min(next, quit_deadline_);
  if (!ckpt_ && have_job_ && interval_ > 0) next = std::min(next, timer_base_ + interval_);
  if (opts_.exit_on_last && !ever_had_supervisor_) next = std::min(next, started_ + opts_.first_connect_timeout);
  next = std::min(next, NextFloodDeadline());
  double ms = std::ceil((next - now) * 1000);
  return ms < 0 ? 0 : static_cast<int>(std::min(ms, 3600e3));
}

void CoordinatorImpl::CheckTimers() {
  const double now = MonotonicNow();
  if (terminating_ && !stop_ && !ckpt_ && SupervisorCount() == 0) {
    Log("SIGTERM: no job left; exiting");
    StopListening();
    stop_ = true;
    return;
  }
  ExpireHandshakes(now);
  if (ckpt_ && now >= ckpt_->deadline) CheckpointTimeout();
  if (quitting_ && (now >= quit_deadline_ || SupervisorCount() == 0)) FinishQuit();
  if (!ckpt_ && !quitting_ && have_job_ && interval_ > 0 && SupervisorCount() > 0 &&
      now >= timer_base_ + interval_) {
    RequestCheckpoint(std::nullopt, false);
  }
  // A connected client (stasis launch/restart holds one until its job ends)
  // keeps the coordinator alive: a supervisor is about to join.
  if (opts_.exit_on_last && !stop_ && !ckpt_ && !quitting_ && ClientCount() == 0) {
    if (ever_had_supervisor_ && SupervisorCount() == 0) {
      Log("the last supervisor has left; exiting");
      StopListening();
      stop_ = true;
    } else if (!ever_had_supervisor_ && now >= started_ + opts_.first_connect_timeout) {
      Log("no supervisor connected within " + std::to_string(static_cast<int>(opts_.first_connect_timeout)) +
          " s; exiting");
      StopListening();
      stop_ = true;
    }
  }
}

size_t CoordinatorImpl::ClientCount() const {
  size_t n = 0;
  for (const auto& [id, p] : peers_) n += p->role == Peer::Role::kClient || p->role == Peer::Role::kNew;
  return n;
}

void CoordinatorImpl::StopListening() {
  // The credential goes first: once the port is free a new coordinator may
  // write its own.
  if (listen_fd_ && credential_) credential_->Retire();
  listen_fd_.reset();
}

void CoordinatorImpl::Accept() {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ScopedFd fd(::accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!fd) {
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      PauseAccepting(Status::Errno("accept").message());
    } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
      Log(Status::Errno("accept").message());
    }
    return;
  }
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto peer = std::make_unique<Peer>();
  peer->id = next_id_++;
  peer->fd = std::move(fd);
  peer->accepted_at = MonotonicNow();
  auto ep = EndpointFromSockaddr(ss);
  peer->addr = ep ? EndpointToString(*ep) : "?";
  peers_[peer->id] = std::move(peer);
  // The peer's uid is looked up (a /proc/net/tcp scan) only once it says
  // hello; an idle connection costs a slot among the pending ones only.
  LimitPendingPeers();
}

// Only the coordinator's own user may drive the job (peer_uid.h).  A peer of
// another uid gets one error line; it is then half-closed (WriteTo), its
// input drained and the connection closed at its EOF, so the error is not
// lost to a reset.
bool CoordinatorImpl::RefuseForeignPeer(Peer& p) {
  auto uid = PeerUid(p.fd.get());
  if (uid.ok() && *uid == ::getuid()) return false;
  std::string who = uid.ok() ? "uid " + std::to_string(*uid) : uid.status().message();
  std::string err = "the Stasis coordinator at port " + std::to_string(port_) + " belongs to uid " +
                    std::to_string(::getuid()) + " and refuses connections from " + who;
  Log("refused connection from " + p.addr + ": " + who);
  p.role = Peer::Role::kRejected;
  Send(p, {{"ok", false}, {"error", err}, {"error_code", "wrong_user"}, {"uid", ::getuid()}});
  return true;
}

void CoordinatorImpl::ReadFrom(Peer& p) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(p.fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      Disconnect(p.id, n == 0 ? "disconnected" : Status::Errno("connection lost").message());
      return;
    }
    if (p.role == Peer::Role::kRejected) continue;
    p.in.Append(buf, static_cast<size_t>(n));
    if (static_cast<size_t>(n) < sizeof buf) break;
  }
  const uint64_t id = p.id;
  while (Peer* q = Find(id)) {
    if (q->in.Overflowed()) {
      Disconnect(id, "sent a line longer than 16 MiB");
      return;
    }
    auto line = q->in.NextLine();
    if (!line) break;
    if (line->empty()) continue;
    auto msg = DecodeLine(*line);
    if (!msg.ok()) {
      Send(*q, {{"ok", false}, {"error", msg.status().message()}});
      continue;
    }
    HandleMessage(*q, *msg);
  }
}

void CoordinatorImpl::WriteTo(Peer& p) {
  while (!p.out.empty()) {
    ssize_t n = ::send(p.fd.get(), p.out.data(), p.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) {
      Disconnect(p.id, Status::Errno("send").message());
      return;
    }
    p.out.erase(0, static_cast<size_t>(n));
  }
  if (p.role == Peer::Role::kRejected) ::shutdown(p.fd.get(), SHUT_WR);
  if (p.closing) Disconnect(p.id, "closed");
}

void CoordinatorImpl::Send(Peer& p, const Json& msg) {
  p.out += EncodeLine(msg);
  // Try at once; poll(2) picks up whatever does not fit.
  WriteTo(p);
}

void CoordinatorImpl::SendTo(uint64_t id, const Json& msg) {
  if (Peer* p = Find(id)) Send(*p, msg);
}

void CoordinatorImpl::SendRequest(Peer& p, const std::string& type, const Json& extra) {
  Json msg = extra;
  msg["type"] = type;
  p.sent.push_back({type, ckpt_ ? ckpt_->generation : 0});
  Send(p, msg);
}

void CoordinatorImpl::Disconnect(uint64_t id, const std::string& why) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  // Callers up the stack may still hold a reference: free it next iteration.
  graveyard_.push_back(std::move(it->second));
  Peer* p = graveyard_.back().get();
  peers_.erase(it);
  if (p->role != Peer::Role::kSupervisor) return;
  Log(p->Name() + " " + why);
  OnSupervisorGone(id, p->Name() + " " + why);
  if (SupervisorCount() == 0) {
    have_job_ = false;  // the next supervisor starts a new job
    AnswerStopWaiters({{"ok", false}, {"stopped", false}, {"error", "the job ended without a checkpoint-and-stop"}});
  }
}

void CoordinatorImpl::HandleMessage(Peer& p, const Json& msg) {
  const std::string type = GetString(msg, "type");
  if (p.role == Peer::Role::kNew) {
    HandleHandshake(p, msg);
  } else if (p.role == Peer::Role::kClient) {
    HandleClientRequest(p, msg);
  } else if (p.role == Peer::Role::kSupervisor) {
    HandleSupervisorMessage(p, msg);
  }
}

// hello -> challenge -> auth -> HandleHello (auth.h).
void CoordinatorImpl::HandleHandshake(Peer& p, const Json& msg) {
  auto refuse = [&](const std::string& err, const char* code) {
    Send(p, {{"ok", false}, {"error", err}, {"error_code", code}});
    p.closing = true;
  };
  if (!p.pending_hello) {
    if (GetString(msg, "type") != "hello") return refuse("protocol error: the first message must be a hello", "protocol");
    if (RefuseForeignPeer(p)) return;
    const int version = static_cast<int>(GetNumber(msg, "version", -1));
    if (version != kProtocolVersion) {
      return refuse("protocol version " + std::to_string(version) + " is not supported by this coordinator (" +
                        std::to_string(kProtocolVersion) + "); use the same stasis binary for the whole job",
                    "version");
    }
    auto challenge = MakeChallenge(msg, *credential_, &p.auth);
    if (!challenge.ok()) return refuse(challenge.status().message(), "auth_failed");
    p.pending_hello = msg;
    Send(p, *challenge);
    return;
  }
  if (Status st = CheckAuthReply(msg, *credential_, p.auth); !st.ok()) {
    Log("refused connection from " + p.addr + ": " + st.message());
    return refuse(st.message(), "auth_failed");
  }
  Json hello = std::move(*p.pending_hello);
  p.pending_hello.reset();
  HandleHello(p, hello);
}

void CoordinatorImpl::HandleHello(Peer& p, const Json& msg) {
  const int version = GetInteger<int>(msg, "version", -1);
  if (version != kProtocolVersion) {
    Send(p, {{"ok", false},
             {"error", "protocol version " + std::to_string(version) + " is not supported by this coordinator (" +
                           std::to_string(kProtocolVersion) + "); use the same stasis binary for the whole job"}});
    p.closing = true;
    return;
  }
  const std::string role = GetString(msg, "role");
  if (role == "client") {
    p.role = Peer::Role::kClient;
    Send(p, {{"ok", true}, {"job_id", have_job_ ? Json(job_id_) : Json(nullptr)}});
    return;
  }
  if (role != "supervisor") {
    Send(p, {{"ok", false}, {"error", "protocol error: unknown role '" + role + "'"}});
    p.closing = true;
    return;
  }
  if (have_job_ && GetString(msg, "job_id") != job_id_) {
    // One coordinator serves one job: a second job here would get the same
    // pids as the first (both start in fresh pid namespaces at the same
    // base) and be checkpointed into one unrestartable set of images.
    Send(p, {{"ok", false},
             {"error", "the coordinator at port " + std::to_string(port_) + " already serves job " +
                           job_id_ + "; run the new job with its own coordinator (--coord-port PORT, "
                           "-p 0 for any free port, or STASIS_COORD_PORT) or end that job first "
                           "(stasis quit)"}});
    p.closing = true;
    return;
  }
  p.role = Peer::Role::kSupervisor;
  p.host = GetString(msg, "host");
  p.program = GetString(msg, "program");
  p.supervisor_pid = GetInteger<int64_t>(msg, "supervisor_pid");
  if (!have_job_) StartJob(msg);
  next_generation_ = std::max<uint64_t>(next_generation_, GetInteger<uint64_t>(msg, "generation") + 1);
  ever_had_supervisor_ = true;
  Log(p.Name() + " joined job " + job_id_ + (GetBool(msg, "restarted") ? " (restarted)" : ""));
  Send(p, {{"ok", true}, {"job_id", job_id_}});
}

void CoordinatorImpl::StartJob(const Json& hello) {
  have_job_ = true;
  job_id_ = GetString(hello, "job_id");
  if (job_id_.empty()) {
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) r = static_cast<uint32_t>(::getpid() ^ ::time(nullptr));
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", r);
    job_id_ = buf;
  }
  ckptdir_ = opts_.ckptdir ? *opts_.ckptdir : GetString(hello, "ckptdir");
  if (ckptdir_.empty()) ckptdir_ = std::filesystem::current_path().string();
  std::error_code ec;
  auto abs = std::filesystem::absolute(ckptdir_, ec);
  if (!ec) ckptdir_ = abs.lexically_normal().string();
  interval_ = opts_.interval ? *opts_.interval : GetNumber(hello, "interval", 0);
  keep_ = opts_.keep ? *opts_.keep : GetInteger<uint32_t>(hello, "keep", 2);
  if (keep_ == 0) keep_ = 1;  // pruning must never remove the checkpoint just taken
  compression_ = opts_.compression ? *opts_.compression : GetString(hello, "compression", "zstd:1");
  next_generation_ = image::HighestGeneration(ckptdir_) + 1;
  timer_base_ = MonotonicNow();
}

void CoordinatorImpl::HandleSupervisorMessage(Peer& p, const Json& msg) {
  const std::string type = GetString(msg, "type");
  if (type == "processes") {
    auto it = msg.find("processes");
    if (it != msg.end() && it->is_array()) p.processes = *it;
    return;
  }
  if (type == "checkpoint_request") {
    std::string who = "pid " + std::to_string(GetInteger<int64_t>(msg, "pid")) + " (" +
                      GetString(msg, "program") + ")";
    if (!p.host.empty()) who += " on " + p.host;
    who += " received SIG" + GetString(msg, "signal", "?");
    Log(who + ": checkpointing and stopping the job");
    JobRequestsStop(who);
    return;
  }
  if (type == "exited") {
    p.exit_status = GetInteger<int>(msg, "status");
    if (opts_.verbose) Log(p.Name() + ": the program exited with status " + std::to_string(*p.exit_status));
    return;
  }
  if (!msg.contains("ok")) {
    Log(p.Name() + ": ignoring unexpected message '" + type + "'");
    return;
  }
  if (p.sent.empty()) {
    Log(p.Name() + ": ignoring a reply to no request ('" + type + "')");
    return;
  }
  SentRequest req = p.sent.front();
  p.sent.pop_front();
  if (req.type != type) Log(p.Name() + ": reply '" + type + "' to request '" + req.type + "'");
  OnSupervisorReply(p, req, msg);
}

void CoordinatorImpl::HandleClientRequest(Peer& p, const Json& msg) {
  const std::string type = GetString(msg, "type");
  if (type == "checkpoint") {
    if (quitting_) {
      Send(p, {{"ok", false}, {"error", "the job is being shut down ('stasis quit')"}});
    } else if (SupervisorCount() == 0) {
      Send(p, {{"ok", false}, {"error", "no job is running under this coordinator (no supervisor connected)"}});
    } else {
      RequestCheckpoint(p.id, GetBool(msg, "kill"));
    }
  } else if (type == "status") {
    Send(p, StatusReply());
  } else if (type == "set_interval") {
    auto it = msg.find("interval");
    if (it == msg.end() || !it->is_number() || it->get<double>() < 0 || !std::isfinite(it->get<double>())) {
      Send(p, {{"ok", false}, {"error", "set_interval: \"interval\" must be a number of seconds >= 0"}});
      return;
    }
    interval_ = it->get<double>();
    opts_.interval = interval_;  // survives the next job's hello too
    timer_base_ = MonotonicNow();
    Log("checkpoint interval set to " + std::to_string(interval_) + " s");
    Send(p, {{"ok", true}});
  } else if (type == "await_stop") {
    stop_waiters_.push_back(p.id);  // answered by CompleteCheckpoint or Disconnect
  } else if (type == "quit") {
    StartQuit(p.id);
  } else {
    Send(p, {{"ok", false}, {"error", "protocol error: unknown request '" + type + "'"}});
  }
}

Json CoordinatorImpl::StatusReply() const {
  Json procs = Json::array();
  for (const auto& [id, p] : peers_) {
    if (p->role != Peer::Role::kSupervisor) continue;
    for (const auto& proc : p->processes) {
      if (!proc.is_object()) continue;
      Json e = proc;
      e["host"] = p->host;
      e["supervisor_pid"] = p->supervisor_pid;
      procs.push_back(std::move(e));
    }
  }
  const char* state = quitting_ ? "quitting" : ckpt_ ? "checkpointing" : have_job_ ? "running" : "idle";
  return {{"ok", true},
          {"job_id", have_job_ ? Json(job_id_) : Json(nullptr)},
          {"state", state},
          {"interval", interval_},
          {"ckptdir", ckptdir_},
          {"keep", keep_},
          {"compression", compression_},
          {"supervisors", SupervisorCount()},
          {"processes", procs},
          {"last_checkpoint", last_checkpoint_},
          {"checkpoints_taken", checkpoints_taken_},
          {"last_error", last_error_ ? Json(*last_error_) : Json(nullptr)}};
}

void CoordinatorImpl::StartQuit(uint64_t client) {
  if (quitting_) {
    SendTo(client, {{"ok", false}, {"error", "already shutting down"}});
    return;
  }
  Log("quit requested: killing the job");
  if (ckpt_) FailCheckpoint("checkpoint " + std::to_string(ckpt_->generation) + " abandoned: 'stasis quit'");
  quitting_ = true;
  quit_client_ = client;
  quit_deadline_ = MonotonicNow() + 10;
  for (auto& [id, p] : peers_) {
    if (p->role == Peer::Role::kSupervisor) SendRequest(*p, "kill", Json::object());
  }
}

void CoordinatorImpl::FinishQuit() {
  quitting_ = false;
  // Stop listening before the reply so that a `stasis launch` right after
  // `stasis quit` starts a fresh coordinator instead of joining this one.
  StopListening();
  SendTo(quit_client_, {{"ok", true}});
  stop_ = true;
}

void CoordinatorImpl::FlushAll() {
  // Best effort, bounded: replies queued just before exiting (quit,
  // checkpoint --kill) must reach the client.
  const double deadline = MonotonicNow() + 5;
  for (auto& [id, p] : peers_) {
    while (!p->out.empty() && MonotonicNow() < deadline) {
      pollfd pf{p->fd.get(), POLLOUT, 0};
      if (::poll(&pf, 1, 100) <= 0) continue;
      ssize_t n = ::send(p->fd.get(), p->out.data(), p->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) break;
      p->out.erase(0, static_cast<size_t>(n));
    }
  }
}

}  // namespace internal

StatusOr<std::unique_ptr<Coordinator>> Coordinator::Listen(const CoordinatorOptions& options) {
  const std::string where = options.host + ":" + std::to_string(options.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int gai = getaddrinfo(options.host.c_str(), std::to_string(options.port).c_str(), &hints, &res);
  if (gai != 0) return Status::Error("listen on " + where + ": " + gai_strerror(gai));
  ScopedFd fd;
  Status last = Status::Error("listen on " + where + ": no address");
  for (addrinfo* ai = res; ai && !fd; ai = ai->ai_next) {
    ScopedFd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!s) {
      last = Status::Errno("listen on " + where + ": socket");
      continue;
    }
    int one = 1;
    setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last = Status::Errno("listen on " + where + ": bind");
      continue;
    }
    if (::listen(s.get(), 64) != 0) {
      last = Status::Errno("listen on " + where + ": listen");
      continue;
    }
    fd = std::move(s);
  }
  freeaddrinfo(res);
  if (!fd) return last;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return Status::Errno("getsockname");
  auto ep = EndpointFromSockaddr(ss);
  const uint16_t port = ep ? ep->port : options.port;
  // Created once the port is known and before anyone is accepted (auth.h).
  ASSIGN_OR_RETURN(std::string secret_path, LocalSecret::PathFor(port));
  ASSIGN_OR_RETURN(std::unique_ptr<Credential> credential, LocalSecret::Create(secret_path));
  ScopedFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return Status::Errno("eventfd");
  CoordinatorOptions opts = options;
  if (opts.stasis_exe.empty()) {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) opts.stasis_exe = exe.string();
  }
  return std::unique_ptr<Coordinator>(
      new internal::CoordinatorImpl(opts, std::move(fd), port, std::move(wake), std::move(credential)));
}

}  // namespace stasis::coordinator
