// Sockets; see sockets.h.  Sources: socket(7), unix(7), tcp(7), ip(7),
// sock_diag(7), pidfd_open(2), pidfd_getfd(2), ioctl SIOCINQ/SIOCOUTQ.
#include "state/sockets.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

namespace stasis::state {
namespace {

using image::SocketInfo;
using State = SocketInfo::State;

std::string Fd(int fd) { return "fd " + std::to_string(fd); }

struct UnixDiag {
  uint64_t peer = 0;
  uint8_t shutdown = 0;
};

// Every AF_UNIX socket of this network namespace: inode -> peer, shutdown
// (sock_diag(7) dump with UDIAG_SHOW_PEER).
StatusOr<std::map<uint64_t, UnixDiag>> DumpUnixDiag() {
  ScopedFd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) return Status::Errno("sock_diag: socket(AF_NETLINK)");
  struct {
    nlmsghdr nlh;
    unix_diag_req req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = AF_UNIX;
  msg.req.udiag_states = ~0u;
  msg.req.udiag_show = UDIAG_SHOW_PEER;
  if (::send(nl.get(), &msg, sizeof msg, 0) != static_cast<ssize_t>(sizeof msg))
    return Status::Errno("sock_diag: send");
  std::map<uint64_t, UnixDiag> out;
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = ::recv(nl.get(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Errno("sock_diag: recv");
    if (n == 0) return out;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) return out;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        return Status::Errno("sock_diag: dump of Unix sockets", -e->error);
      }
      auto* m = static_cast<unix_diag_msg*>(NLMSG_DATA(h));
      UnixDiag d;
      int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
      for (auto* a = reinterpret_cast<rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == UNIX_DIAG_PEER) d.peer = *static_cast<uint32_t*>(RTA_DATA(a));
        if (a->rta_type == UNIX_DIAG_SHUTDOWN) d.shutdown = *static_cast<uint8_t*>(RTA_DATA(a));
      }
      out[m->udiag_ino] = d;
    }
  }
}

int GetInt(int fd, int level, int opt) {
  int v = 0;
  socklen_t len = sizeof v;
  return ::getsockopt(fd, level, opt, &v, &len) == 0 ? v : 0;
}

std::vector<uint8_t> Address(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
               : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (r != 0) return {};
  auto* p = reinterpret_cast<uint8_t*>(&ss);
  return std::vector<uint8_t>(p, p + len);
}

// A Unix address with a name (path or abstract), not just the family.
bool Named(const std::vector<uint8_t>& addr) { return addr.size() > sizeof(sa_family_t); }

bool IsInet(int family) { return family == AF_INET || family == AF_INET6; }

// The unread receive queue, without consuming it.
Status PeekQueue(int fd, SocketInfo* s, const std::string& who) {
  if (s->type == SOCK_STREAM) {
    int inq = 0;
    if (::ioctl(fd, SIOCINQ, &inq) != 0) return Status::Errno(who + ": SIOCINQ");
    if (inq <= 0) return Status::Ok();
    std::vector<uint8_t> buf(static_cast<size_t>(inq));
    ssize_t n;
    do n = ::recv(fd, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
    if (n < 0) return Status::Errno(who + ": MSG_PEEK of " + std::to_string(inq) + " queued bytes");
    buf.resize(static_cast<size_t>(n));
    s->queued.push_back(std::move(buf));
    return Status::Ok();
  }
  // Messages: peek one after the other by advancing the peek offset.
  int old_off = -1;
  socklen_t len = sizeof old_off;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &old_off, &len) != 0) return Status::Errno(who + ": SO_PEEK_OFF");
  int zero = 0;
  if (::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) != 0) return Status::Errno(who + ": SO_PEEK_OFF");
  std::vector<uint8_t> buf(1 << 17);
  Status st = Status::Ok();
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (errno != EAGAIN) st = Status::Errno(who + ": MSG_PEEK");
      break;
    }
    if (static_cast<size_t>(n) > buf.size()) {
      st = Status::Error(who + ": a queued message of " + std::to_string(n) + " bytes is too large to save");
      break;
    }
    s->queued.emplace_back(buf.begin(), buf.begin() + n);
    if (n == 0) break;  // an empty message does not move the offset: stop rather than loop
  }
  (void)::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &old_off, sizeof old_off);
  return st;
}

// Waits (up to ~1 s) until a connected TCP socket has sent everything; the
// receiver is parked too, so what stays unsent cannot be saved.  Data held
// back by Nagle's algorithm or TCP_CORK is pushed out first (setting
// TCP_NODELAY pushes pending frames, tcp(7)); the options are put back.
Status WaitSendQueueEmpty(int fd, const std::string& who) {
  int outq = 0;
  if (::ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0) {
    const int nodelay = GetInt(fd, IPPROTO_TCP, TCP_NODELAY), cork = GetInt(fd, IPPROTO_TCP, TCP_CORK);
    int one = 1, zero = 0;
    if (cork) ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!nodelay) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &zero, sizeof zero);
    if (cork) ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
  }
  for (int i = 0; i < 100; ++i) {
    if (::ioctl(fd, SIOCOUTQ, &outq) != 0) return Status::Errno(who + ": SIOCOUTQ");
    if (outq == 0) return Status::Ok();
    struct timespec ts = {0, 10 * 1000 * 1000};
    ::nanosleep(&ts, nullptr);
  }
  return Status::Error(who + ": " + std::to_string(outq) +
                       " bytes are still in the TCP send queue (the receiver's buffer is full); "
                       "they cannot be saved, try the checkpoint again");
}

Status ApplyFlags(int fd, const SocketInfo& s, int flags, const std::string& who) {
  if ((flags & O_NONBLOCK) && ::fcntl(fd, F_SETFL, O_NONBLOCK) != 0) return Status::Errno(who + ": O_NONBLOCK");
  int one = 1;
  if (s.reuse_addr) (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (s.keep_alive) (void)::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  if (s.no_delay && IsInet(s.family) && s.type == SOCK_STREAM)
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return Status::Ok();
}

// Sends `s`'s saved receive queue from `from` (the other end) so that `s`'s
// end reads it again.  The data fitted before, so it fits now.
Status Refill(int from, const SocketInfo& s, const std::string& who) {
  size_t total = 0;
  for (const auto& m : s.queued) total += m.size();
  if (total == 0) return Status::Ok();
  if (IsInet(s.family)) {  // a new TCP connection starts with small buffers
    int want = static_cast<int>(std::min<size_t>(total, 1 << 24));
    ::setsockopt(from, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
  }
  for (const auto& m : s.queued) {
    size_t off = 0;
    do {
      ssize_t n = ::send(from, m.data() + off, m.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        struct pollfd pfd = {from, POLLOUT, 0};
        if (::poll(&pfd, 1, 2000) == 1) continue;
        return Status::Error(who + ": the " + std::to_string(total) +
                             " bytes that were queued do not fit into the new connection");
      }
      if (n < 0) return Status::Errno(who + ": refilling " + std::to_string(m.size()) + " queued bytes");
      off += static_cast<size_t>(n);
    } while (off < m.size() && s.type == SOCK_STREAM);
  }
  return Status::Ok();
}

Status Bind(int fd, const std::vector<uint8_t>& addr, const std::string& who) {
  if (::bind(fd, reinterpret_cast<const sockaddr*>(addr.data()), static_cast<socklen_t>(addr.size())) == 0)
    return Status::Ok();
  return Status::Errno(who + ": bind to " + SocketAddressText(addr));
}

// Prepares a Unix socket path for bind: a socket file left behind by the
// checkpointed run is removed (never other files), and missing parent
// directories (a per-job temporary directory on a node-local $TMPDIR) are
// created, mode 0700.
void PrepareSocketPath(const std::vector<uint8_t>& addr) {
  if (addr.size() <= sizeof(sa_family_t)) return;
  const auto* un = reinterpret_cast<const sockaddr_un*>(addr.data());
  if (un->sun_path[0] == '\0') return;  // abstract
  std::string path(un->sun_path, strnlen(un->sun_path, addr.size() - sizeof(sa_family_t)));
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  for (size_t at = path.find('/', 1); at != std::string::npos; at = path.find('/', at + 1))
    (void)::mkdir(path.substr(0, at).c_str(), 0700);  // EEXIST for those that exist
}

// An inet address with port 0 (same IP).
std::vector<uint8_t> AnyPort(std::vector<uint8_t> addr) {
  auto* sa = reinterpret_cast<sockaddr*>(addr.data());
  if (sa->sa_family == AF_INET) reinterpret_cast<sockaddr_in*>(addr.data())->sin_port = 0;
  if (sa->sa_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(addr.data())->sin6_port = 0;
  return addr;
}

// A connected TCP pair on loopback: {near, far}.
StatusOr<std::array<ScopedFd, 2>> LoopbackPair(int family, const std::string& who) {
  std::vector<uint8_t> lo;
  if (family == AF_INET6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    lo.assign(reinterpret_cast<uint8_t*>(&a), reinterpret_cast<uint8_t*>(&a) + sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lo.assign(reinterpret_cast<uint8_t*>(&a), reinterpret_cast<uint8_t*>(&a) + sizeof a);
  }
  ScopedFd l(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!l) return Status::Errno(who + ": socket");
  RETURN_IF_ERROR(Bind(l.get(), lo, who));
  if (::listen(l.get(), 1) != 0) return Status::Errno(who + ": listen");
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  ScopedFd c(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!c) return Status::Errno(who + ": socket");
  if (::connect(c.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return Status::Errno(who + ": connect");
  ScopedFd far(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!far) return Status::Errno(who + ": accept");
  return std::array<ScopedFd, 2>{std::move(c), std::move(far)};
}

// For an outside connection: the far end of a loopback pair is closed with
// SO_LINGER 0, which sends RST, so the program's next read or write fails
// with ECONNRESET.
StatusOr<ScopedFd> ResetTcpSocket(int family, const std::string& who) {
  ASSIGN_OR_RETURN(auto pair, LoopbackPair(family, who));
  struct linger lg = {1, 0};
  ::setsockopt(pair[1].get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  pair[1].reset();
  return std::move(pair[0]);
}

}  // namespace

uint64_t SocketInode(const std::string& path) {
  const std::string prefix = "socket:[";
  if (path.compare(0, prefix.size(), prefix) != 0 || path.empty() || path.back() != ']') return 0;
  char* end = nullptr;
  unsigned long long ino = std::strtoull(path.c_str() + prefix.size(), &end, 10);
  return end != nullptr && *end == ']' ? ino : 0;
}

std::string SocketAddressText(const std::vector<uint8_t>& addr) {
  if (addr.size() < sizeof(sa_family_t)) return "(none)";
  sa_family_t fam;
  std::memcpy(&fam, addr.data(), sizeof fam);
  char ip[INET6_ADDRSTRLEN] = "";
  if (fam == AF_INET && addr.size() >= sizeof(sockaddr_in)) {
    sockaddr_in a;
    std::memcpy(&a, addr.data(), sizeof a);
    ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
  }
  if (fam == AF_INET6 && addr.size() >= sizeof(sockaddr_in6)) {
    sockaddr_in6 a;
    std::memcpy(&a, addr.data(), sizeof a);
    ::inet_ntop(AF_INET6, &a.sin6_addr, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(a.sin6_port));
  }
  if (fam == AF_UNIX) {
    if (addr.size() <= sizeof(sa_family_t)) return "(unnamed)";
    const char* p = reinterpret_cast<const char*>(addr.data()) + sizeof(sa_family_t);
    size_t n = addr.size() - sizeof(sa_family_t);
    if (p[0] == '\0') return "@" + std::string(p + 1, n - 1);
    return std::string(p, strnlen(p, n));
  }
  return "(family " + std::to_string(fam) + ")";
}

Status CaptureSockets(const ProcTarget& target, std::vector<image::FileDescriptor>* fds) {
  const std::string who = "pid " + std::to_string(target.pid);
  bool any = false;
  for (const auto& f : *fds) any |= f.kind == image::FileDescriptor::Kind::kSocket;
  if (!any) return Status::Ok();
  ScopedFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, target.pid, 0)));
  if (!pidfd) return Status::Errno(who + ": pidfd_open");
  std::map<uint64_t, UnixDiag> diag;
  bool have_diag = false;
  for (image::FileDescriptor& f : *fds) {
    if (f.kind != image::FileDescriptor::Kind::kSocket) continue;
    const std::string ctx = who + ": " + Fd(f.fd) + " (" + f.path + ")";
    ScopedFd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), f.fd, 0)));
    if (!dup) return Status::Errno(ctx + ": pidfd_getfd");
    SocketInfo& s = f.socket;
    s.inode = SocketInode(f.path);
    s.family = GetInt(dup.get(), SOL_SOCKET, SO_DOMAIN);
    s.type = GetInt(dup.get(), SOL_SOCKET, SO_TYPE);
    s.protocol = GetInt(dup.get(), SOL_SOCKET, SO_PROTOCOL);
    s.reuse_addr = GetInt(dup.get(), SOL_SOCKET, SO_REUSEADDR) != 0;
    s.keep_alive = GetInt(dup.get(), SOL_SOCKET, SO_KEEPALIVE) != 0;
    if (s.family != AF_UNIX && !IsInet(s.family)) continue;  // restored as /dev/null, with a warning
    if (IsInet(s.family) && s.type == SOCK_STREAM) s.no_delay = GetInt(dup.get(), IPPROTO_TCP, TCP_NODELAY) != 0;
    s.local_addr = Address(dup.get(), false);
    s.peer_addr = Address(dup.get(), true);
    if (GetInt(dup.get(), SOL_SOCKET, SO_ACCEPTCONN) != 0) {
      s.state = State::kListening;
      s.backlog = SOMAXCONN;
      continue;
    }
    if (s.family == AF_UNIX) {
      if (!have_diag) {
        auto d = DumpUnixDiag();
        if (!d.ok()) return d.status().With(ctx);
        diag = std::move(d).value();
        have_diag = true;
      }
      auto it = diag.find(s.inode);
      if (it != diag.end()) {
        s.peer_inode = it->second.peer;
        s.shut_rd = (it->second.shutdown & 1) != 0;  // RCV_SHUTDOWN
        s.shut_wr = (it->second.shutdown & 2) != 0;  // SEND_SHUTDOWN
      }
      // A stream socket whose peer has closed still has a peer (shutdown).
      if (s.peer_inode != 0 || !s.peer_addr.empty()) s.state = State::kConnected;
    } else if (!s.peer_addr.empty()) {
      s.state = State::kConnected;
      if (s.type == SOCK_STREAM) {
        RETURN_IF_ERROR(WaitSendQueueEmpty(dup.get(), ctx));
        // This end has sent its FIN (shutdown(SHUT_WR) or close of a dup)
        // in these states; the peer's end shows the FIN as end-of-file.
        struct tcp_info ti{};
        socklen_t len = sizeof ti;
        if (::getsockopt(dup.get(), IPPROTO_TCP, TCP_INFO, &ti, &len) == 0) {
          const int st = ti.tcpi_state;
          s.shut_wr = st == TCP_FIN_WAIT1 || st == TCP_FIN_WAIT2 || st == TCP_CLOSING || st == TCP_LAST_ACK;
          s.shut_rd = st == TCP_CLOSE_WAIT || st == TCP_LAST_ACK || st == TCP_CLOSING || st == TCP_TIME_WAIT;
        }
      }
    }
    RETURN_IF_ERROR(PeekQueue(dup.get(), &s, ctx));
  }
  return Status::Ok();
}

Status FlushSendQueues(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids) {
    const std::string who = "pid " + std::to_string(pid);
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    std::vector<int> fds;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (struct dirent* e = ::readdir(d)) {
        char* end = nullptr;
        long n = std::strtol(e->d_name, &end, 10);
        if (end != e->d_name && *end == '\0') fds.push_back(static_cast<int>(n));
      }
      ::closedir(d);
    }
    ScopedFd pidfd;
    for (int n : fds) {
      char link[64] = "";
      ssize_t len = ::readlink((dir + "/" + std::to_string(n)).c_str(), link, sizeof link - 1);
      if (len <= 0 || SocketInode(std::string(link, static_cast<size_t>(len))) == 0) continue;
      if (!pidfd) pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
      if (!pidfd) return Status::Errno(who + ": pidfd_open");
      ScopedFd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), n, 0)));
      if (!dup) continue;  // closed meanwhile; CaptureSockets reports real problems
      const int family = GetInt(dup.get(), SOL_SOCKET, SO_DOMAIN);
      if (!IsInet(family) || GetInt(dup.get(), SOL_SOCKET, SO_TYPE) != SOCK_STREAM ||
          Address(dup.get(), true).empty())
        continue;
      RETURN_IF_ERROR(WaitSendQueueEmpty(dup.get(), who + ": " + Fd(n)));
    }
  }
  return Status::Ok();
}

bool IsConnectionPair(const SocketInfo& a, const SocketInfo& b) {
  if (a.state != State::kConnected || b.state != State::kConnected || a.family != b.family || a.type != b.type)
    return false;
  if (a.family == AF_UNIX) return a.peer_inode == b.inode && b.peer_inode == a.inode && a.inode != 0;
  return !a.local_addr.empty() && a.local_addr == b.peer_addr && a.peer_addr == b.local_addr;
}

std::vector<std::string> OutsidePeerWarnings(
    const std::vector<std::pair<int32_t, image::FileDescriptor>>& job_sockets) {
  std::vector<std::string> out;
  for (const auto& [pid, f] : job_sockets) {
    const SocketInfo& s = f.socket;
    if (s.state != State::kConnected || f.stdio_alias >= 0) continue;
    if (s.type == SOCK_DGRAM) continue;  // datagram sockets are connected again by address
    bool inside = false;
    for (const auto& [pid2, g] : job_sockets) inside |= IsConnectionPair(s, g.socket);
    if (inside) continue;
    if (s.shut_rd || (s.family == AF_UNIX && s.peer_inode == 0)) continue;  // the peer had closed: EOF either way
    const std::string what = s.family == AF_UNIX ? "a Unix socket connection" : "TCP connection";
    out.push_back("pid " + std::to_string(pid) + " " + Fd(f.fd) + ": " + what + " " +
                  SocketAddressText(s.local_addr) + " -> " + SocketAddressText(s.peer_addr) +
                  " leads outside the job; after a restart it reports " +
                  (s.family == AF_UNIX ? "end-of-file" : "a connection reset") +
                  " and the program has to reconnect");
  }
  return out;
}

bool ConnectsToAddress(const SocketInfo& s) {
  return s.state == State::kConnected && s.type == SOCK_DGRAM && !s.peer_addr.empty() &&
         (s.family != AF_UNIX || Named(s.peer_addr));
}

StatusOr<std::array<ScopedFd, 2>> CreateConnectedPair(const SocketInfo& a, int flags_a, const SocketInfo& b,
                                                      int flags_b, int listener) {
  const std::string who = "socket:[" + std::to_string(a.inode) + "]<->socket:[" + std::to_string(b.inode) + "]";
  std::array<ScopedFd, 2> out;
  if (a.family == AF_UNIX) {
    int sv[2];
    if (::socketpair(AF_UNIX, a.type | SOCK_CLOEXEC, 0, sv) != 0) return Status::Errno(who + ": socketpair");
    out[0].reset(sv[0]);
    out[1].reset(sv[1]);
  } else if (a.type == SOCK_STREAM) {
    // Connect b to a's address: through the job's own listener there if it
    // has one (two listeners cannot share a port), else a temporary one.
    ScopedFd temp;
    int l = listener;
    int one = 1;
    if (l < 0) {
      temp.reset(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!temp) return Status::Errno(who + ": socket");
      ::setsockopt(temp.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      RETURN_IF_ERROR(Bind(temp.get(), a.local_addr, who + ": temporary listener"));
      if (::listen(temp.get(), 1) != 0) return Status::Errno(who + ": listen");
      l = temp.get();
    }
    ScopedFd c(::socket(b.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!c) return Status::Errno(who + ": socket");
    ::setsockopt(c.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (!Bind(c.get(), b.local_addr, who).ok()) RETURN_IF_ERROR(Bind(c.get(), AnyPort(b.local_addr), who));
    if (::connect(c.get(), reinterpret_cast<const sockaddr*>(a.local_addr.data()),
                  static_cast<socklen_t>(a.local_addr.size())) != 0)
      return Status::Errno(who + ": connect to " + SocketAddressText(a.local_addr));
    // The listener may be non-blocking (the program's flags): wait for it.
    struct pollfd pfd = {l, POLLIN, 0};
    if (::poll(&pfd, 1, 5000) != 1) return Status::Error(who + ": the connection did not arrive at the listener");
    out[0].reset(::accept4(l, nullptr, nullptr, SOCK_CLOEXEC));
    if (!out[0]) return Status::Errno(who + ": accept");
    out[1] = std::move(c);
    if (!a.reuse_addr) {
      int zero = 0;
      ::setsockopt(out[0].get(), SOL_SOCKET, SO_REUSEADDR, &zero, sizeof zero);
    }
  } else {  // UDP pair: bind both, connect each to the other
    for (int i = 0; i < 2; ++i) {
      const SocketInfo& s = i == 0 ? a : b;
      out[i].reset(::socket(s.family, s.type | SOCK_CLOEXEC, s.protocol));
      if (!out[i]) return Status::Errno(who + ": socket");
      RETURN_IF_ERROR(Bind(out[i].get(), s.local_addr, who));
    }
    for (int i = 0; i < 2; ++i) {
      const SocketInfo& s = i == 0 ? a : b;
      if (::connect(out[i].get(), reinterpret_cast<const sockaddr*>(s.peer_addr.data()),
                    static_cast<socklen_t>(s.peer_addr.size())) != 0)
        return Status::Errno(who + ": connect to " + SocketAddressText(s.peer_addr));
    }
  }
  RETURN_IF_ERROR(Refill(out[1].get(), a, who));
  RETURN_IF_ERROR(Refill(out[0].get(), b, who));
  for (int i = 0; i < 2; ++i) {
    const SocketInfo& s = i == 0 ? a : b;
    if (s.shut_wr) ::shutdown(out[i].get(), SHUT_WR);
    RETURN_IF_ERROR(ApplyFlags(out[i].get(), s, i == 0 ? flags_a : flags_b, who));
  }
  return out;
}

StatusOr<ScopedFd> CreateSingleSocket(const SocketInfo& s, int flags, std::string* warning) {
  const std::string who = "socket:[" + std::to_string(s.inode) + "] " + SocketAddressText(s.local_addr);
  if (s.family != AF_UNIX && !IsInet(s.family))
    return Status::Error(who + ": socket family " + std::to_string(s.family) + " cannot be restored");
  ScopedFd fd;
  if (s.state == State::kConnected && s.type != SOCK_DGRAM && !ConnectsToAddress(s) &&
      (s.shut_rd || (s.family == AF_UNIX && s.peer_inode == 0))) {
    // The peer had closed: what it sent is read again, then end-of-file.
    ScopedFd far;
    if (s.family == AF_UNIX) {
      int sv[2];
      if (::socketpair(AF_UNIX, s.type | SOCK_CLOEXEC, 0, sv) != 0) return Status::Errno(who + ": socketpair");
      fd.reset(sv[0]);
      far.reset(sv[1]);
    } else {
      ASSIGN_OR_RETURN(auto pair, LoopbackPair(s.family, who));
      fd = std::move(pair[0]);
      far = std::move(pair[1]);
    }
    RETURN_IF_ERROR(Refill(far.get(), s, who));
    far.reset();
    RETURN_IF_ERROR(ApplyFlags(fd.get(), s, flags, who));
    return fd;
  }
  if (s.state == State::kConnected && s.type != SOCK_DGRAM && !ConnectsToAddress(s)) {
    // The peer is not in the job.
    if (s.family == AF_UNIX) {
      int sv[2];
      if (::socketpair(AF_UNIX, s.type | SOCK_CLOEXEC, 0, sv) != 0) return Status::Errno(who + ": socketpair");
      fd.reset(sv[0]);
      ScopedFd far(sv[1]);
      RETURN_IF_ERROR(Refill(far.get(), s, who));  // what had arrived is still read, then EOF
    } else {
      ASSIGN_OR_RETURN(fd, ResetTcpSocket(s.family, who));
    }
    if (warning) *warning = "connection to " + SocketAddressText(s.peer_addr) + " was outside the job: it now " +
                            (s.family == AF_UNIX ? "reports end-of-file" : "reports a connection reset");
    RETURN_IF_ERROR(ApplyFlags(fd.get(), s, flags, who));
    return fd;
  }
  fd.reset(::socket(s.family, s.type | SOCK_CLOEXEC, s.protocol));
  if (!fd) return Status::Errno(who + ": socket");
  int one = 1;
  if (s.reuse_addr || s.state == State::kListening)
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool bound = s.family == AF_UNIX ? Named(s.local_addr)
                                         : (!s.local_addr.empty() && AnyPort(s.local_addr) != s.local_addr);
  if (bound) {
    if (s.family == AF_UNIX) PrepareSocketPath(s.local_addr);
    RETURN_IF_ERROR(Bind(fd.get(), s.local_addr, who));
  }
  if (s.state == State::kListening && ::listen(fd.get(), s.backlog > 0 ? s.backlog : SOMAXCONN) != 0)
    return Status::Errno(who + ": listen");
  if (s.state == State::kConnected && !s.peer_addr.empty() && (s.family != AF_UNIX || Named(s.peer_addr))) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(s.peer_addr.data()),
                  static_cast<socklen_t>(s.peer_addr.size())) != 0 && warning)
      *warning = "cannot connect the datagram socket to " + SocketAddressText(s.peer_addr) + " again: " +
                 std::strerror(errno) + "; it is left unconnected";
  }
  RETURN_IF_ERROR(ApplyFlags(fd.get(), s, flags, who));
  // Datagrams that were queued to this socket: sent to its own address.
  if (!s.queued.empty() && s.type != SOCK_STREAM) {
    ScopedFd tx(::socket(s.family, s.type | SOCK_CLOEXEC, s.protocol));
    if (tx && bound) {
      for (const auto& m : s.queued)
        (void)::sendto(tx.get(), m.data(), m.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(s.local_addr.data()),
                       static_cast<socklen_t>(s.local_addr.size()));
    }
  }
  return fd;
}

}  // namespace stasis::state
