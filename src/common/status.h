// Errors as values, after abseil's Status/StatusOr: every fallible operation in
// Stasis returns one of these instead of throwing, so that failure paths are
// visible at each call site and can be reported to the user verbatim.
#pragma once

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace stasis {

// What kind of error a Status is, for callers that decide by it (abseil's
// canonical codes, only those Stasis needs).  kDataLoss: the checkpoint's own
// data is damaged or incomplete (a missing, truncated or corrupt image or
// manifest), so an older checkpoint may still be good; any other error (the
// environment: an address in use, a file the program had open is gone, a
// namespace failure...) is kError and would hit an older checkpoint too.
enum class StatusCode : unsigned char { kOk = 0, kError = 1, kDataLoss = 2 };

class Status {
 public:
  Status() = default;  // OK
  static Status Ok() { return Status(); }
  // An error with a complete, user-facing message ("<file>: <what is wrong>").
  static Status Error(std::string message) { return Status(std::move(message)); }
  // The checkpoint data is damaged or incomplete (StatusCode::kDataLoss).
  static Status DataLoss(std::string message) { return Status(std::move(message), StatusCode::kDataLoss); }
  // An error of kind `code` (kOk is turned into kError): for errors that
  // crossed a pipe as code + message.
  static Status FromCode(StatusCode code, std::string message) {
    return Status(std::move(message), code == StatusCode::kDataLoss ? code : StatusCode::kError);
  }
  // An error from a failed system call: "<what>: <strerror(err)>".
  static Status Errno(const std::string& what, int err = errno) {
    return Status(what + ": " + std::strerror(err));
  }

  bool ok() const { return !message_.has_value(); }
  StatusCode code() const { return ok() ? StatusCode::kOk : code_; }
  bool IsDataLoss() const { return code() == StatusCode::kDataLoss; }
  const std::string& message() const {
    static const std::string kOk = "OK";
    return message_ ? *message_ : kOk;
  }
  // Prefixes context to an error ("restart ckpt_x.stasis: " + message),
  // keeping its code; no-op on OK.
  Status With(const std::string& context) const {
    if (ok()) return *this;
    return Status(context + ": " + *message_, code_);
  }

 private:
  explicit Status(std::string m, StatusCode code = StatusCode::kError) : message_(std::move(m)), code_(code) {}
  std::optional<std::string> message_;
  StatusCode code_ = StatusCode::kError;
};

template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  StatusOr(Status status) : v_(std::move(status)) {}    // NOLINT: must be an error

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace stasis

// Early-return helpers.
#define STASIS_CONCAT_INNER(a, b) a##b
#define STASIS_CONCAT(a, b) STASIS_CONCAT_INNER(a, b)
#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::stasis::Status _st = (expr);           \
    if (!_st.ok()) return _st;               \
  } while (0)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(STASIS_CONCAT(_status_or_, __LINE__), lhs, expr)
