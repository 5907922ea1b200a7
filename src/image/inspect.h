// `stasis inspect IMAGE`: a readable (or JSON) description of one image,
// produced only after the whole file has been verified.
#pragma once

#include <ostream>
#include <string>

#include "common/status.h"

namespace stasis::image {

// Opens `path`, verifies every block (ImageReader::ReadPages) and prints the
// metadata, memory areas, descriptors, sizes and "integrity: OK (N blocks
// verified)" to `out`.  With `json`, prints one JSON object instead (with
// "integrity": "ok").  If the file cannot be opened or fails verification,
// prints whatever could be read (metadata, "integrity": "FAILED" and the
// error) and returns the error, whose message starts with the path.
Status InspectImage(const std::string& path, bool json, std::ostream& out);

}  // namespace stasis::image
