// Running a job: the `stasis launch` and `stasis restart` back ends.  Both
// create the job's user+pid+mount namespace (namespace.h), run the
// supervisor as pid 1 inside it, and connect it to the coordinator.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace stasis::job {

struct JobSettings {
  std::string coord_host = "127.0.0.1";
  uint16_t coord_port = 7779;
  std::string ckptdir;            // absolute; created if missing
  double interval = 0;            // seconds; 0 = none (passed to the coordinator)
  uint32_t keep = 2;
  std::string compression = "zstd:1";
  bool verbose = false;
  bool quiet = false;
  std::string agent_lib;          // absolute path of libstasis_agent.so
  std::string stasis_exe;         // absolute path of the stasis binary (for the coordinator and restart script)
  // --save-files patterns, absolute (state/saved_files.h); restart: empty
  // means the checkpoint's own.
  std::vector<std::string> save_files;
  // Restart: skip the ownership rules of image/trust.h (--allow-foreign-owner).
  bool allow_foreign_owner = false;
  // Files written in place (state/written_files.h): bytes saved per
  // checkpoint at most (--written-files-limit), and whether a restart
  // accepts the current contents of changed unsaved ones (--keep-current-files).
  uint64_t written_files_limit = 256ull << 20;  // state::kDefaultWrittenFilesLimit
  bool keep_current_files = false;
  // --strict: a checkpoint with findings a restart would not restore
  // (state/losses.h, sockets to outside the job) fails instead of warning.
  bool strict = false;
};

// Runs `argv` (argv[0] resolved in PATH beforehand by the caller) under a new
// supervisor; blocks until every process of the job has exited.  Returns the
// exit code for `stasis launch` (the program's exit status; 128+signal if it
// was killed by a signal; 0 after `checkpoint --kill`).  Errors (namespace
// creation, coordinator unreachable...) are returned before the program starts.
StatusOr<int> Launch(const JobSettings& settings, const std::vector<std::string>& argv);

// The checks of image/trust.h for a restart of `manifest_path` (or of
// image_paths when non-empty): ownership unless allow_foreign_owner, and
// that every image of the manifest belongs to its job and generation.
// `stasis restart` calls it before it starts a coordinator; Restart()
// calls it again.
Status PrecheckRestart(const std::string& manifest_path, const std::vector<std::string>& image_paths,
                       bool allow_foreign_owner);

// Restarts the checkpoint described by `manifest_path` (or, if image_paths is
// non-empty, those image files) under a new supervisor; blocks like Launch.
StatusOr<int> Restart(const JobSettings& settings, const std::string& manifest_path,
                      const std::vector<std::string>& image_paths);

}  // namespace stasis::job
