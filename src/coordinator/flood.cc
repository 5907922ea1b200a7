// Bounds on what peers that have not authenticated may cost the coordinator
// (a local user can open thousands of connections to its port):
//   * a peer has kHandshakeTimeout seconds from accept(2) to finish the
//     authenticated hello (auth.h), else it is disconnected;
//   * at most kMaxPendingPeers peers that have not said hello are kept:
//     accepting one more drops the oldest, so a flood of idle connections
//     rotates through the slots while a real client, which says hello at
//     once, gets through (its uid is checked at the hello, so another
//     user's connections never get past that point);
//   * when accept(2) fails for lack of descriptors or memory (EMFILE,
//     ENFILE, ENOBUFS, ENOMEM; accept(2)) the pending connection stays in the
//     queue and the listener stays readable: the older half of the peers
//     that have not said hello is dropped to free descriptors, and if there
//     is none the listener is left out of poll(2) for kAcceptBackoff seconds
//     instead of spinning on it.
#include <unistd.h>

#include <algorithm>

#include "coordinator/coordinator_impl.h"

namespace stasis::coordinator::internal {

namespace {

constexpr double kHandshakeTimeout = 5;
constexpr size_t kMaxPendingPeers = 256;
constexpr double kAcceptBackoff = 0.25;

bool Pending(const Peer& p) { return p.role == Peer::Role::kNew || p.role == Peer::Role::kRejected; }

// Candidates for dropping: peers that have not said hello yet (or were
// refused).  A peer in the middle of the handshake has passed the uid check
// (it is the owner's) and is only subject to the timeout: under a flood the
// challenge round trip must not cost the owner its slot.
bool Anonymous(const Peer& p) {
  return (p.role == Peer::Role::kNew && !p.pending_hello) || p.role == Peer::Role::kRejected;
}

}  // namespace

void CoordinatorImpl::PauseAccepting(const std::string& why, size_t drop) {
  const double now = MonotonicNow();
  // Make room: the older half of the peers that have not said hello (the
  // likeliest to be a flood) go, else they would hold every descriptor
  // until their timeout and the owner could not get in.  A real client's
  // hello is read in the loop iteration after its accept, and it is then
  // among the newest: it survives.
  std::vector<uint64_t> anonymous;
  for (const auto& [id, p] : peers_) {
    if (Anonymous(*p)) anonymous.push_back(id);
  }
  const size_t n = std::min(drop == kDropHalf ? (anonymous.size() + 1) / 2 : drop, anonymous.size());
  for (size_t i = 0; i < n; ++i) Disconnect(anonymous[i], "dropped: out of descriptors");
  // One line per episode, not one per attempt.
  static double last_log = -10;
  if (now - last_log > 10) {
    Log(why + (n ? "; dropping connections that have not authenticated" : "; not accepting for a moment"));
    last_log = now;
  }
  // Nothing to free (every descriptor is an authenticated peer's): back off.
  if (n == 0) accept_paused_until_ = now + kAcceptBackoff;
}

void CoordinatorImpl::LimitPendingPeers() {
  size_t pending = 0;
  for (const auto& [id, p] : peers_) pending += Anonymous(*p);
  // peers_ is ordered by id, i.e. by accept time: drop from the front.
  std::vector<uint64_t> drop;
  for (const auto& [id, p] : peers_) {
    if (pending <= kMaxPendingPeers) break;
    if (!Anonymous(*p)) continue;
    drop.push_back(id);
    --pending;
  }
  for (uint64_t id : drop) Disconnect(id, "dropped: too many connections waiting to authenticate");
}

void CoordinatorImpl::ExpireHandshakes(double now) {
  std::vector<uint64_t> drop;
  for (const auto& [id, p] : peers_) {
    if (Pending(*p) && now >= p->accepted_at + kHandshakeTimeout) drop.push_back(id);
  }
  for (uint64_t id : drop) Disconnect(id, "did not authenticate in time");
}

double CoordinatorImpl::NextFloodDeadline() const {
  const double now = MonotonicNow();
  double next = now + 3600;
  if (accept_paused_until_ > now) next = accept_paused_until_;
  for (const auto& [id, p] : peers_) {
    if (Pending(*p)) next = std::min(next, p->accepted_at + kHandshakeTimeout);
  }
  return next;
}

}  // namespace stasis::coordinator::internal
