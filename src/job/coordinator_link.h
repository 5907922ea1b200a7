// The supervisor's connection to the coordinator: a TCP stream carrying one
// JSON object per line (src/coordinator/protocol.h).  Single-threaded: the
// supervisor polls fd() and calls ReadAvailable() when it is readable.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/scoped_fd.h"
#include "common/status.h"

namespace stasis::job {

// Splits a byte stream into '\n'-terminated lines (the '\n' and a trailing
// '\r' removed).  Empty lines are skipped.  A line longer than max_line
// bytes is an error: a peer that never sends '\n' must not grow us forever.
class LineBuffer {
 public:
  explicit LineBuffer(size_t max_line = 16 << 20) : max_line_(max_line) {}
  // Appends bytes; fails (and discards the buffer) if a line exceeds max_line.
  Status Append(const char* data, size_t len);
  // The next complete line, if any.
  std::optional<std::string> Next();
  size_t pending_bytes() const { return partial_.size(); }

 private:
  size_t max_line_;
  std::string partial_;
  std::deque<std::string> lines_;
};

class CoordinatorLink {
 public:
  // Connects to host:port (getaddrinfo; IPv4 or IPv6) within timeout seconds.
  // Error: "cannot connect to the coordinator at <host>:<port>: <reason>".
  static StatusOr<CoordinatorLink> Connect(const std::string& host, uint16_t port,
                                           double timeout_seconds);
  // Wraps an already connected stream socket (tests: one end of a socketpair).
  static CoordinatorLink FromFd(ScopedFd fd);

  CoordinatorLink(CoordinatorLink&&) = default;
  CoordinatorLink& operator=(CoordinatorLink&&) = default;

  int fd() const { return fd_.get(); }
  bool connected() const { return fd_.valid(); }

  // Writes `msg` and '\n', blocking until sent (messages are small).  Never
  // raises SIGPIPE.  A failure closes the link.
  Status Send(const nlohmann::json& msg);

  // Reads what the socket has without blocking and parses complete lines.
  // Returns the messages received (possibly none).  Error when the peer
  // closed the connection or sent a line that is not a JSON object; the link
  // is closed then and further calls fail.
  StatusOr<std::vector<nlohmann::json>> ReadAvailable();

  // Blocks up to timeout seconds for the next message (for the hello reply).
  StatusOr<nlohmann::json> ReadMessage(double timeout_seconds);

  // The authenticated hello (coordinator/auth.h): refuses a listener of
  // another uid or one that cannot prove it holds the credential of
  // `port`'s coordinator; returns the coordinator's hello reply.  Each step
  // waits up to timeout seconds.
  StatusOr<nlohmann::json> Hello(nlohmann::json hello, uint16_t port, double timeout_seconds);

  void Close() { fd_.reset(); }

 private:
  explicit CoordinatorLink(ScopedFd fd) : fd_(std::move(fd)) {}
  Status ReadSome(bool* eof);
  StatusOr<std::optional<nlohmann::json>> NextParsed();

  ScopedFd fd_;
  LineBuffer lines_;
};

}  // namespace stasis::job
