// A checkpoint is a set of process images plus a manifest, written last and
// atomically, so a checkpoint of several processes is complete or absent as a
// whole.  Manifests are JSON files "stasis_manifest_<generation>.json" in the
// checkpoint directory; images are referred to by file name relative to that
// directory, so a copied or moved directory still restarts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace stasis::image {

struct ManifestProcess {
  int32_t pid = 0;
  int32_t ppid = 0;
  std::string program;
  std::string image;        // file name inside the checkpoint directory
  uint64_t image_size = 0;  // bytes
};

struct Manifest {
  uint32_t format_version = 1;
  std::string job_id;
  uint64_t generation = 0;
  double time = 0;            // seconds since the epoch, when completed
  std::string hostname;
  std::vector<ManifestProcess> processes;
  // Settings of the job, reused by `stasis restart` unless overridden.
  double interval = 0;        // seconds; 0 = no periodic checkpoints
  uint32_t keep = 2;
  std::string compression = "zstd:1";
  std::string stasis_version;  // of the coordinator that wrote it (common/version.h); "" if older
  uint64_t total_bytes() const {
    uint64_t t = 0;
    for (const auto& p : processes) t += p.image_size;
    return t;
  }
};

// "stasis_manifest_<generation, 6+ digits>.json"
std::string ManifestFileName(uint64_t generation);
// "ckpt_<program>_<job_id>_<pid>_<generation>.stasis"
std::string ImageFileName(const std::string& program, const std::string& job_id,
                          int32_t pid, uint64_t generation);

// "saved_<job_id>_<key, 16 hex digits>_<generation>.data": a file saved into
// checkpoint `generation` with --save-files (src/state/saved_files.h).
// Copies belong to their generation: PruneCheckpoints deletes them with it.
std::string SavedFileName(const std::string& job_id, uint64_t key, uint64_t generation);

// Writes <dir>/<ManifestFileName(m.generation)> atomically (tmp+fsync+rename).
Status WriteManifest(const std::string& dir, const Manifest& m);
// Errors name the file and the problem (not JSON, missing field...).
StatusOr<Manifest> ReadManifest(const std::string& path);
// The parser behind ReadManifest, for manifest text from anywhere (the fuzz
// target tests/fuzz/manifest_fuzz.cc); errors name the problem, not a file.
StatusOr<Manifest> ParseManifest(const std::string& text);
// Paths (dir + "/" + name) of the manifests in `dir`, newest generation
// first.  Missing dir -> error.
StatusOr<std::vector<std::string>> ListManifests(const std::string& dir);
// Highest generation found among manifests and image files in dir, including
// their "*.tmp" forms (0 if none or unreadable).
uint64_t HighestGeneration(const std::string& dir);
// Called with the path of each file just before PruneCheckpoints or
// RemoveLeftovers unlinks it (the coordinator's `prune` pause point).
using BeforeUnlink = std::function<void(const std::string& path)>;

// Deletes manifests and images of all but the newest `keep` complete
// checkpoints (each older manifest before its images, so an interrupted
// prune never leaves a manifest listing a deleted image), then the
// leftovers (RemoveLeftovers).  Only called after a newer manifest is
// durable.  keep < 1 is treated as 1.  Files listed by a kept manifest are
// never deleted.  Error: the first file that could not be deleted.
Status PruneCheckpoints(const std::string& dir, uint32_t keep, const BeforeUnlink& before_unlink = {});
// Deletes what killed or failed writers left: "*.tmp" files of generations
// up to the newest manifest's, and images and saved file copies of the
// newest manifest's job that no manifest lists, of a generation older than
// the newest manifest that has no manifest (or older than every manifest).
// Never deletes a manifest or a file any manifest lists.  Used at restart.
Status RemoveLeftovers(const std::string& dir, const BeforeUnlink& before_unlink = {});

}  // namespace stasis::image
