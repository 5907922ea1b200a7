#include "coordinator/peer_uid.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "common/scoped_fd.h"

namespace stasis::coordinator {

namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// Parses "0100007F:1E63" (tcp) or 32 hex digits + ":PORT" (tcp6).  The kernel
// prints each 32-bit word of the address in host byte order (%08X of the raw
// __be32), so decoding a word and storing it natively restores the bytes.
std::optional<Endpoint> ParseProcEndpoint(const std::string& s) {
  size_t colon = s.find(':');
  if (colon == std::string::npos) return std::nullopt;
  std::string hex = s.substr(0, colon);
  if (hex.size() != 8 && hex.size() != 32) return std::nullopt;
  uint8_t raw[16];
  size_t words = hex.size() / 8;
  for (size_t w = 0; w < words; ++w) {
    uint32_t v = 0;
    for (size_t k = 0; k < 8; ++k) {
      char c = hex[w * 8 + k];
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = (v << 4) | static_cast<uint32_t>(d);
    }
    std::memcpy(raw + w * 4, &v, 4);
  }
  Endpoint e;
  if (words == 1) {
    std::memcpy(e.addr.data(), kV4MappedPrefix.data(), 12);
    std::memcpy(e.addr.data() + 12, raw, 4);
  } else {
    std::memcpy(e.addr.data(), raw, 16);
  }
  char* end = nullptr;
  unsigned long port = std::strtoul(s.c_str() + colon + 1, &end, 16);
  if (end == s.c_str() + colon + 1 || port > 0xffff) return std::nullopt;
  e.port = static_cast<uint16_t>(port);
  return e;
}

// One exact lookup through sock_diag(7) (NETLINK_SOCK_DIAG, inet_diag_req_v2
// without NLM_F_DUMP: the kernel finds the socket by its 4-tuple), O(1)
// where the /proc/net/tcp scan is O(connections) -- which matters when
// thousands of connections are open.  `local`/`remote` are the endpoints as
// the wanted socket sees them.  nullopt if not found or not available.
// The netlink socket is opened once and kept: a coordinator out of
// descriptors (a flood, EMFILE) must still be able to check the owner's hello.
std::optional<uid_t> DiagLookupUid(int family, const Endpoint& local, const Endpoint& remote) {
  static thread_local ScopedFd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) return std::nullopt;
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  msg.req.sdiag_family = static_cast<uint8_t>(family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0u;
  msg.req.id.idiag_sport = htons(local.port);
  msg.req.id.idiag_dport = htons(remote.port);
  if (family == AF_INET) {
    std::memcpy(msg.req.id.idiag_src, local.addr.data() + 12, 4);
    std::memcpy(msg.req.id.idiag_dst, remote.addr.data() + 12, 4);
  } else {
    std::memcpy(msg.req.id.idiag_src, local.addr.data(), 16);
    std::memcpy(msg.req.id.idiag_dst, remote.addr.data(), 16);
  }
  msg.req.id.idiag_cookie[0] = msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(nl.get(), &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    return std::nullopt;
  }
  alignas(nlmsghdr) char buf[8192];
  ssize_t n;
  do {
    n = ::recv(nl.get(), buf, sizeof buf, 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return std::nullopt;
  auto* h = reinterpret_cast<nlmsghdr*>(buf);
  if (!NLMSG_OK(h, static_cast<unsigned>(n)) || h->nlmsg_type != SOCK_DIAG_BY_FAMILY) return std::nullopt;
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) return std::nullopt;
  const auto* d = reinterpret_cast<const inet_diag_msg*>(NLMSG_DATA(h));
  return static_cast<uid_t>(d->idiag_uid);
}

}  // namespace

std::optional<Endpoint> EndpointFromSockaddr(const sockaddr_storage& ss) {
  Endpoint e;
  if (ss.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
    std::memcpy(e.addr.data(), kV4MappedPrefix.data(), 12);
    std::memcpy(e.addr.data() + 12, &in.sin_addr, 4);
    e.port = ntohs(in.sin_port);
    return e;
  }
  if (ss.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
    std::memcpy(e.addr.data(), &in6.sin6_addr, 16);
    e.port = ntohs(in6.sin6_port);
    return e;
  }
  return std::nullopt;
}

std::string EndpointToString(const Endpoint& e) {
  char buf[INET6_ADDRSTRLEN];
  if (std::memcmp(e.addr.data(), kV4MappedPrefix.data(), 12) == 0) {
    inet_ntop(AF_INET, e.addr.data() + 12, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(e.port);
  }
  inet_ntop(AF_INET6, e.addr.data(), buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(e.port);
}

std::optional<uid_t> FindSocketUid(const std::string& text, const Endpoint& local,
                                   const Endpoint& remote) {
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    // sl local rem st tx:rx tr:when retrnsmt uid ...
    std::istringstream fields(line);
    std::string sl, loc, rem, st, txrx, trwhen, retr;
    long uid = -1;
    if (!(fields >> sl >> loc >> rem >> st >> txrx >> trwhen >> retr >> uid)) continue;
    auto l = ParseProcEndpoint(loc);
    auto r = ParseProcEndpoint(rem);
    if (l && r && *l == local && *r == remote && uid >= 0) return static_cast<uid_t>(uid);
  }
  return std::nullopt;
}

StatusOr<uid_t> PeerUid(int fd) {
  sockaddr_storage ours{}, theirs{};
  socklen_t len = sizeof ours;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ours), &len) != 0) return Status::Errno("getsockname");
  len = sizeof theirs;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&theirs), &len) != 0) return Status::Errno("getpeername");
  auto local = EndpointFromSockaddr(ours);
  auto peer = EndpointFromSockaddr(theirs);
  if (!local || !peer) return Status::Error("peer is not a TCP/IP connection");
  // The peer's socket sees the endpoints the other way round.  It is an
  // AF_INET socket or an AF_INET6 one (possibly v4-mapped).
  const bool v4 = std::memcmp(peer->addr.data(), kV4MappedPrefix.data(), 12) == 0 &&
                  std::memcmp(local->addr.data(), kV4MappedPrefix.data(), 12) == 0;
  if (v4) {
    if (auto uid = DiagLookupUid(AF_INET, *peer, *local)) return *uid;
  }
  if (auto uid = DiagLookupUid(AF_INET6, *peer, *local)) return *uid;
  // Without sock_diag (an old kernel, a module not loaded): /proc/net/tcp{,6}.
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(file);
    if (!f) continue;
    std::stringstream ss;
    ss << f.rdbuf();
    if (auto uid = FindSocketUid(ss.str(), *peer, *local)) return *uid;
  }
  return Status::Error("cannot find the peer " + EndpointToString(*peer) +
                       " in /proc/net/tcp: not a connection from this host");
}

}  // namespace stasis::coordinator
