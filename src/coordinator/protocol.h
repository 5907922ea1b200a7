// The coordinator protocol: newline-delimited JSON objects over TCP
// (default 127.0.0.1:7779, env STASIS_COORD_HOST / STASIS_COORD_PORT, as
// DMTCP's dmtcp_coordinator).  Every message has "type"; every request gets
// exactly one reply with "ok": true|false and, when false, "error": a
// complete user-facing message.  The coordinator rejects peers whose uid
// (looked up in /proc/net/tcp{,6} by the peer's port) is not its own, and
// peers refuse a listener of another uid.  Every hello is authenticated
// (auth.h): it carries "auth":{"scheme":"local-secret","nonce":..}, is
// answered by {"type":"challenge","ok":true,"nonce":..,"proof":..}, and the
// peer's {"type":"auth","proof":..} then gets the hello reply below.
// Unauthenticated peers are bounded (flood.cc: 5 s, 256 idle at a time).
//
// Two kinds of peers say hello first:
//   {"type":"hello","role":"supervisor","version":1,"job_id":..,"host":..,
//    "supervisor_pid":<outer pid>,"program":..,"ckptdir":..,
//    "interval":<s>,"keep":N,"compression":"zstd:1","restarted":bool,
//    "generation":<last generation restored from, 0 for launch>}
//     reply {"ok":true,"job_id":..}
//   {"type":"hello","role":"client","version":1}     (stasis checkpoint/status/quit)
//
// Client requests (one per connection is enough):
//   {"type":"checkpoint","kill":bool}
//       reply, when the checkpoint is complete or failed:
//       {"ok":true,"generation":N,"manifest":"<abs path>","bytes":B,"seconds":S,
//        "images":[..abs paths..]}
//   {"type":"status"}
//       reply {"ok":true,"job_id":..,"state":"running"|"checkpointing",
//              "interval":S,"ckptdir":..,"keep":N,"compression":..,
//              "processes":[{"pid":..,"program":..,"host":..,"supervisor_pid":..}],
//              "last_checkpoint":null|{"generation":N,"manifest":..,"time":<epoch s>,"bytes":B,"seconds":S},
//              "checkpoints_taken":N,"last_error":null|".."}
//   {"type":"await_stop"}
//       no immediate reply: answered once, with the success reply of the
//       next checkpoint that ends the job (kill), plus "requested_by" when a
//       job process asked for it; or {"ok":false,"stopped":false,"error":..}
//       when the job's last supervisor leaves without one.  `stasis run`
//       uses it to requeue after a checkpoint it did not start itself.
//   {"type":"set_interval","interval":S}   reply {"ok":true}
//   {"type":"quit"}                         reply {"ok":true}; job killed, coordinator exits
//
// Coordinator -> supervisor (requests; the supervisor replies with the same "type"):
//   {"type":"quiesce","generation":N,"dir":"<abs ckptdir>"}
//       supervisor quiesces all its processes; reply {"ok":true} or error
//       (on error it has already resumed its processes)
//   {"type":"dump","generation":N,"dir":"<abs ckptdir>"}
//       writes one image per process; reply
//       {"ok":true,"processes":[{"pid":..,"ppid":..,"program":..,"image":"<file name>","image_size":B}]}
//       or error (its partial images for N removed)
//   {"type":"resume"}          reply {"ok":true}
//   {"type":"kill"}            SIGKILL every job process; reply {"ok":true}, then the supervisor exits
//   {"type":"abort","generation":N}  remove images of N, resume; reply {"ok":true}
// Supervisor -> coordinator (notifications, no reply):
//   {"type":"processes","processes":[{"pid":..,"program":..}]}   whenever the set changes
//   {"type":"exited","status":<exit code>}                        job's main process ended
//   {"type":"checkpoint_request","kill":true,"pid":..,"program":..,"signal":"USR1"}
//       a job process received a deferred signal (agent kCheckpointRequest):
//       the coordinator checkpoints and kills the job; requests while a
//       checkpoint runs join it (it then kills), so several processes
//       signalled at once give one checkpoint
//
// Extensions (compatible; clients must ignore unknown fields):
//   * a peer of another uid gets one line
//     {"ok":false,"error":"..","error_code":"wrong_user","uid":<coordinator uid>}
//     and the connection is closed after it has sent its hello;
//   * the client hello reply carries "job_id" (null when no job);
//   * status "state" may also be "idle" (no supervisor) or "quitting", and
//     the reply has "supervisors": <count>;
//   * a checkpoint request made while one is running is answered with the
//     result of the next checkpoint (requests are merged); a request with
//     "kill" instead joins the running checkpoint, which then kills the job
//     (the job is quiesced until the kill, so it holds the final state).
//   * with --exit-on-last the coordinator exits only while no client is
//     connected: stasis launch/restart keep their client connection open
//     until the job ends, so a coordinator cannot exit under a joining job.
//
// Checkpoint barrier: the coordinator sends quiesce to every supervisor and
// waits for all; then dump to all and waits for all; then writes the
// manifest (image::WriteManifest), the restart script
// "<ckptdir>/stasis_restart.sh", prunes (image::PruneCheckpoints), and
// finally sends resume (or kill).  Any failure before the manifest ->
// abort to all, error reply.  A supervisor left without a request for
// STASIS_COORD_TIMEOUT seconds after its quiesce or dump reply resumes its
// processes on its own and refuses a later dump of that generation; one
// whose coordinator connection drops keeps the images it wrote (the
// manifest may be durable: docs/architecture.md "Failure model").
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace stasis::coordinator {

constexpr int kProtocolVersion = 2;  // 2: authenticated hello (auth.h)
constexpr uint16_t kDefaultPort = 7779;
constexpr const char* kDefaultHost = "127.0.0.1";
constexpr const char* kHostEnv = "STASIS_COORD_HOST";
constexpr const char* kPortEnv = "STASIS_COORD_PORT";

}  // namespace stasis::coordinator
