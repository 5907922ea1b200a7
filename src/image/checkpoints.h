// The checkpoints of a directory, as `stasis inspect DIR` lists them: each
// generation found (by manifest or by image files), whether it is complete
// (manifest and every image present and verified), damaged (and why) or
// incomplete (images without a manifest: interrupted or in progress), and
// which one `stasis restart DIR` would pick: the newest complete one, after
// skipping only damaged ones (the same rule as cmd_restart.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace stasis::image {

struct CheckpointEntry {
  enum class State { kComplete, kDamaged, kIncomplete };
  uint64_t generation = 0;
  std::string manifest;       // path; empty if there is none
  double time = 0;            // seconds since the epoch: the manifest's, else the newest file's mtime
  size_t processes = 0;       // manifest entries, else image files found
  uint64_t bytes = 0;         // bytes of the files found on disk
  State state = State::kIncomplete;
  std::string problem;        // why damaged or incomplete
  bool fallback_ok = false;   // damaged in a way restart skips (StatusCode::kDataLoss)
  bool restart_pick = false;  // what `stasis restart DIR` would restart
};

const char* StateName(CheckpointEntry::State s);  // "complete", "damaged", "incomplete"

// Newest generation first.  With `verify`, every image is read in full and
// its checksums checked (ImageReader::Verify); else only opened.  Errors:
// the directory cannot be listed.
StatusOr<std::vector<CheckpointEntry>> ListCheckpoints(const std::string& dir, bool verify = true);

}  // namespace stasis::image
