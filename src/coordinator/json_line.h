// Newline-delimited JSON framing for the coordinator protocol (protocol.h):
// a reassembly buffer for non-blocking reads and helpers for the blocking
// request/reply exchange the CLI and the supervisor use.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace stasis::coordinator {

using Json = nlohmann::json;

// A line longer than this is a protocol error (guards memory against a
// peer that never sends a newline).
constexpr size_t kMaxLineBytes = 16 << 20;

// Collects bytes as they arrive and hands out complete lines.
class LineBuffer {
 public:
  void Append(const char* data, size_t len) { buf_.append(data, len); }
  // The next complete line without its '\n' (a trailing '\r' is dropped too),
  // or nullopt if none is complete yet.
  std::optional<std::string> NextLine();
  // True once the unterminated tail exceeds kMaxLineBytes.
  bool Overflowed() const;
  size_t pending() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;  // start of unconsumed data; compacted lazily
};

// "<compact json>\n"
std::string EncodeLine(const Json& message);
// Parses one line; errors say what is wrong and must be an object.
StatusOr<Json> DecodeLine(const std::string& line);

// Blocking helpers on a connected socket.  `timeout_seconds` < 0 waits
// forever.  Errors name `peer` ("127.0.0.1:7779").
Status WriteLine(int fd, const Json& message, double timeout_seconds, const std::string& peer);
StatusOr<Json> ReadLine(int fd, LineBuffer& buf, double timeout_seconds, const std::string& peer);

// Convenience accessors that never throw on a missing or mistyped field.
std::string GetString(const Json& j, const char* key, const std::string& dflt = "");
double GetNumber(const Json& j, const char* key, double dflt = 0);
bool GetBool(const Json& j, const char* key, bool dflt = false);

}  // namespace stasis::coordinator
