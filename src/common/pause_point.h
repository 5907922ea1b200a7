// Fault-injection pause points (DMTCP-style "pause at phase X" debug aid):
// with STASIS_PAUSE_AT=PHASE or PHASE:GEN (several separated by ','), the
// process that reaches PHASE of checkpoint GEN (any generation without
// ":GEN") creates a marker file in the checkpoint directory, waits until
// that file is removed (at most kPauseLimitSeconds), and goes on.  Tests
// wait for the marker (never sleep), act on the job at exactly that point
// (kill -9 a process, SIGSTOP the coordinator), then remove it.
//
// Phases (docs/architecture.md "Debugging aids"):
//   quiesced  supervisor: every process quiesced, before the dump
//             (marker stasis_paused_<GEN>: the quiesced pids, one a line)
//   dumped    coordinator: every image durable, before the manifest
//   manifest  coordinator: the manifest durable, before the restart script
//   prune     coordinator: before each unlink of the prune (the marker
//             holds the path about to be deleted; one pause per file)
#pragma once

#include <cstdint>
#include <string>

namespace stasis {

constexpr double kPauseLimitSeconds = 120;

// True if STASIS_PAUSE_AT asks for a pause at `phase` of `generation`.
bool PauseRequested(const std::string& phase, uint64_t generation);

// "<dir>/stasis_paused_<generation>" for "quiesced" (as before this module
// existed), else "<dir>/stasis_paused_<phase>_<generation>".
std::string PauseMarkerPath(const std::string& dir, const std::string& phase, uint64_t generation);

// If PauseRequested(): writes `text` to the marker (atomically: the marker
// appears complete), tells stderr, and blocks until the marker is removed
// or kPauseLimitSeconds passed; removes it then.  A marker that cannot be
// written is reported on stderr and the pause skipped.
void MaybePause(const std::string& phase, uint64_t generation, const std::string& dir,
                const std::string& text);

}  // namespace stasis
