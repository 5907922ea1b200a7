// The client end of the coordinator protocol (protocol.h), used by the CLI:
// connect with a timeout, say hello, send requests and read their replies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/scoped_fd.h"
#include "common/status.h"
#include "coordinator/json_line.h"

namespace stasis::coordinator {

class Client {
 public:
  enum class Failure { kNone, kNoCoordinator, kWrongUser, kUntrusted, kNotCoordinator, kOther };

  // Connects to host:port (getaddrinfo; every address tried) and says the
  // authenticated hello (auth.h) as a client.  On error `*failure` says
  // why: nothing listening (kNoCoordinator), a coordinator that refuses us
  // as another user (kWrongUser; the message names its uid), a listener we
  // refuse (kUntrusted: another uid, or it cannot prove it holds our
  // coordinator's credential; the message names the port and the uid),
  // something that does not speak the protocol.
  static StatusOr<std::unique_ptr<Client>> Connect(const std::string& host, uint16_t port,
                                                   double timeout_seconds, Failure* failure);

  // Sends one request and returns the reply, which may have "ok": false
  // (see ReplyError).  timeout < 0 waits forever.
  StatusOr<Json> Request(const Json& request, double timeout_seconds);

  // The two halves of Request, for a request answered later (await_stop):
  // Send writes it; Receive reads the next reply (timeout < 0 waits
  // forever; 0 polls).  Errors: write failure, timeout, EOF.
  Status Send(const Json& request, double timeout_seconds);
  StatusOr<Json> Receive(double timeout_seconds);

  const std::string& peer() const { return peer_; }
  int fd() const { return fd_.get(); }

 private:
  Client(ScopedFd fd, std::string peer) : fd_(std::move(fd)), peer_(std::move(peer)) {}
  ScopedFd fd_;
  std::string peer_;
  LineBuffer in_;
};

// OK if reply["ok"] is true, else an error with reply["error"].
Status ReplyError(const Json& reply);

}  // namespace stasis::coordinator
