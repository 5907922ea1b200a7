#include "coordinator/json_line.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>

#include "common/json_parse.h"

namespace stasis::coordinator {

std::optional<std::string> LineBuffer::NextLine() {
  size_t nl = buf_.find('\n', pos_);
  if (nl == std::string::npos) {
    // Compact so the buffer does not grow with consumed lines.
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    return std::nullopt;
  }
  size_t end = nl;
  if (end > pos_ && buf_[end - 1] == '\r') --end;
  std::string line = buf_.substr(pos_, end - pos_);
  pos_ = nl + 1;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  return line;
}

bool LineBuffer::Overflowed() const { return pending() > kMaxLineBytes; }

std::string EncodeLine(const Json& message) {
  // Invalid UTF-8 in strings (program names) must not throw: replace it.
  std::string s = message.dump(-1, ' ', false, Json::error_handler_t::replace);
  s.push_back('\n');
  return s;
}

StatusOr<Json> DecodeLine(const std::string& line) {
  // Depth-limited: replies and status echo parts of messages, and dump()
  // recurses per nesting level.
  auto j = ParseJsonLimited(reinterpret_cast<const uint8_t*>(line.data()), line.size(), Json::input_format_t::json);
  if (!j.ok()) {
    std::string shown = line.size() > 80 ? line.substr(0, 80) + "..." : line;
    return Status::Error("malformed message (not JSON): " + shown);
  }
  if (!j->is_object()) return Status::Error("malformed message (not a JSON object)");
  return j;
}

namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline` for poll(2); -1 = forever.
int PollTimeout(bool forever, Clock::time_point deadline) {
  if (forever) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

Clock::time_point Deadline(double timeout_seconds) {
  return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(timeout_seconds * 1e6));
}

}  // namespace

Status WriteLine(int fd, const Json& message, double timeout_seconds, const std::string& peer) {
  const std::string data = EncodeLine(message);
  const bool forever = timeout_seconds < 0;
  const auto deadline = Deadline(forever ? 0 : timeout_seconds);
  size_t off = 0;
  while (off < data.size()) {
    pollfd p{fd, POLLOUT, 0};
    int r = ::poll(&p, 1, PollTimeout(forever, deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::Errno(peer + ": poll");
    if (r == 0) return Status::Error(peer + ": timed out sending a request");
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0) return Status::Errno(peer + ": send");
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

StatusOr<Json> ReadLine(int fd, LineBuffer& buf, double timeout_seconds, const std::string& peer) {
  const bool forever = timeout_seconds < 0;
  const auto deadline = Deadline(forever ? 0 : timeout_seconds);
  for (;;) {
    if (auto line = buf.NextLine()) {
      if (line->empty()) continue;
      auto j = DecodeLine(*line);
      if (!j.ok()) return j.status().With(peer);
      return j;
    }
    if (buf.Overflowed()) return Status::Error(peer + ": reply line too long");
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, PollTimeout(forever, deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::Errno(peer + ": poll");
    if (r == 0) return Status::Error(peer + ": timed out waiting for a reply");
    char tmp[65536];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0) return Status::Errno(peer + ": recv");
    if (n == 0) return Status::Error(peer + ": connection closed by the coordinator");
    buf.Append(tmp, static_cast<size_t>(n));
  }
}

std::string GetString(const Json& j, const char* key, const std::string& dflt) {
  auto it = j.find(key);
  return (it != j.end() && it->is_string()) ? it->get<std::string>() : dflt;
}

double GetNumber(const Json& j, const char* key, double dflt) {
  auto it = j.find(key);
  return (it != j.end() && it->is_number()) ? it->get<double>() : dflt;
}

bool GetBool(const Json& j, const char* key, bool dflt) {
  auto it = j.find(key);
  return (it != j.end() && it->is_boolean()) ? it->get<bool>() : dflt;
}

}  // namespace stasis::coordinator
