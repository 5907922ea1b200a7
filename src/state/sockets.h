// Sockets: capture and restore side by side.
//
// Capture (in the supervisor, target quiesced) works on a duplicate of the
// process's descriptor taken with pidfd_getfd(2): family, type, state,
// addresses, a few options, and the unread data of the receive queue,
// copied with MSG_PEEK so the process's view is unchanged (datagrams one
// by one with SO_PEEK_OFF, socket(7)).  The peer of a Unix socket is found
// with sock_diag(7) (UNIX_DIAG_PEER); a TCP peer by its address pair.
//
// Restore (restore/objects.h plans it; the supervisor creates every socket
// before the processes, listening and bound ones first, and they inherit
// what they hold):
//   * a connection whose two ends are both in the job is recreated as a new
//     connected pair: AF_UNIX by socketpair(2) (the ends are then unnamed:
//     getpeername(2) of a client of a named socket reports no path), TCP by
//     connecting to the server end's address -- through the job's listener
//     there, or a temporary one if the program had closed it -- with both
//     ports kept when free; each end is refilled with the data that was
//     waiting in its receive queue;
//   * listening and bound sockets are bound again to their address (a stale
//     Unix socket file at the path is replaced) and listen again; pending
//     connections that were not accepted yet are lost;
//   * a connection whose peer had closed (its FIN received) comes back with
//     its queued data, then end-of-file;
//   * a connection whose peer is outside the job (a license server, a
//     database) cannot be restored: the program gets a TCP socket on which
//     the next read or write fails with ECONNRESET (so it can reconnect),
//     or for AF_UNIX a socket whose peer has closed (EOF, EPIPE).  The
//     checkpoint warns about it (OutsidePeerWarning).
// Technique after DMTCP's socket plugin (drain and refill, reconnect at
// restart) and CRIU's sk-unix.c/sk-inet.c (sock_diag to pair ends); no code
// is taken from either.  Not supported: descriptors in flight (SCM_RIGHTS),
// out-of-band data, TCP data still in the sender's send queue when the
// receiver's window is full (reported as an error: the checkpoint fails
// and can be retried), families other than AF_UNIX/AF_INET/AF_INET6.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/scoped_fd.h"
#include "common/status.h"
#include "image/model.h"
#include "state/proc_target.h"

namespace stasis::state {

// "socket:[1234]" -> 1234; 0 if `path` is not a socket link.
uint64_t SocketInode(const std::string& path);

// Fills `f->socket` for every socket descriptor in `fds`.  Needs
// pidfd_getfd(2) (Linux 5.6) and ptrace access to the target.  Errors name
// the pid and fd.
Status CaptureSockets(const ProcTarget& target, std::vector<image::FileDescriptor>* fds);

// Pushes out the TCP data that the job's processes have written but the
// kernel has not sent yet (Nagle, cork), and waits until every connected
// TCP socket of `pids` has an empty send queue: run before any process is
// captured, so that the receivers' queues hold everything in flight.  Error
// (the checkpoint fails, nothing is lost) if a send queue stays non-empty
// for ~1 s because its receiver's buffer is full.
Status FlushSendQueues(const std::vector<pid_t>& pids);

// "127.0.0.1:5000", "[::1]:80", "/tmp/sock", "@abstract", "(unnamed)".
std::string SocketAddressText(const std::vector<uint8_t>& addr);

// Whether `a` and `b` are the two ends of one connection (Unix: each is the
// other's peer; inet: each one's local address is the other's peer).
bool IsConnectionPair(const image::SocketInfo& a, const image::SocketInfo& b);

// One warning per connected socket of the job whose peer is not in the job
// (judged from all socket descriptors of all processes of the job, each
// with its pid): it will not be restored as it was.
std::vector<std::string> OutsidePeerWarnings(
    const std::vector<std::pair<int32_t, image::FileDescriptor>>& job_sockets);

// --- Restore side (runs in the restoring supervisor). ---

// Recreates the connection between `a` and `b` (IsConnectionPair) and
// refills each end's receive queue.  `flags_a/b`: the descriptors' open
// flags (O_NONBLOCK is applied).  TCP: `listener` is the job's recreated
// listening socket at a's address (-1: none; a temporary one is used).
// Returns {a's end, b's end}.
StatusOr<std::array<ScopedFd, 2>> CreateConnectedPair(const image::SocketInfo& a, int flags_a,
                                                      const image::SocketInfo& b, int flags_b, int listener);

// Recreates a socket without a peer in the job (see the header comment).
// `*warning` gets a message for the user when the socket is not what it
// was (connection reset).  Error names the address.
StatusOr<ScopedFd> CreateSingleSocket(const image::SocketInfo& s, int flags, std::string* warning);

// Whether CreateSingleSocket of `s` must wait until the sockets that are
// bound or listen exist (a datagram socket connected to a named one).
bool ConnectsToAddress(const image::SocketInfo& s);

}  // namespace stasis::state
