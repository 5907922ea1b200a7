#include "image/trust.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "image/reader.h"

namespace stasis::image {

Status CheckOwnership(const std::string& path, bool is_dir, uid_t me) {
  struct stat st;
  // Follows symlinks: what is checked is what the restart will read.
  if (::stat(path.c_str(), &st) != 0) return Status::Errno(path);
  const unsigned mode = st.st_mode & 07777;
  if (is_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    return Status::Error(path + (is_dir ? ": not a directory" : ": not a regular file"));
  }
  if (st.st_uid != me && st.st_uid != 0) {
    return Status::Error(fmt::format("{}: owned by uid {}, not by you (uid {}) or root", path, st.st_uid, me));
  }
  const bool sticky = (st.st_mode & S_ISVTX) != 0;
  if ((mode & 022) != 0 && !(is_dir && sticky)) {
    return Status::Error(fmt::format("{}: mode {:04o} lets {} write it", path, mode,
                                     (mode & 002) ? "every user" : "its group"));
  }
  return Status::Ok();
}

Status CheckCheckpointOwnership(const std::string& manifest, const std::vector<std::string>& images,
                                const std::string& dir) {
  const uid_t me = ::geteuid();
  auto fail = [](const Status& st) {
    return Status::Error("refusing to restart a checkpoint another user could have written: " + st.message() +
                         " (restart with --allow-foreign-owner if you trust it)");
  };
  if (Status st = CheckOwnership(dir, true, me); !st.ok()) return fail(st);
  if (!manifest.empty()) {
    if (Status st = CheckOwnership(manifest, false, me); !st.ok()) return fail(st);
  }
  for (const auto& img : images) {
    if (Status st = CheckOwnership(img, false, me); !st.ok()) return fail(st);
  }
  return Status::Ok();
}

Status CheckImageBelongs(const Manifest& m, const std::string& manifest_path, const std::string& image_path) {
  ASSIGN_OR_RETURN(auto reader, ImageReader::Open(image_path));
  const ProcessImage& meta = reader->metadata();
  if (meta.job_id != m.job_id || meta.generation != m.generation) {
    return Status::Error(fmt::format(
        "{}: lists {}, an image of job {} generation {}, but the manifest is job {} generation {}: the "
        "directory mixes checkpoints; refusing it",
        manifest_path, image_path, meta.job_id, meta.generation, m.job_id, m.generation));
  }
  return Status::Ok();
}

}  // namespace stasis::image
