// stasis launch [options] [--] PROGRAM ARGS...
#include <iostream>

#include "cli/ckpt_lock.h"
#include "cli/cli.h"
#include "image/writer.h"
#include "state/saved_files.h"
#include "state/written_files.h"

#include <unistd.h>
#include <climits>
#include <cstdlib>

namespace stasis::cli {

std::vector<std::string> g_launch_command;
bool g_launch_dashdash = false;

namespace {

struct LaunchOptions {
  std::optional<double> interval;
  std::string ckptdir;
  std::string compress = "zstd:1";
  uint32_t keep = 2;
  std::vector<std::string> save_files;
};

}  // namespace

void AddJobOptions(CLI::App* sub, std::optional<double>& interval, std::string& ckptdir, std::string& compress,
                   uint32_t& keep, bool restart);

Action AddLaunch(CLI::App& app, GlobalOptions& g) {
  auto opts = std::make_shared<LaunchOptions>();
  CLI::App* sub = app.add_subcommand(
      "launch",
      "Run PROGRAM ARGS... under Stasis so that it can be checkpointed; exits with the program's exit code.\n"
      "Starts a coordinator at --coord-host:--coord-port if none answers; fails if the one there already\n"
      "serves a job (use another --coord-port, -p 0 for any free port, or 'stasis quit' that job).");
  AddJobOptions(sub, opts->interval, opts->ckptdir, opts->compress, opts->keep, false);
  AddSaveFilesOption(sub, opts->save_files, false);
  AddStrictOption(sub, g.strict);
  // Everything from the first non-option word on is the program's command line.
  // (CLI11 checks fallthrough before prefix_command, hence the own copies
  // of the global options.)
  sub->prefix_command();
  sub->fallthrough(false);
  AddGlobalOptions(*sub, g, /*with_env=*/false);
  sub->footer("Example: stasis launch -i 60 -c /scratch/ckpt -- ./simulate --steps 1000");
  return [sub, opts, &g]() -> int {
    std::vector<std::string> argv = sub->remaining();
    if (g_launch_dashdash) {
      // Either `launch [opts] -- PROG ARGS`, or the "--" was one of the
      // program's arguments (`launch PROG a -- b`).
      if (!argv.empty()) argv.push_back("--");
      argv.insert(argv.end(), g_launch_command.begin(), g_launch_command.end());
    }
    if (argv.empty()) {
      PrintError("launch", "no program given (usage: stasis launch [options] [--] PROGRAM ARGS...)");
      return 2;
    }
    auto program = FindProgram(argv[0]);
    if (!program) {
      PrintError("launch", argv[0] + ": command not found");
      return 127;
    }
    argv[0] = *program;
    auto spec = image::CompressionSpec::Parse(opts->compress);
    if (!spec.ok()) {
      PrintError("launch", "--compress: " + spec.status().message());
      return 1;
    }
    auto dir = PrepareCkptDir(opts->ckptdir.empty() ? "." : opts->ckptdir);
    if (!dir.ok()) {
      PrintError("launch", dir.status().message());
      return 1;
    }
    auto agent = FindAgentLib();
    if (!agent.ok()) {
      PrintError("launch", agent.status().message());
      return 1;
    }
    auto save_files = ResolveSaveFiles(opts->save_files);
    if (!save_files.ok()) {
      PrintError("launch", save_files.status().message());
      return 1;
    }
    // The directory belongs to one job: held until the job ends.  A launch
    // that joins the running job of its coordinator (same host, same
    // coordinator as the holder's) is part of that job and goes on.
    const std::string coordinator = g.coord_host + ":" + std::to_string(g.coord_port);
    std::optional<LockHolder> holder;
    auto lock = LockCkptDir(*dir, "launch", coordinator, &holder, /*wait_ms=*/0);
    const bool joining = !lock.ok() && holder && holder->host == ThisHost() && holder->coordinator == coordinator &&
                         g.coord_port != 0 && ConnectToCoordinator(g).ok();
    if (!lock.ok() && !joining) lock = LockCkptDir(*dir, "launch", coordinator);  // the holder may be ending
    if (!lock.ok() && !joining) {
      PrintError("launch", lock.status().message());
      return 1;
    }
    CoordinatorSpawn spawn{*dir, opts->interval, opts->interval.has_value(), opts->keep, spec->ToString()};
    auto client = EnsureCoordinator(g, spawn);
    if (!client.ok()) {
      PrintError("launch", client.status().message());
      return 1;
    }
    job::JobSettings settings = MakeJobSettings(g, spawn, *agent);
    settings.save_files = *save_files;
    auto rc = job::Launch(settings, argv);
    if (!rc.ok()) {
      PrintError("launch", rc.status().message());
      return 1;
    }
    return *rc;
  };
}

// Options shared by launch and restart.  For restart, unset values come
// from the checkpoint's manifest, so no defaults are shown.
void AddJobOptions(CLI::App* sub, std::optional<double>& interval, std::string& ckptdir, std::string& compress,
                   uint32_t& keep, bool restart) {
  sub->add_option("-i,--interval", interval,
                  restart ? "Seconds between automatic checkpoints; 0 = none (default: as when checkpointed)"
                          : "Seconds between automatic checkpoints; 0 = none (default: 0, or the running job's)")
      ->check(CLI::NonNegativeNumber);
  auto* c = sub->add_option("-c,--ckptdir", ckptdir,
                            restart ? "Directory for new checkpoints (default: the checkpoint's own directory; "
                                      "STASIS_CKPT_DIR does not apply to a restart)"
                                    : "Directory for checkpoint images, manifests and stasis_restart.sh; created "
                                      "if missing (env STASIS_CKPT_DIR; default: current directory)");
  if (!restart) c->envname("STASIS_CKPT_DIR");
  auto* z = sub->add_option("--compress", compress,
                            "Image compression: none, zstd or zstd:LEVEL (1-19)" +
                                std::string(restart ? " (default: as when checkpointed)" : " (default: zstd:1)"));
  (void)z;
  sub->add_option("--keep", keep,
                  "Number of complete checkpoints kept in the directory; older ones are deleted" +
                      std::string(restart ? " (default: as when checkpointed)" : " (default: 2)"))
      ->check(CLI::Range(1u, 1000000u));
}

}  // namespace stasis::cli

namespace stasis::cli {

WrittenFilesOptions g_written_files;
void AddStrictOption(CLI::App* sub, bool& strict) {
  sub->add_flag("--strict", strict,
                "Fail a checkpoint (the job keeps running, earlier checkpoints stay) if a restart would "
                "not bring back everything: descriptors of kinds not supported yet, deleted files whose "
                "contents are not saved, sockets to outside the job (env STASIS_STRICT=1)")
      ->envname("STASIS_STRICT");
}

void AddSaveFilesOption(CLI::App* sub, std::vector<std::string>& patterns, bool restart) {
  sub->add_option("--written-files-limit", g_written_files.limit,
                  "Bytes of files open for writing (and writable MAP_SHARED mappings) saved into each "
                  "checkpoint, so that a restart puts them back as they were: e.g. 256M (the default), "
                  "2G, 0 for none. A written file left out must be unchanged at restart (env "
                  "STASIS_WRITTEN_FILES_LIMIT; a restart does not take it from the checkpoint)")
      ->type_name("SIZE")
      ->envname("STASIS_WRITTEN_FILES_LIMIT")
      ->check(CLI::Validator(
          [](std::string& v) {
            auto n = state::ParseByteSize(v);
            return n.ok() ? std::string() : n.status().message();
          },
          ""));
  if (sub->get_name() != "launch") {
    sub->add_flag("--keep-current-files", g_written_files.keep_current,
                  "Restart even if a file the job had open for writing changed after the checkpoint and "
                  "was not saved in it (over --written-files-limit): the program continues with its "
                  "current contents");
  }
  sub->add_option("--save-files", patterns,
                  "Save the contents of open files whose absolute path matches PATTERN (a glob; * also "
                  "matches /, so \"$TMPDIR/*\" is everything below $TMPDIR) in each checkpoint, and "
                  "write them back at restart: node-local scratch. Any pattern also saves every open file "
                  "that was deleted. Repeatable (env STASIS_SAVE_FILES, colon separated" +
                      std::string(restart ? "; default: as when checkpointed)" : ")"))
      ->type_name("PATTERN")
      ->expected(1)  // one per occurrence: `--save-files P PROGRAM` must leave PROGRAM alone
      ->allow_extra_args(false)
      ->take_all();
}

StatusOr<std::vector<std::string>> ResolveSaveFiles(const std::vector<std::string>& flags) {
  std::vector<std::string> patterns = flags;
  if (patterns.empty()) {
    if (const char* env = std::getenv("STASIS_SAVE_FILES")) patterns = state::SplitSavePatterns(env);
  }
  char cwd[PATH_MAX];
  if (::getcwd(cwd, sizeof cwd) == nullptr) cwd[0] = '\0';
  return state::NormalizeSavePatterns(patterns, cwd[0] ? cwd : "/");
}

}  // namespace stasis::cli
