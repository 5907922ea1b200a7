// stasis restart [options] PATH...
#include <filesystem>
#include <iostream>

#include "cli/ckpt_lock.h"
#include "cli/cli.h"
#include "image/manifest.h"
#include "image/reader.h"
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

// Turns PATH... into the attempts to make, newest first; with `generation`
// only that checkpoint of the directory.
StatusOr<std::vector<Attempt>> PlanAttempts(const std::vector<std::string>& paths,
                                            std::optional<uint64_t> generation) {
  std::vector<Attempt> attempts;
  std::error_code ec;
  const bool is_dir = paths.size() == 1 && fs::is_directory(paths[0], ec);
  if (generation && !is_dir) return Status::Error("--generation needs a checkpoint directory as PATH");
  if (is_dir) {
    const std::string dir = fs::absolute(paths[0]).lexically_normal().string();
    ASSIGN_OR_RETURN(std::vector<std::string> manifests, image::ListManifests(dir));
    std::string have;
    for (const auto& m : manifests) {
      const std::string name = fs::path(m).filename().string();
      if (generation && name != image::ManifestFileName(*generation)) {
        have += (have.empty() ? "" : ", ") + name;
        continue;
      }
      attempts.push_back({fs::absolute(m).string(), {}, std::nullopt, dir});
    }
    if (attempts.empty() && generation) {
      return Status::Error(paths[0] + ": no checkpoint of generation " + std::to_string(*generation) + " (" +
                           (have.empty() ? "no manifest at all" : "manifests: " + have) +
                           "; see stasis inspect " + paths[0] + ")");
    }
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

bool SameDir(const std::string& a, const std::string& b) {
  std::error_code ec1, ec2;
  return fs::equivalent(a, b, ec1) || (ec1 && fs::weakly_canonical(a, ec2) == fs::weakly_canonical(b, ec2));
}

}  // namespace

Action AddRestart(CLI::App& app, GlobalOptions& g) {
  auto opts = std::make_shared<RestartRequest>();
  CLI::App* sub = app.add_subcommand(
      "restart",
      "Restart a checkpointed job and wait for it; exits with the program's exit code.\n"
      "PATH is a checkpoint directory (newest complete checkpoint; the previous one is tried only if that\n"
      "one is damaged or incomplete), a manifest file (stasis_manifest_N.json), or image files (*.stasis).");
  AddJobOptions(sub, opts->interval, opts->ckptdir, opts->compress, opts->keep, true);
  AddSaveFilesOption(sub, opts->save_files, true);
  sub->add_option("-g,--generation", opts->generation,
                  "Restart this checkpoint of the directory (see stasis inspect DIR); an error if it is "
                  "missing or damaged, no fallback");
  sub->add_flag("--allow-foreign-owner", opts->allow_foreign_owner,
                "Restart files owned by another user or writable by others (refused by default: their code "
                "would run as you)");
  AddStrictOption(sub, g.strict);
  sub->add_option("PATH", opts->paths, "Checkpoint directory, manifest, or image files")->required();
  return [opts, &g]() -> int { return RunRestart(g, *opts, "restart"); };
}

int RunRestart(GlobalOptions& g, RestartRequest req, const std::string& cmd,
               const std::function<void(const std::string&)>& on_attempt) {
  RestartRequest* opts = &req;
  auto planned = PlanAttempts(opts->paths, opts->generation);
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
  // Image files are checked before their directory is taken as ours (a
  // lock file must not appear next to a foreign file given by mistake).
  if (attempts.size() == 1 && attempts[0].manifest.empty()) {
    for (const auto& path : attempts[0].images) {
      if (auto r = image::ImageReader::Open(path); !r.ok()) {
        PrintError(cmd, r.status().message());
        return 1;
      }
    }
  }
  // Whose files, which job (image/trust.h): refused before anything is
  // created in their directory (a damaged newest checkpoint is left to the
  // fallback below, which checks each attempt again).
  if (Status st = job::PrecheckRestart(attempts[0].manifest, attempts[0].images, opts->allow_foreign_owner);
      !st.ok() && !st.IsDataLoss()) {
    PrintError(cmd, st.message());
    return 1;
  }
  auto dir = PrepareCkptDir(opts->ckptdir.empty() ? attempts[0].dir : opts->ckptdir);
  if (!dir.ok()) {
    PrintError(cmd, dir.status().message());
    return 1;
  }
  // The job writes into *dir: it must be ours alone; and the directory we
  // restart from must not belong to a job that still runs (two copies of a
  // job would share its ports and files).  Held until the job ends.
  std::vector<ScopedFd> locks;
  const std::string coordinator = g.coord_host + ":" + std::to_string(g.coord_port);
  if (!opts->dir_locked) {
    auto lock = LockCkptDir(*dir, "restart", coordinator);
    if (!lock.ok()) {
      PrintError(cmd, lock.status().message());
      return 1;
    }
    locks.push_back(std::move(*lock));
  }
  if (!SameDir(attempts[0].dir, *dir)) {
    std::optional<LockHolder> busy;
    auto lock = LockCkptDir(attempts[0].dir, "restart", coordinator, &busy);
    // A source directory we may not write (an archive) cannot have a lock
    // of ours: only a busy one is a reason to refuse.
    if (!lock.ok() && busy) {
      PrintError(cmd, lock.status().message());
      return 1;
    }
    if (lock.ok()) locks.push_back(std::move(*lock));
  }
  std::vector<std::string> errors;
  std::unique_ptr<coordinator::Client> client;  // held while the job runs
  for (size_t i = 0; i < attempts.size(); ++i) {
    Attempt& a = attempts[i];
    const std::string what = a.manifest.empty() ? a.images[0] : a.manifest;
    const std::string next = i + 1 < attempts.size() ? attempts[i + 1].manifest : "";
    Status failed;
    if (!a.manifest.empty()) {
      auto m = image::ReadManifest(a.manifest);
      if (m.ok()) a.m = *m;
      else failed = m.status();
    }
    // Whose files, which job (image/trust.h): before a coordinator starts.
    if (failed.ok()) failed = job::PrecheckRestart(a.manifest, a.images, opts->allow_foreign_owner);
    if (failed.ok()) {
      CoordinatorSpawn spawn;
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
      if (on_attempt) on_attempt(what);
      if (g.verbose) std::cerr << "stasis: restarting " << what << "\n";
      job::JobSettings settings = MakeJobSettings(g, spawn, *agent);
      settings.save_files = *save_files;  // empty: the checkpoint's own
      settings.allow_foreign_owner = opts->allow_foreign_owner;
      auto rc = job::Restart(settings, a.manifest, a.images);
      if (rc.ok()) return *rc;
      failed = rc.status();
    }
    errors.push_back(failed.message());
    if (!failed.IsDataLoss()) {
      // The environment, not the checkpoint: an older checkpoint would most
      // likely fail the same way, or worse start and repeat finished work.
      PrintError(cmd, "cannot restart " + what + ": " + failed.message());
      if (attempts.size() > 1 || opts->generation) {
        PrintError(cmd, "this is not damage of the checkpoint, so no older checkpoint is tried (it would repeat work "
                        "done since); remove the cause and restart again, or pick a checkpoint with "
                        "--generation N (list: stasis inspect " + *dir + ")");
      }
      return 1;
    }
    if (!next.empty()) {
      PrintError(cmd, failed.message() + "; the checkpoint is damaged, trying the previous checkpoint " + next);
    }
  }
  if (errors.size() == 1) {
    PrintError(cmd, errors[0]);
  } else {
    PrintError(cmd, "no checkpoint could be restarted (all damaged):");
    for (const auto& e : errors) std::cerr << "  " << e << "\n";
  }
  return 1;
}

}  // namespace stasis::cli
