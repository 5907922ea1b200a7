// libFuzzer target: the metadata block decoder (DecodeMetadata, codec.cc),
// straight from CBOR bytes.  Whatever decodes must re-encode to CBOR that
// decodes to the same encoding (the model survives a round trip), and its
// `inspect` JSON view must render.
#include "fuzz_util.h"
#include "image/codec.h"

using namespace stasis::image;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto img = DecodeMetadata(data, size);
  if (!img.ok()) return 0;
  const std::vector<uint8_t> once = EncodeMetadata(*img);
  auto again = DecodeMetadata(once.data(), once.size());
  if (!again.ok()) {
    std::fprintf(stderr, "re-decoding failed: %s\n", again.status().message().c_str());
    std::abort();
  }
  FUZZ_CHECK(EncodeMetadata(*again) == once);
  (void)ToJson(*img).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return 0;
}
