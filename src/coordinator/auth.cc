#include "coordinator/auth.h"

#include <unistd.h>

#include <fmt/format.h>

#include "coordinator/peer_uid.h"
#include "job/runtime_dir.h"

namespace stasis::coordinator {

namespace {

constexpr size_t kNonceBytes = 16;
constexpr const char* kCoordinatorLabel = "stasis coordinator";
constexpr const char* kPeerLabel = "stasis peer";

bool IsNonce(const std::string& s) {
  return s.size() == 2 * kNonceBytes && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string Challenge(const ServerAuthState& s) { return s.client_nonce + "/" + s.server_nonce; }

}  // namespace

Status CheckListenerUid(int fd, const std::string& where) {
  auto uid = PeerUid(fd);
  // Not visible (a remote host): the credential alone decides.
  if (!uid.ok()) return Status::Ok();
  if (*uid == ::geteuid()) return Status::Ok();
  return Status::Error(fmt::format(
      "the process listening on {} belongs to uid {}, not to you (uid {}): it is not your Stasis "
      "coordinator, refusing to talk to it; use --coord-port (or STASIS_COORD_PORT) to run your own "
      "coordinator on another port",
      where, *uid, ::geteuid()));
}

StatusOr<Json> AuthenticatedHello(int fd, const std::string& where, uint16_t port, Json hello,
                                  const Credential* cred, const Exchange& exchange, bool* refused) {
  *refused = false;
  if (Status st = CheckListenerUid(fd, where); !st.ok()) {
    *refused = true;
    return st;
  }
  ServerAuthState s;
  s.client_nonce = job::RandomHex(kNonceBytes);
  hello["auth"] = {{"scheme", cred ? cred->scheme() : std::string("local-secret")}, {"nonce", s.client_nonce}};
  ASSIGN_OR_RETURN(Json reply, exchange(hello));
  if (GetString(reply, "type") != "challenge") {
    // A refusal (wrong user, version) comes back as is; anything else that
    // claims success without a challenge is not our coordinator.
    if (reply.contains("ok") && !GetBool(reply, "ok")) return reply;
    *refused = true;
    return Status::Error(where + ": the listener did not authenticate itself (no challenge in its hello reply): "
                         "not a Stasis coordinator of this version; refusing to talk to it");
  }
  std::unique_ptr<LocalSecret> loaded;
  if (!cred) {
    auto path = LocalSecret::PathFor(port);
    if (!path.ok()) return path.status().With("cannot authenticate the coordinator at " + where);
    auto l = LocalSecret::Load(*path);
    if (!l.ok()) {
      *refused = true;
      return l.status().With("cannot authenticate the coordinator at " + where);
    }
    loaded = std::move(*l);
    cred = loaded.get();
  }
  s.server_nonce = GetString(reply, "nonce");
  if (!IsNonce(s.server_nonce) || !cred->Verify(kCoordinatorLabel, Challenge(s), GetString(reply, "proof"))) {
    *refused = true;
    return Status::Error(fmt::format(
        "the process listening on {} failed to prove that it is your coordinator (wrong answer to the "
        "challenge for {}): refusing to talk to it",
        where, cred->source()));
  }
  return exchange({{"type", "auth"}, {"proof", cred->Prove(kPeerLabel, Challenge(s))}});
}

StatusOr<Json> MakeChallenge(const Json& hello, const Credential& cred, ServerAuthState* state) {
  auto it = hello.find("auth");
  if (it == hello.end() || !it->is_object()) {
    return Status::Error("the hello carries no authentication; use the same stasis binary for the whole job");
  }
  const std::string scheme = GetString(*it, "scheme");
  if (scheme != cred.scheme()) {
    return Status::Error("authentication scheme '" + scheme + "' is not supported by this coordinator (it uses '" +
                         cred.scheme() + "')");
  }
  state->client_nonce = GetString(*it, "nonce");
  if (!IsNonce(state->client_nonce)) return Status::Error("protocol error: malformed authentication nonce");
  state->server_nonce = job::RandomHex(kNonceBytes);
  return Json{{"type", "challenge"},
              {"ok", true},
              {"scheme", cred.scheme()},
              {"nonce", state->server_nonce},
              {"proof", cred.Prove(kCoordinatorLabel, Challenge(*state))}};
}

Status CheckAuthReply(const Json& msg, const Credential& cred, const ServerAuthState& state) {
  if (GetString(msg, "type") != "auth") {
    return Status::Error("protocol error: expected the authentication reply after the challenge");
  }
  if (!cred.Verify(kPeerLabel, Challenge(state), GetString(msg, "proof"))) {
    return Status::Error("authentication failed: the peer does not hold the coordinator's credential (" +
                         cred.source() + ")");
  }
  return Status::Ok();
}

}  // namespace stasis::coordinator
