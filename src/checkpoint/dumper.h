// Writes the image of one quiesced process.  Runs in the job supervisor
// (pid 1 of the job's pid namespace, an ancestor of every job process, so
// it may read /proc/<pid>/mem).  The process's agent has parked every thread
// and filled its control block before this is called; the process stays
// parked until the supervisor resumes or kills it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "image/model.h"
#include "image/writer.h"
#include "state/shmem.h"
#include "state/saved_files.h"

namespace stasis::checkpoint {

struct DumpRequest {
  pid_t pid = 0;
  uint64_t control_block = 0;   // address from the agent's kHello
  std::string path;             // final image path (written via <path>.tmp)
  image::CompressionSpec compression;
  uint64_t generation = 0;
  std::string job_id;
  int worker_threads = 2;
  // Ranges not to capture (the previous restorer region after a restart).
  std::vector<std::pair<uint64_t, uint64_t>> exclude;
  // Pages of shared memory objects already stored by this checkpoint's
  // earlier images (state/shmem.h); updated.  nullptr: store all.
  state::ShmemPages* shmem_done = nullptr;
  // --save-files and written files (written_files.h): copies the selected
  // files (once per checkpoint, shared by every DumpProcess of it) and
  // records them and its patterns in the image; null: nothing is saved.
  // The caller owns the copies it wrote.
  state::FileSaver* saver = nullptr;
};

struct DumpResult {
  uint64_t image_size = 0;     // bytes on disk
  uint64_t memory_bytes = 0;   // bytes of mapped memory in the process
  uint64_t stored_pages = 0;
  std::string program;
  int32_t ppid = 0;
  double seconds = 0;
  std::vector<image::FileDescriptor> sockets;  // the process's socket descriptors, for job-wide checks
  std::vector<std::string> warnings;  // what a restart will not restore (state/losses.h), also in the image
};

// Captures every kind of state (src/state/*) and commits the image.  On
// error nothing is left at `path` (the temp file is removed) and the process
// is unaffected.
StatusOr<DumpResult> DumpProcess(const DumpRequest& req);

}  // namespace stasis::checkpoint
