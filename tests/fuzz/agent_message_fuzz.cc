// libFuzzer target: the supervisor's decoding of agent messages
// (src/job/agent_server.cc, protocol src/agent/agent_protocol.h), through
// real SOCK_SEQPACKET connections to a real AgentServer: hello, quiesce
// replies, failure texts and checkpoint requests, wrong sizes and versions,
// several connections of one pid; then the queries and a quiesce round the
// supervisor would run on that state.
//
// Input: records, each one op byte:
//   op % 4 == 0  one full-size agent::Message, the next sizeof(Message) bytes
//   op % 4 == 1  a packet of op / 4 bytes (sizes the server must drop)
//   op % 4 == 2  open another connection (later packets go to it)
//   op % 4 == 3  let the server read (AgentServer::HandleInput)
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "agent/agent_protocol.h"
#include "fuzz_util.h"
#include "job/agent_server.h"

using stasis::ScopedFd;
using stasis::job::AgentServer;

namespace {

const std::string& SocketPath() {
  static const std::string path = [] {
    char dir[] = "/tmp/stasis-fuzz-agent.XXXXXX";
    if (!::mkdtemp(dir)) std::abort();
    return std::string(dir) + "/agent.sock";
  }();
  return path;
}

ScopedFd Connect(const std::string& path) {
  ScopedFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::perror("connect");
    std::abort();
  }
  return fd;
}

// Sends one packet without blocking: a full queue (net.unix.max_dgram_qlen)
// is drained by letting the server read; a connection the server closed
// (an older one of a pid that said hello again) just drops the packet.
void Send(AgentServer& s, int fd, const void* p, size_t n) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r == static_cast<ssize_t>(n)) return;
    FUZZ_CHECK(r < 0);
    if (errno != EAGAIN && errno != EWOULDBLOCK) return;  // EPIPE, ECONNRESET
    s.HandleInput();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto server = AgentServer::Listen(SocketPath());
  FUZZ_CHECK(server.ok());
  AgentServer& s = **server;
  std::vector<ScopedFd> conns;
  conns.push_back(Connect(SocketPath()));
  size_t sent = 0;
  for (size_t i = 0; i < size && sent < 200;) {  // 200 packets fit any socket buffer
    const uint8_t op = data[i++];
    switch (op % 4) {
      case 0: {
        stasis::agent::Message m;
        std::memset(&m, 0, sizeof m);
        const size_t n = std::min(sizeof m, size - i);
        std::memcpy(&m, data + i, n);
        i += n;
        Send(s, conns.back().get(), &m, sizeof m);
        ++sent;
        break;
      }
      case 1: {
        const size_t n = std::min<size_t>(op / 4, size - i);
        Send(s, conns.back().get(), data + i, n);
        i += n;
        ++sent;
        break;
      }
      case 2:
        if (conns.size() < 8) conns.push_back(Connect(SocketPath()));
        break;
      case 3:
        s.HandleInput();
        break;
    }
  }
  s.HandleInput();
  std::vector<pid_t> pids;
  for (const auto& a : s.Agents()) {
    FUZZ_CHECK(a.program.size() <= sizeof(stasis::agent::Message::text));
    pids.push_back(a.pid);
  }
  for (const auto& r : s.TakeCheckpointRequests()) FUZZ_CHECK(r.signal.size() <= 200);
  FUZZ_CHECK(s.TakeCheckpointRequests().empty());
  if (!pids.empty()) {
    FUZZ_CHECK(s.WaitForAgent(pids.front(), 0));
    // Nobody answers: must fail (not hang) naming a process, and resume.
    stasis::Status st = s.QuiesceAll(pids, 7, 0);
    FUZZ_CHECK(!st.ok() && st.message().find("pid ") != std::string::npos);
    s.ResumeAll();
  }
  return 0;
}
