// The authenticated hello of the coordinator protocol (protocol.h): both
// ends prove they hold the coordinator's credential (credential.h) without
// sending it, and a peer checks who listens before it says anything.
//
//   peer                                     coordinator
//   connect; listener uid == ours? (local addresses, /proc/net/tcp{,6})
//                                            accept; peer uid == ours?
//   hello{..., auth:{scheme, nonce: Nc}}  ->
//                                         <- {type:challenge, ok:true, nonce: Ns,
//                                             proof: Prove("coordinator", Nc/Ns)}
//   check the proof (refuse a fake coordinator)
//   {type:auth, proof: Prove("peer", Nc/Ns)} ->
//                                            check the proof, then the hello
//                                         <- the hello reply (ok / error)
//
// Nonces are 16 random bytes (getrandom) in hex.  A listener of another uid
// is refused before the hello is sent, naming the port and its uid; a
// listener that cannot produce the proof is refused before the auth is sent.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "coordinator/credential.h"
#include "coordinator/json_line.h"

namespace stasis::coordinator {

// Sends a message and returns the next message received (or an error).
using Exchange = std::function<StatusOr<Json>(const Json&)>;

// Peer side.  `fd` is the connected socket (for the listener's uid),
// `where` "host:port" for messages, `port` selects the local credential when
// `cred` is null (LocalSecret::Load(PathFor(port))).  Returns the
// coordinator's reply to the hello (which may be {"ok":false,...}, e.g.
// error_code "wrong_user"), or an error when we refuse the listener; then
// *refused is set (a foreign or unauthenticated listener, not a transport
// failure).
StatusOr<Json> AuthenticatedHello(int fd, const std::string& where, uint16_t port, Json hello,
                                  const Credential* cred, const Exchange& exchange, bool* refused);

// Coordinator side, step 1: for a hello, the challenge reply to send; keeps
// the nonces in *state.  Error: the hello has no usable "auth" (the message
// is for the peer).
struct ServerAuthState {
  std::string client_nonce, server_nonce;
};
StatusOr<Json> MakeChallenge(const Json& hello, const Credential& cred, ServerAuthState* state);
// Step 2: checks {"type":"auth","proof":..}.
Status CheckAuthReply(const Json& msg, const Credential& cred, const ServerAuthState& state);

// The uid owning the listening end of `fd`'s connection, when it is
// visible (a local address in this network namespace).  Refuses (error
// naming `where` and the uid) a uid other than the effective uid.
Status CheckListenerUid(int fd, const std::string& where);

}  // namespace stasis::coordinator
