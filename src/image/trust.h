// Whose checkpoint is this?  A restart runs the code and data of its images
// with the restarting user's rights: root restarting a directory that user
// nobody could write would run nobody's code as root.  Before a restart the
// manifest, every image and the checkpoint directory are checked with rules
// like sshd's StrictModes (sshd_config(5)):
//   * a trusted owner is the restarting user (euid) or root;
//   * a manifest or image must be a regular file with a trusted owner, not
//     writable by group or others (symlinks are followed: the target is
//     what the restart reads);
//   * the directory holding them must have a trusted owner and not be
//     writable by group or others, unless it has the sticky bit (like /tmp:
//     others may add entries but cannot replace or rename ours, so the
//     per-file checks suffice).
// `stasis restart --allow-foreign-owner` skips these checks.  A manifest
// that lists an image of another job or generation (the image header's
// job id / generation differ from the manifest's) is refused always: the
// directory mixes checkpoints and restarting it would not give the
// checkpoint-time world.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"
#include "image/manifest.h"

namespace stasis::image {

// Error naming `path`, its owner uid and mode and the rule broken.
// is_dir selects the directory rule.
Status CheckOwnership(const std::string& path, bool is_dir, uid_t me);

// The ownership rules for a manifest (may be empty), its images and their
// directory (`dir`).  Errors name the first offending path and say how to
// override.
Status CheckCheckpointOwnership(const std::string& manifest, const std::vector<std::string>& images,
                                const std::string& dir);

// The image at `image_path` belongs to manifest `m` (job id and generation
// in its header).  Errors name the image, both ids and both generations.
Status CheckImageBelongs(const Manifest& m, const std::string& manifest_path, const std::string& image_path);

}  // namespace stasis::image
