// stasis restart [options] PATH...
#include <filesystem>
#include <iostream>

#include "cli/cli.h"
#include "image/manifest.h"
#include "image/writer.h"

namespace stasis::cli {

void AddJobOptions(CLI::App* sub, std::optional<double>& interval, std::string& ckptdir, std::string& compress,
                   uint32_t& keep, bool restart);

namespace {

namespace fs = std::filesystem;

// One way to restart: a manifest, or explicit image files.
struct Attempt {
  std::string manifest;             // empty for image files
  std::vector<std::string> images;  // absolute
  std::optional<image::Manifest> m;
  std::string dir;                  // the checkpoint's directory
};

bool LooksLikeManifest(const std::string& path) {
  std::string name = fs::path(path).filename().string();
  return name.rfind("stasis_manifest_", 0) == 0 || fs::path(path).extension() == ".json";
}

// Turns PATH... into the attempts to make, newest first.
StatusOr<std::vector<Attempt>> PlanAttempts(const std::vector<std::string>& paths) {
  std::vector<Attempt> attempts;
  std::error_code ec;
  if (paths.size() == 1 && fs::is_directory(paths[0], ec)) {
    const std::string dir = fs::absolute(paths[0]).lexically_normal().string();
    ASSIGN_OR_RETURN(std::vector<std::string> manifests, image::ListManifests(dir));
    for (const auto& m : manifests) attempts.push_back({fs::absolute(m).string(), {}, std::nullopt, dir});
    if (attempts.empty()) return Status::Error(paths[0] + ": no complete checkpoint found");
    return attempts;
  }
  if (paths.size() == 1 && LooksLikeManifest(paths[0])) {
    if (!fs::is_regular_file(paths[0], ec)) return Status::Error(paths[0] + ": no such file");
    fs::path abs = fs::absolute(paths[0]).lexically_normal();
    attempts.push_back({abs.string(), {}, std::nullopt, abs.parent_path().string()});
    return attempts;
  }
  Attempt a;
  for (const auto& p : paths) {
    if (fs::is_directory(p, ec) || LooksLikeManifest(p)) {
      return Status::Error(p + ": give either one directory, one manifest, or image files (*.stasis)");
    }
    if (!fs::is_regular_file(p, ec)) return Status::Error(p + ": no such file");
    a.images.push_back(fs::absolute(p).lexically_normal().string());
  }
  a.dir = fs::path(a.images.front()).parent_path().string();
  attempts.push_back(std::move(a));
  return attempts;
}

}  // namespace

Action AddRestart(CLI::App& app, GlobalOptions& g) {
  auto opts = std::make_shared<RestartRequest>();
  CLI::App* sub = app.add_subcommand(
      "restart",
      "Restart a checkpointed job and wait for it; exits with the program's exit code.\n"
      "PATH is a checkpoint directory (newest complete checkpoint; older ones are tried if it cannot be\n"
      "restored), a manifest file (stasis_manifest_N.json), or one or more image files (*.stasis).");
  AddJobOptions(sub, opts->interval, opts->ckptdir, opts->compress, opts->keep, true);
  AddSaveFilesOption(sub, opts->save_files, true);
  AddStrictOption(sub, g.strict);
  sub->add_option("PATH", opts->paths, "Checkpoint directory, manifest, or image files")->required();
  return [opts, &g]() -> int { return RunRestart(g, *opts, "restart"); };
}

int RunRestart(GlobalOptions& g, RestartRequest req, const std::string& cmd,
               const std::function<void(const std::string&)>& on_attempt) {
  RestartRequest* opts = &req;
  {
    auto planned = PlanAttempts(opts->paths);
    if (!planned.ok()) {
      PrintError(cmd, planned.status().message());
      return 1;
    }
    std::vector<Attempt>& attempts = *planned;
    auto agent = FindAgentLib();
    if (!agent.ok()) {
      PrintError(cmd, agent.status().message());
      return 1;
    }
    if (!opts->compress.empty()) {
      auto spec = image::CompressionSpec::Parse(opts->compress);
      if (!spec.ok()) {
        PrintError(cmd, "--compress: " + spec.status().message());
        return 1;
      }
      opts->compress = spec->ToString();
    }
    auto save_files = ResolveSaveFiles(opts->save_files);
    if (!save_files.ok()) {
      PrintError(cmd, save_files.status().message());
      return 1;
    }
    std::vector<std::string> errors;
    std::unique_ptr<coordinator::Client> client;  // held while the job runs
    for (size_t i = 0; i < attempts.size(); ++i) {
      Attempt& a = attempts[i];
      const std::string next = i + 1 < attempts.size() ? attempts[i + 1].manifest : "";
      Status failed;
      if (!a.manifest.empty()) {
        auto m = image::ReadManifest(a.manifest);
        if (m.ok()) a.m = *m;
        else failed = m.status();
      }
      CoordinatorSpawn spawn;
      if (failed.ok()) {
        auto dir = PrepareCkptDir(opts->ckptdir.empty() ? a.dir : opts->ckptdir);
        if (!dir.ok()) {
          PrintError(cmd, dir.status().message());
          return 1;
        }
        spawn.ckptdir = *dir;
        spawn.interval = opts->interval ? opts->interval : a.m ? std::optional<double>(a.m->interval) : std::nullopt;
        spawn.interval_given = opts->interval.has_value();
        spawn.keep = opts->keep ? opts->keep : a.m ? a.m->keep : 2;
        spawn.compression = !opts->compress.empty() ? opts->compress : a.m ? a.m->compression : "zstd:1";
        // One coordinator connection for all attempts: while it is open the
        // coordinator of a failed attempt stays up (--exit-on-last waits for
        // connected clients), so the next attempt never races its exit.
        if (!client) {
          auto c = EnsureCoordinator(g, spawn);
          if (!c.ok()) {
            PrintError(cmd, c.status().message());
            return 1;
          }
          client = std::move(*c);
        }
        if (on_attempt) on_attempt(a.manifest.empty() ? a.images[0] : a.manifest);
        if (g.verbose) std::cerr << "stasis: restarting " << (a.manifest.empty() ? a.images[0] : a.manifest) << "\n";
        job::JobSettings settings = MakeJobSettings(g, spawn, *agent);
        settings.save_files = *save_files;  // empty: the checkpoint's own
        auto rc = job::Restart(settings, a.manifest, a.images);
        if (rc.ok()) return *rc;
        failed = rc.status();
      }
      errors.push_back(failed.message());
      if (!next.empty()) {
        PrintError(cmd, failed.message() + "; trying the previous checkpoint " + next);
      }
    }
    if (errors.size() == 1) {
      PrintError(cmd, errors[0]);
    } else {
      PrintError(cmd, "no checkpoint could be restarted:");
      for (const auto& e : errors) std::cerr << "  " << e << "\n";
    }
    return 1;
  }
}

}  // namespace stasis::cli
