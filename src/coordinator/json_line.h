// Newline-delimited JSON framing for the coordinator protocol (protocol.h):
// a reassembly buffer for non-blocking reads and helpers for the blocking
// request/reply exchange the CLI and the supervisor use.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>

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

// An integer field as T, or `dflt` when it is missing, not a number, not
// integral or outside T's range.  Use it instead of static_cast<T>(GetNumber())
// for counts, pids and generations: converting a double that T cannot
// represent (1e300, -1 to unsigned) is undefined behaviour (C++ [conv.fpint]),
// and a peer controls the value.
template <typename T>
T GetInteger(const Json& j, const char* key, T dflt = 0) {
  static_assert(std::is_integral_v<T> && sizeof(T) <= 8);
  auto it = j.find(key);
  if (it == j.end()) return dflt;
  using Lim = std::numeric_limits<T>;
  if (it->is_number_unsigned()) {
    const uint64_t v = it->get<uint64_t>();
    return v <= static_cast<uint64_t>(Lim::max()) ? static_cast<T>(v) : dflt;
  }
  if (it->is_number_integer()) {
    const int64_t v = it->get<int64_t>();
    if (v < 0 && std::is_unsigned_v<T>) return dflt;
    if (v < 0) return v >= static_cast<int64_t>(Lim::min()) ? static_cast<T>(v) : dflt;
    return static_cast<uint64_t>(v) <= static_cast<uint64_t>(Lim::max()) ? static_cast<T>(v) : dflt;
  }
  if (it->is_number_float()) {
    const double d = it->get<double>();
    const double hi = std::ldexp(1.0, Lim::digits);  // 2^31, 2^64...: first value past max
    const double lo = std::is_signed_v<T> ? -hi : 0.0;
    if (!(d >= lo && d < hi) || std::trunc(d) != d) return dflt;
    return static_cast<T>(d);
  }
  return dflt;
}

}  // namespace stasis::coordinator
