// Who is on the other end of a local TCP connection?  Loopback TCP has no
// SO_PEERCRED, so the coordinator finds the peer's own socket in
// /proc/net/tcp{,6} (the entry whose local address is our peer address and
// whose remote address is our local address) and reads its uid column.
// Only connections from this host (same network namespace) can be checked.
// The lookup is one sock_diag(7) request by the 4-tuple, with the
// /proc/net/tcp scan as the fallback.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace stasis::coordinator {

// An endpoint as /proc/net/tcp6 spells it: 16 address bytes (IPv4 as the
// IPv4-mapped IPv6 address ::ffff:a.b.c.d) and the port in host order.
struct Endpoint {
  std::array<uint8_t, 16> addr{};
  uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
};

// From a sockaddr_in / sockaddr_in6; nullopt for other families.
std::optional<Endpoint> EndpointFromSockaddr(const sockaddr_storage& ss);
// "127.0.0.1:7779" / "[::1]:7779"
std::string EndpointToString(const Endpoint& e);

// Scans the text of /proc/net/tcp or /proc/net/tcp6 for the socket whose
// local endpoint is `local` and remote endpoint is `remote`; returns its uid.
std::optional<uid_t> FindSocketUid(const std::string& proc_net_tcp_text, const Endpoint& local,
                                   const Endpoint& remote);

// The uid owning the peer socket of the connected TCP socket `fd`.
// Errors: not TCP/IP, peer not found (a remote host or already closed).
StatusOr<uid_t> PeerUid(int fd);

}  // namespace stasis::coordinator
