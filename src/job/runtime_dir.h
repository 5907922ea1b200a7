// Per-job runtime directory for the supervisor's agent socket.
//
// Base: "$XDG_RUNTIME_DIR/stasis" when XDG_RUNTIME_DIR is set and writable,
// else "/tmp/stasis-<uid>" (mode 0700).  A base directory that exists but is
// owned by another user, or is not a directory, is refused: someone else
// could otherwise pre-create it and listen on our socket paths.  Each job
// gets "<base>/<job_id>.<random>", removed with its contents when the
// RuntimeDir object is destroyed.
#pragma once

#include <string>

#include "common/status.h"

namespace stasis::job {

// sizeof(sockaddr_un::sun_path): a socket path must be shorter than this.
constexpr size_t kMaxSocketPath = 108;

// Creates `dir` (0700) if missing; fails unless it is a directory (not a
// symlink) owned by the effective uid.  Tightens a wider mode to 0700.
Status EnsurePrivateDir(const std::string& dir);

// Returns the base directory, creating it (0700) if missing.  Errors name
// the directory and the problem (wrong owner, not a directory, mkdir failed).
StatusOr<std::string> RuntimeBaseDir();

class RuntimeDir {
 public:
  // Creates "<RuntimeBaseDir()>/<job_id>.<8 random hex>" (0700).  Fails if the
  // supervisor socket path inside it would not fit in sun_path.
  static StatusOr<RuntimeDir> Create(const std::string& job_id);
  // Same under an explicit base (tests); the base must already exist.
  static StatusOr<RuntimeDir> CreateIn(const std::string& base, const std::string& job_id);

  RuntimeDir(RuntimeDir&& o) noexcept;
  RuntimeDir& operator=(RuntimeDir&& o) noexcept;
  RuntimeDir(const RuntimeDir&) = delete;
  RuntimeDir& operator=(const RuntimeDir&) = delete;
  // Removes the directory and the files in it (sockets; no subdirectories).
  ~RuntimeDir();

  const std::string& path() const { return path_; }
  // "<path>/supervisor.sock", always < kMaxSocketPath bytes.
  std::string supervisor_socket() const { return path_ + "/supervisor.sock"; }
  // Removes the directory now; idempotent.
  void Remove();

 private:
  explicit RuntimeDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// n random bytes (getrandom(2)) as 2n lowercase hex characters.
std::string RandomHex(size_t n_bytes);

}  // namespace stasis::job
