// Restart precheck of the agent library a checkpointed process mapped.
#pragma once

#include "common/status.h"
#include "image/model.h"

namespace stasis::restore {

// The restored process maps the agent library it ran with (recorded in
// img.agent.path), not the restarting Stasis's: that file must exist and be
// the one of the checkpoint (size and mtime).  Errors name the path and the
// Stasis version that wrote the image.  Images without a recorded path
// (older Stasis) pass; their areas are checked by state::CheckAreaFiles.
Status CheckAgentLibrary(const image::ProcessImage& img);

}  // namespace stasis::restore
