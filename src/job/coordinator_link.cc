#include "job/coordinator_link.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>

#include <fmt/format.h>

#include "coordinator/auth.h"

namespace stasis::job {
namespace {

double Now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

int PollMs(double remaining_seconds) {
  if (remaining_seconds <= 0) return 0;
  return static_cast<int>(std::ceil(remaining_seconds * 1000));
}

// Non-blocking connect to one address, bounded by `deadline` (monotonic s).
StatusOr<ScopedFd> ConnectOne(const struct addrinfo* ai, double deadline) {
  ScopedFd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                     ai->ai_protocol));
  if (!fd) return Status::Errno("socket");
  if (connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) return Status::Errno("connect");
    struct pollfd p = {fd.get(), POLLOUT, 0};
    for (;;) {
      int r = poll(&p, 1, PollMs(deadline - Now()));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::Errno("poll");
      if (r == 0) return Status::Error("timed out");
      break;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Status::Error(strerror(err));
  }
  // Back to blocking: Send() writes whole lines; reads are gated by poll().
  int flags = fcntl(fd.get(), F_GETFL);
  fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

}  // namespace

Status LineBuffer::Append(const char* data, size_t len) {
  size_t start = 0;
  for (size_t i = 0; i < len; ++i) {
    if (data[i] != '\n') continue;
    partial_.append(data + start, i - start);
    start = i + 1;
    if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
    if (!partial_.empty()) lines_.push_back(std::move(partial_));
    partial_.clear();
  }
  partial_.append(data + start, len - start);
  if (partial_.size() > max_line_) {
    partial_.clear();
    return Status::Error(fmt::format("line longer than {} bytes", max_line_));
  }
  return Status::Ok();
}

std::optional<std::string> LineBuffer::Next() {
  if (lines_.empty()) return std::nullopt;
  std::string line = std::move(lines_.front());
  lines_.pop_front();
  return line;
}

StatusOr<CoordinatorLink> CoordinatorLink::Connect(const std::string& host, uint16_t port,
                                                   double timeout_seconds) {
  const std::string where = fmt::format("cannot connect to the coordinator at {}:{}", host, port);
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) return Status::Error(fmt::format("{}: {}", where, gai_strerror(rc)));
  const double deadline = Now() + timeout_seconds;
  Status last = Status::Error("no address");
  for (struct addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    auto fd = ConnectOne(ai, deadline);
    if (fd.ok()) {
      freeaddrinfo(res);
      return CoordinatorLink(std::move(fd).value());
    }
    last = fd.status();
  }
  freeaddrinfo(res);
  return last.With(where);
}

CoordinatorLink CoordinatorLink::FromFd(ScopedFd fd) { return CoordinatorLink(std::move(fd)); }

StatusOr<nlohmann::json> CoordinatorLink::Hello(nlohmann::json hello, uint16_t port, double timeout_seconds) {
  if (!fd_) return Status::Error("not connected to the coordinator");
  bool refused = false;
  auto exchange = [&](const nlohmann::json& msg) -> StatusOr<nlohmann::json> {
    RETURN_IF_ERROR(Send(msg));
    return ReadMessage(timeout_seconds);
  };
  auto reply = coordinator::AuthenticatedHello(fd_.get(), fmt::format("port {}", port), port, std::move(hello),
                                               nullptr, exchange, &refused);
  if (!reply.ok()) Close();
  return reply;
}

Status CoordinatorLink::Send(const nlohmann::json& msg) {
  if (!fd_) return Status::Error("not connected to the coordinator");
  // Program names (comm) are arbitrary bytes: dump() would throw on invalid
  // UTF-8 and take the supervisor down; replace it as EncodeLine does.
  std::string line = msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = send(fd_.get(), line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::Errno("send to the coordinator");
      Close();
      return st;
    }
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status CoordinatorLink::ReadSome(bool* eof) {
  char buf[65536];
  *eof = false;
  for (;;) {
    ssize_t n = recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Ok();
      return Status::Errno("read from the coordinator");
    }
    if (n == 0) {
      *eof = true;
      return Status::Ok();
    }
    RETURN_IF_ERROR(lines_.Append(buf, static_cast<size_t>(n)).With("coordinator message"));
    if (static_cast<size_t>(n) < sizeof(buf)) return Status::Ok();
  }
}

StatusOr<std::optional<nlohmann::json>> CoordinatorLink::NextParsed() {
  auto line = lines_.Next();
  if (!line) return std::optional<nlohmann::json>();
  nlohmann::json msg = nlohmann::json::parse(*line, nullptr, /*allow_exceptions=*/false);
  if (!msg.is_object()) {
    Close();
    return Status::Error("coordinator sent a line that is not a JSON object: " +
                         line->substr(0, 200));
  }
  return std::optional<nlohmann::json>(std::move(msg));
}

StatusOr<std::vector<nlohmann::json>> CoordinatorLink::ReadAvailable() {
  if (!fd_) return Status::Error("not connected to the coordinator");
  bool eof = false;
  Status st = ReadSome(&eof);
  std::vector<nlohmann::json> out;
  for (;;) {
    ASSIGN_OR_RETURN(auto msg, NextParsed());
    if (!msg) break;
    out.push_back(std::move(*msg));
  }
  if (!st.ok()) {
    Close();
    return st;
  }
  if (eof) {
    Close();
    if (out.empty()) return Status::Error("the coordinator closed the connection");
  }
  return out;
}

StatusOr<nlohmann::json> CoordinatorLink::ReadMessage(double timeout_seconds) {
  const double deadline = Now() + timeout_seconds;
  for (;;) {
    ASSIGN_OR_RETURN(auto msg, NextParsed());
    if (msg) return std::move(*msg);
    if (!fd_) return Status::Error("the coordinator closed the connection");
    struct pollfd p = {fd_.get(), POLLIN, 0};
    int r = poll(&p, 1, PollMs(deadline - Now()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::Errno("poll");
    if (r == 0) return Status::Error("no reply from the coordinator");
    bool eof = false;
    Status st = ReadSome(&eof);
    if (!st.ok()) {
      Close();
      return st;
    }
    if (eof) {
      // Lines received before EOF are still delivered by the next NextParsed().
      ASSIGN_OR_RETURN(auto last, NextParsed());
      Close();
      if (last) return std::move(*last);
      return Status::Error("the coordinator closed the connection");
    }
  }
}

}  // namespace stasis::job
