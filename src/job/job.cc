// Launch / Restart: validate the settings, pick the job id, create the
// runtime directory, and run the supervisor in the job's namespaces.
#include "job/job.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "image/manifest.h"
#include "image/reader.h"
#include "image/trust.h"
#include "image/writer.h"
#include "job/namespace.h"
#include "job/runtime_dir.h"
#include "job/supervisor.h"

namespace stasis::job {
namespace {

std::string Absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return std::string(cwd) + "/" + path;
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// mkdir -p `dir` (0755 for new components).
Status MakeDirs(const std::string& dir) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::Errno("--ckptdir " + dir + ": cannot create " + partial);
    }
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return Status::Errno("--ckptdir " + dir);
  if (!S_ISDIR(st.st_mode)) return Status::Error("--ckptdir " + dir + ": not a directory");
  return Status::Ok();
}

// Creates the checkpoint directory if needed and proves it writable by
// creating and removing a file: access(2) would miss read-only mounts, full
// quotas on some file systems, and ACLs.
Status PrepareCkptDir(const std::string& dir) {
  if (dir.empty()) return Status::Error("--ckptdir: no checkpoint directory given");
  RETURN_IF_ERROR(MakeDirs(dir));
  std::string probe = dir + "/.stasis-write-test." + RandomHex(4);
  int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Errno("--ckptdir " + dir + ": not writable");
  close(fd);
  unlink(probe.c_str());
  return Status::Ok();
}

StatusOr<int> RunJob(SupervisorConfig cfg) {
  cfg.settings.ckptdir = Absolute(cfg.settings.ckptdir);
  RETURN_IF_ERROR(image::CompressionSpec::Parse(cfg.settings.compression).status());
  RETURN_IF_ERROR(PrepareCkptDir(cfg.settings.ckptdir));
  ASSIGN_OR_RETURN(RuntimeDir runtime, RuntimeDir::Create(cfg.job_id));
  cfg.socket_path = runtime.supervisor_socket();
  // `runtime` outlives the job: its destructor removes the socket directory.
  return RunInJobNamespace([&cfg](InitContext& ctx) { return RunSupervisor(cfg, ctx); });
}

}  // namespace

StatusOr<int> Launch(const JobSettings& settings, const std::vector<std::string>& argv) {
  if (argv.empty()) return Status::Error("stasis launch: no program given");
  SupervisorConfig cfg;
  cfg.settings = settings;
  cfg.job_id = RandomHex(8);
  cfg.program = Basename(argv[0]);
  cfg.argv = argv;
  return RunJob(std::move(cfg));
}

Status PrecheckRestart(const std::string& manifest_path, const std::vector<std::string>& image_paths,
                       bool allow_foreign_owner) {
  if (!image_paths.empty()) {
    for (const auto& p : image_paths) {
      if (allow_foreign_owner) break;
      const std::string path = Absolute(p);
      RETURN_IF_ERROR(image::CheckCheckpointOwnership("", {path}, Dirname(path)));
    }
    return Status::Ok();
  }
  const std::string path = Absolute(manifest_path);
  const std::string dir = Dirname(path);
  // Ownership first: a foreign manifest is not even parsed further.
  if (!allow_foreign_owner) RETURN_IF_ERROR(image::CheckCheckpointOwnership(path, {}, dir));
  ASSIGN_OR_RETURN(image::Manifest m, image::ReadManifest(path));
  std::vector<std::string> images;
  for (const auto& p : m.processes) images.push_back(dir + "/" + p.image);
  if (!allow_foreign_owner) RETURN_IF_ERROR(image::CheckCheckpointOwnership(path, images, dir));
  for (const auto& img : images) RETURN_IF_ERROR(image::CheckImageBelongs(m, path, img));
  return Status::Ok();
}

StatusOr<int> Restart(const JobSettings& settings, const std::string& manifest_path,
                      const std::vector<std::string>& image_paths) {
  // Before any image is trusted (image/trust.h): whose files, which job.
  RETURN_IF_ERROR(PrecheckRestart(manifest_path, image_paths, settings.allow_foreign_owner));
  SupervisorConfig cfg;
  cfg.settings = settings;
  cfg.restart = true;
  size_t n_processes = 0;
  if (image_paths.empty()) {
    const std::string path = Absolute(manifest_path);
    ASSIGN_OR_RETURN(image::Manifest m, image::ReadManifest(path));
    const std::string dir = Dirname(path);
    for (const auto& p : m.processes) cfg.image_paths.push_back(dir + "/" + p.image);

    n_processes = m.processes.size();
    if (n_processes > 0) cfg.program = m.processes[0].program;
    cfg.job_id = m.job_id;
    cfg.generation = m.generation;
    if (cfg.settings.ckptdir.empty()) cfg.settings.ckptdir = dir;
    // What a killed checkpoint writer left in this directory (temp files,
    // images of a generation that never got its manifest) goes now; no
    // manifest and no image a manifest lists is touched.
    if (Status st = image::RemoveLeftovers(dir); !st.ok() && !settings.quiet) {
      fprintf(stderr, "stasis: warning: %s: removing leftovers of an interrupted checkpoint: %s\n",
              dir.c_str(), st.message().c_str());
    }
  } else {
    for (const auto& p : image_paths) {
      const std::string path = Absolute(p);
      ASSIGN_OR_RETURN(auto reader, image::ImageReader::Open(path));
      const image::ProcessImage& meta = reader->metadata();
      if (cfg.job_id.empty()) {
        cfg.job_id = meta.job_id;
        cfg.generation = meta.generation;
        cfg.program = meta.program;
      }
      cfg.image_paths.push_back(path);
    }
    n_processes = image_paths.size();
    if (cfg.settings.ckptdir.empty()) cfg.settings.ckptdir = Dirname(cfg.image_paths[0]);
  }
  if (n_processes == 0) return Status::DataLoss(manifest_path + ": the checkpoint has no processes");
  if (cfg.job_id.empty()) cfg.job_id = RandomHex(8);
  return RunJob(std::move(cfg));
}

}  // namespace stasis::job
