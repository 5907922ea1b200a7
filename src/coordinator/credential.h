// What a coordinator and its peers (CLI clients, supervisors) prove to each
// other in the hello (auth.h).  A TCP port on a shared node is first come,
// first served: another local user can listen on 7779 before us, or connect
// to our coordinator.  The uid of the other end (peer_uid.h) is checked
// too, but it cannot be seen across hosts, and inside a job's user
// namespace every foreign uid reads as the overflow uid (65534, which is
// also nobody's): the credential is what each side must prove.
//
// The interface is a challenge-response: Prove(label, challenge) returns a
// token that only a holder of the credential can compute, Verify checks one.
// The secret itself never goes over the wire, so a fake listener learns
// nothing it could replay.  Implementations:
//   * LocalSecret (here): 32 random bytes in a file of mode 0600 in the
//     user's private runtime directory (job/runtime_dir.h, 0700), created by
//     the coordinator when it starts listening and removed when it exits;
//     tokens are HMAC-SHA256(secret, label || challenge) (RFC 2104, OpenSSL's
//     HMAC()).  Only the same user (and root) can read it.
//   * for peers on other hosts (multi-node, later): a MUNGE credential
//     (munge(7): munge_encode of the challenge, munge_decode gives the uid)
//     fits the same two calls.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace stasis::coordinator {

class Credential {
 public:
  virtual ~Credential() = default;
  // "local-secret"; peers must use the same scheme.
  virtual std::string scheme() const = 0;
  // Where the credential comes from, for messages ("/tmp/stasis-0/coordinator-7779.secret").
  virtual std::string source() const = 0;
  // A token for `challenge` (lowercase hex).  `label` separates the two
  // directions ("coordinator" / "peer") so a token cannot be reflected.
  virtual std::string Prove(const std::string& label, const std::string& challenge) const = 0;
  // True if `token` == Prove(label, challenge) (constant-time comparison).
  virtual bool Verify(const std::string& label, const std::string& challenge, const std::string& token) const = 0;
  // The coordinator stops listening: a local secret's file is removed (a
  // new coordinator on the port writes its own).  Default: nothing.
  virtual void Retire() {}
};

class LocalSecret : public Credential {
 public:
  // "<runtime base dir>/coordinator-<port>.secret" (RuntimeBaseDir(), which
  // creates the 0700 base directory if missing).
  static StatusOr<std::string> PathFor(uint16_t port);
  // Coordinator side: a fresh random secret written to `path` (0600, atomic,
  // never through a symlink; replaces a stale file of a crashed coordinator).
  static StatusOr<std::unique_ptr<LocalSecret>> Create(const std::string& path);
  // Peer side: reads `path`.  Refused unless it is a regular file (not a
  // symlink) owned by the effective uid with no group/other permissions.
  // Errors name the file.
  static StatusOr<std::unique_ptr<LocalSecret>> Load(const std::string& path);
  // A credential from raw bytes (tests).
  static std::unique_ptr<LocalSecret> FromBytes(std::string secret, std::string source);

  std::string scheme() const override { return "local-secret"; }
  std::string source() const override { return source_; }
  std::string Prove(const std::string& label, const std::string& challenge) const override;
  bool Verify(const std::string& label, const std::string& challenge, const std::string& token) const override;
  // Removes the file if Create() wrote it (and only then).
  void Retire() override;

 private:
  LocalSecret(std::string secret, std::string source) : secret_(std::move(secret)), source_(std::move(source)) {}
  std::string secret_;  // raw bytes
  std::string source_;
  bool owns_file_ = false;
};

}  // namespace stasis::coordinator
