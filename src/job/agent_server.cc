// AgentServer: the supervisor's end of the agent protocol
// (src/agent/agent_protocol.h).  Single-threaded and poll(2)-based; every
// socket is non-blocking so a stuck agent can never stall the supervisor.
#include "job/agent_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "agent/agent_protocol.h"
#include "common/scoped_fd.h"

namespace stasis::job {
namespace {

using agent::Message;
using agent::MsgType;

double Now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::string FixedString(const char* s, size_t max) { return std::string(s, strnlen(s, max)); }

class AgentServerImpl : public AgentServer {
 public:
  AgentServerImpl(std::string path, ScopedFd fd) : path_(std::move(path)), listen_(std::move(fd)) {}
  ~AgentServerImpl() override { ::unlink(path_.c_str()); }

  const std::string& socket_path() const override { return path_; }

  std::vector<int> PollFds() const override {
    std::vector<int> fds{listen_.get()};
    for (const auto& c : conns_) fds.push_back(c->fd.get());
    return fds;
  }

  void HandleInput() override {
    Accept();
    for (auto& c : conns_) Read(*c);
    std::erase_if(conns_, [](const std::unique_ptr<Conn>& c) { return c->closed; });
  }

  std::vector<AgentInfo> Agents() const override {
    std::vector<AgentInfo> out;
    for (const auto& c : conns_)
      if (c->hello && !c->closed) out.push_back(c->info);
    return out;
  }

  bool WaitForAgent(pid_t pid, double timeout_seconds) override {
    const double deadline = Now() + timeout_seconds;
    for (;;) {
      HandleInput();
      if (Find(pid) != nullptr) return true;
      double left = deadline - Now();
      if (left <= 0) return false;
      PollOnce(left);
    }
  }

  Status QuiesceAll(const std::vector<pid_t>& pids, uint64_t generation,
                    double timeout_seconds) override {
    HandleInput();
    quiesced_.clear();
    std::vector<Conn*> targets;
    for (pid_t pid : pids) {
      Conn* c = Find(pid);
      if (c == nullptr) return Status::Error("quiesce: pid " + std::to_string(pid) + ": no agent connected");
      targets.push_back(c);
    }
    std::string error;
    std::vector<Conn*> asked;
    for (Conn* c : targets) {
      c->state = State::kQuiescing;
      c->generation = generation;
      c->failure.clear();
      if (!Send(*c, MsgType::kQuiesce, generation)) {
        c->state = State::kIdle;
        error = Describe(*c) + ": cannot send quiesce request: " + std::strerror(errno);
        break;
      }
      asked.push_back(c);
    }

    const double deadline = Now() + timeout_seconds;
    while (error.empty()) {
      bool waiting = false;
      for (Conn* c : asked) {
        if (c->state == State::kFailed) {
          error = Describe(*c) + ": quiesce failed: " + c->failure;
          break;
        }
        if (c->state == State::kGone) {
          error = Describe(*c) + ": agent disconnected during quiesce";
          break;
        }
        if (c->state == State::kQuiescing) waiting = true;
      }
      if (!error.empty() || !waiting) break;
      double left = deadline - Now();
      if (left <= 0) {
        for (Conn* c : asked)
          if (c->state == State::kQuiescing) {
            error = Describe(*c) + ": no reply to quiesce within " + std::to_string(timeout_seconds) + " s";
            break;
          }
        break;
      }
      PollOnce(left);
      ReadAll();  // keeps closed connections (as kGone) until we are done with `asked`
    }

    if (error.empty()) {
      for (Conn* c : asked) quiesced_.push_back(c->info.pid);
      std::erase_if(conns_, [](const std::unique_ptr<Conn>& c) { return c->closed; });
      return Status::Ok();
    }
    // Resume everyone still alive.  An agent that has not answered yet gets
    // kResume queued: it reads it right after it parks, so it cannot stay
    // stopped; a late kQuiesced/kFailed is then ignored (state kIdle).
    for (Conn* c : asked) {
      if (!c->closed && (c->state == State::kQuiesced || c->state == State::kQuiescing)) {
        Send(*c, MsgType::kResume, generation);
      }
      if (!c->closed) c->state = State::kIdle;
    }
    std::erase_if(conns_, [](const std::unique_ptr<Conn>& c) { return c->closed; });
    return Status::Error(error);
  }

  void ResumeAll() override {
    for (pid_t pid : quiesced_) {
      for (auto& c : conns_) {
        if (c->closed || c->info.pid != pid || c->state != State::kQuiesced) continue;
        Send(*c, MsgType::kResume, c->generation);
        c->state = State::kIdle;
      }
    }
    quiesced_.clear();
  }

  std::vector<AgentCheckpointRequest> TakeCheckpointRequests() override {
    return std::exchange(requests_, {});
  }

 private:
  enum class State { kIdle, kQuiescing, kQuiesced, kFailed, kGone };
  struct Conn {
    ScopedFd fd;
    bool hello = false;
    bool closed = false;
    uint64_t seq = 0;  // order of hello, newest wins for a pid
    AgentInfo info;
    State state = State::kIdle;
    uint64_t generation = 0;
    std::string failure;
  };

  Conn* Find(pid_t pid) {
    Conn* best = nullptr;
    for (auto& c : conns_)
      if (c->hello && !c->closed && c->info.pid == pid && (best == nullptr || c->seq > best->seq)) best = c.get();
    return best;
  }

  static std::string Describe(const Conn& c) {
    std::string s = "pid " + std::to_string(c.info.pid);
    if (!c.info.program.empty()) s += " (" + c.info.program + ")";
    return s;
  }

  void PollOnce(double seconds) {
    std::vector<pollfd> p;
    for (int fd : PollFds()) p.push_back(pollfd{fd, POLLIN, 0});
    int ms = static_cast<int>(std::min(seconds, 1.0) * 1000) + 1;
    ::poll(p.data(), p.size(), ms);
    Accept();
  }

  void ReadAll() {
    Accept();
    for (auto& c : conns_) Read(*c);
  }

  void Accept() {
    for (;;) {
      int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or an error we retry on the next poll
      auto c = std::make_unique<Conn>();
      c->fd.reset(fd);
      conns_.push_back(std::move(c));
    }
  }

  bool Send(Conn& c, MsgType type, uint64_t generation) {
    Message m;
    std::memset(&m, 0, sizeof(m));
    m.type = type;
    m.version = agent::kProtocolVersion;
    m.pid = static_cast<int32_t>(::getpid());
    m.generation = generation;
    ssize_t n = ::send(c.fd.get(), &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n == static_cast<ssize_t>(sizeof(m));
  }

  void Read(Conn& c) {
    while (!c.closed) {
      Message m;
      ssize_t n = ::recv(c.fd.get(), &m, sizeof(m), MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) {  // EOF or reset: the process exited (or exec'd)
        c.closed = true;
        if (c.state == State::kQuiescing || c.state == State::kQuiesced) c.state = State::kGone;
        return;
      }
      if (n != static_cast<ssize_t>(sizeof(m)) || m.version != agent::kProtocolVersion) continue;
      switch (m.type) {
        case MsgType::kHello:
          c.hello = true;
          c.seq = ++hello_seq_;
          c.info.pid = m.pid;
          c.info.ppid = m.ppid;
          c.info.control_block = m.control_block;
          c.info.restarted = m.restarted != 0;
          c.info.program = FixedString(m.text, sizeof(m.text));
          CloseOlder(c);
          break;
        case MsgType::kQuiesced:
          if (c.state == State::kQuiescing && m.generation == c.generation) c.state = State::kQuiesced;
          break;
        case MsgType::kFailed:
          if (c.state == State::kQuiescing && m.generation == c.generation) {
            c.state = State::kFailed;
            c.failure = FixedString(m.text, sizeof(m.text));
          }
          break;
        case MsgType::kCheckpointRequest:
          if (c.hello) {
            requests_.push_back({c.info.pid, c.info.program, FixedString(m.text, sizeof(m.text))});
          }
          break;
        default:
          break;
      }
    }
  }

  // A pid that says hello again exec'd (or was restarted): its old
  // connection is dead even if we have not seen the EOF yet.
  void CloseOlder(const Conn& fresh) {
    for (auto& c : conns_) {
      if (c.get() == &fresh || !c->hello || c->closed || c->info.pid != fresh.info.pid) continue;
      c->closed = true;
      if (c->state == State::kQuiescing || c->state == State::kQuiesced) c->state = State::kGone;
    }
  }

  std::string path_;
  ScopedFd listen_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<pid_t> quiesced_;
  std::vector<AgentCheckpointRequest> requests_;
  uint64_t hello_seq_ = 0;
};

}  // namespace

StatusOr<std::unique_ptr<AgentServer>> AgentServer::Listen(const std::string& socket_path) {
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path))
    return Status::Error(socket_path + ": not usable as a Unix socket path (empty or longer than " +
                         std::to_string(sizeof(addr.sun_path) - 1) + " bytes)");
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size());

  struct stat st;
  if (::lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Status::Error(socket_path + ": exists and is not a socket");
    if (::unlink(socket_path.c_str()) != 0) return Status::Errno(socket_path + ": removing stale socket");
  }
  ScopedFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Status::Errno(socket_path + ": socket");
  // Mode 0600 from the start: bind(2) creates the node with ~umask.
  mode_t old_mask = ::umask(077);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::umask(old_mask);
  if (rc != 0) return Status::Errno(socket_path + ": bind", err);
  if (::listen(fd.get(), 128) != 0) {
    err = errno;
    ::unlink(socket_path.c_str());
    return Status::Errno(socket_path + ": listen", err);
  }
  return std::unique_ptr<AgentServer>(new AgentServerImpl(socket_path, std::move(fd)));
}

}  // namespace stasis::job
