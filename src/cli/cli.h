// Shared pieces of the `stasis` command line: global options, one
// registration function per subcommand (cmd_*.cc), and helpers for finding
// the coordinator, the agent library and programs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/status.h"
#include "coordinator/client.h"
#include "job/job.h"

namespace stasis::cli {

struct GlobalOptions {
  std::string coord_host = "127.0.0.1";
  int coord_port = 7779;
  bool quiet = false;
  bool verbose = false;
  bool strict = false;  // --strict of launch/run/restart (AddStrictOption)
};

// `stasis launch ... -- PROGRAM ARGS`: what followed "--" (main.cc).
extern std::vector<std::string> g_launch_command;
extern bool g_launch_dashdash;

// A subcommand's action, run after parsing; returns the exit code.
using Action = std::function<int()>;

// Each adds its subcommand to `app` and returns the action to run if it is
// the one given.  `g` outlives the action.
Action AddLaunch(CLI::App& app, GlobalOptions& g);
Action AddRestart(CLI::App& app, GlobalOptions& g);
Action AddCheckpoint(CLI::App& app, GlobalOptions& g);
Action AddStatus(CLI::App& app, GlobalOptions& g);
Action AddQuit(CLI::App& app, GlobalOptions& g);
Action AddInspect(CLI::App& app, GlobalOptions& g);
Action AddCoordinator(CLI::App& app, GlobalOptions& g);
Action AddDoctor(CLI::App& app, GlobalOptions& g);

Action AddRun(CLI::App& app, GlobalOptions& g);

// What `stasis restart` restarts, and how (cmd_restart.cc).
struct RestartRequest {
  std::optional<double> interval;
  std::string ckptdir;   // empty: the checkpoint's directory
  std::string compress;  // empty: from the manifest
  uint32_t keep = 0;     // 0: from the manifest
  std::vector<std::string> save_files;  // --save-files as given; empty: env, else the checkpoint's
  std::vector<std::string> paths;  // a directory, a manifest, or image files
  std::optional<uint64_t> generation;  // --generation N: this checkpoint of the directory, no fallback
  bool dir_locked = false;             // the caller holds the checkpoint directory's lock (stasis run)
  bool allow_foreign_owner = false;  // --allow-foreign-owner (image/trust.h)
};

// The body of `stasis restart`: restarts the newest complete checkpoint of
// req.paths and waits for the job.  Falls back to the previous checkpoint,
// with a message, only when the newest is damaged or incomplete (an error
// with StatusCode::kDataLoss); any other error (the environment: an address
// in use, a file gone...) ends the restart, since an older checkpoint would
// silently repeat work.  Holds the lock of the checkpoint directory
// (ckpt_lock.h) unless req.dir_locked.  Returns the exit code (the
// program's; 1 with messages "stasis <cmd>: ..." on stderr if nothing could
// be restarted).  `on_attempt(manifest or first image)` runs before each try.
int RunRestart(GlobalOptions& g, RestartRequest req, const std::string& cmd,
               const std::function<void(const std::string&)>& on_attempt = {});

// Adds the global options to `app` (main.cc) so they work before or after
// the subcommand (subcommands fall through to the parent).
// Subcommands taking a free command line (launch) cannot fall through, so
// they get copies of the options without env (the parent reads the env).
void AddGlobalOptions(CLI::App& app, GlobalOptions& g, bool with_env = true);

// "stasis <cmd>: <message>" on stderr.
void PrintError(const std::string& cmd, const std::string& message);

// Absolute path of the running stasis binary (/proc/self/exe).
std::string OwnExe();
// PROGRAM as execvp would find it: a path with '/' is checked as is, else
// searched in $PATH.  nullopt if not found or not executable.
std::optional<std::string> FindProgram(const std::string& program);
// STASIS_AGENT_LIB, else <exe dir>/../lib/libstasis_agent.so, else
// <exe dir>/../lib/stasis/libstasis_agent.so.
StatusOr<std::string> FindAgentLib();
// Creates `dir` if missing and checks that it is a writable directory;
// returns its absolute path.  Errors: "--ckptdir D: not writable (...)".
StatusOr<std::string> PrepareCkptDir(const std::string& dir);
// "1.5 MiB", "312 bytes"
std::string HumanBytes(uint64_t bytes);
// Seconds since the epoch as local time, "2026-11-21 14:05:09 UTC".
std::string LocalTime(double epoch);

// Connects to the coordinator as a client.  No coordinator -> an error
// naming host:port with a hint to use 'stasis launch'.
StatusOr<std::unique_ptr<coordinator::Client>> ConnectToCoordinator(const GlobalOptions& g);

// What `stasis launch/restart` pass to a coordinator they start.
struct CoordinatorSpawn {
  std::string ckptdir;
  std::optional<double> interval;  // for a new coordinator
  bool interval_given = false;     // also set_interval on an existing one
  uint32_t keep = 2;
  std::string compression = "zstd:1";
};

// Connects to the coordinator at g's host:port, starting one (as a daemon
// with --exit-on-last) if none answers; joins an existing one otherwise
// (sending set_interval if an interval was given).  On return g.coord_port
// is the port in use (it changes when 0 asked for an ephemeral port).  The
// returned connection must stay open while the job runs: it keeps an
// --exit-on-last coordinator from exiting before the supervisor joins.
StatusOr<std::unique_ptr<coordinator::Client>> EnsureCoordinator(GlobalOptions& g, const CoordinatorSpawn& spawn);

// Adds `--save-files PATTERN` (repeatable) to a launch/run/restart command,
// and the options about files written in place (state/written_files.h):
// `--written-files-limit SIZE` (env STASIS_WRITTEN_FILES_LIMIT) and, except
// on launch, `--keep-current-files`, stored in g_written_files.
void AddSaveFilesOption(CLI::App* sub, std::vector<std::string>& patterns, bool restart);
struct WrittenFilesOptions {
  std::string limit;          // as given; empty: the default (256M)
  bool keep_current = false;
};
extern WrittenFilesOptions g_written_files;
// --strict (env STASIS_STRICT=1): a checkpoint that a restart would not
// bring back entirely fails (job::JobSettings::strict).
void AddStrictOption(CLI::App* sub, bool& strict);
// The patterns in effect: the flags, else STASIS_SAVE_FILES (colon
// separated), made absolute against the current directory
// (state/saved_files.h).  Empty: none given.
StatusOr<std::vector<std::string>> ResolveSaveFiles(const std::vector<std::string>& flags);

// The job settings common to launch and restart.
job::JobSettings MakeJobSettings(const GlobalOptions& g, const CoordinatorSpawn& spawn,
                                 const std::string& agent_lib);

}  // namespace stasis::cli
