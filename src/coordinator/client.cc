#include "coordinator/client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "coordinator/auth.h"
#include "coordinator/protocol.h"

namespace stasis::coordinator {

namespace {

// Non-blocking connect bounded by `timeout_seconds`; the socket stays
// non-blocking (the line helpers poll).  Returns errno-style failures.
StatusOr<ScopedFd> ConnectOne(const addrinfo* ai, double timeout_seconds, int* err) {
  ScopedFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
  if (!fd) {
    *err = errno;
    return Status::Errno("socket");
  }
  if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      *err = errno;
      return Status::Errno("connect");
    }
    pollfd p{fd.get(), POLLOUT, 0};
    int r;
    do {
      r = ::poll(&p, 1, static_cast<int>(timeout_seconds * 1000));
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
      *err = ETIMEDOUT;
      return Status::Error("connect: timed out");
    }
    int soerr = 0;
    socklen_t len = sizeof soerr;
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr != 0) {
      *err = soerr;
      return Status::Errno("connect", soerr);
    }
  }
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

StatusOr<std::unique_ptr<Client>> Client::Connect(const std::string& host, uint16_t port,
                                                  double timeout_seconds, Failure* failure) {
  *failure = Failure::kOther;
  const std::string peer = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (gai != 0) return Status::Error(peer + ": " + gai_strerror(gai));
  ScopedFd fd;
  Status last = Status::Error(peer + ": no address");
  bool all_refused = true;
  for (addrinfo* ai = res; ai && !fd; ai = ai->ai_next) {
    int err = 0;
    auto c = ConnectOne(ai, timeout_seconds, &err);
    if (c.ok()) {
      fd = std::move(c.value());
    } else {
      last = c.status().With(peer);
      if (err != ECONNREFUSED) all_refused = false;
    }
  }
  freeaddrinfo(res);
  if (!fd) {
    if (all_refused) *failure = Failure::kNoCoordinator;
    return last;
  }
  std::unique_ptr<Client> client(new Client(std::move(fd), peer));
  bool refused = false;
  Client* c = client.get();
  auto reply = AuthenticatedHello(
      c->fd(), peer, port, {{"type", "hello"}, {"role", "client"}, {"version", kProtocolVersion}}, nullptr,
      [&](const Json& msg) { return c->Request(msg, timeout_seconds); }, &refused);
  if (!reply.ok()) {
    // We refuse the listener (another user's, or one without the
    // credential): never reported as "no coordinator", so that `stasis
    // launch` does not try to start one on a port someone else holds.
    *failure = refused ? Failure::kUntrusted : Failure::kNotCoordinator;
    return refused ? reply.status() : reply.status().With("no Stasis coordinator answers");
  }
  if (GetString(*reply, "error_code") == "wrong_user") {
    *failure = Failure::kWrongUser;
    return ReplyError(*reply);
  }
  if (!reply->contains("ok")) {
    *failure = Failure::kNotCoordinator;
    return Status::Error(peer + ": not a Stasis coordinator (unexpected hello reply)");
  }
  if (Status st = ReplyError(*reply); !st.ok()) return st;
  *failure = Failure::kNone;
  return client;
}

StatusOr<Json> Client::Request(const Json& request, double timeout_seconds) {
  RETURN_IF_ERROR(WriteLine(fd_.get(), request, timeout_seconds, peer_));
  return ReadLine(fd_.get(), in_, timeout_seconds, peer_);
}

Status Client::Send(const Json& request, double timeout_seconds) {
  return WriteLine(fd_.get(), request, timeout_seconds, peer_);
}

StatusOr<Json> Client::Receive(double timeout_seconds) { return ReadLine(fd_.get(), in_, timeout_seconds, peer_); }

Status ReplyError(const Json& reply) {
  if (GetBool(reply, "ok")) return Status::Ok();
  std::string err = GetString(reply, "error");
  return Status::Error(err.empty() ? "the coordinator refused the request" : err);
}

}  // namespace stasis::coordinator
