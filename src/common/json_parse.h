// Parsing JSON text or CBOR from untrusted bytes (image metadata blocks,
// manifests, coordinator protocol lines) with a nesting limit.
//
// nlohmann::json's CBOR reader recurses once per nesting level, and so does
// dump(), so a few kilobytes of nested arrays ("[[[[..." or CBOR 0x81 0x81
// ...) overflow the stack: a crash instead of an error (found by
// tests/fuzz/metadata_fuzz.cc).  The parse is driven through the library's
// SAX interface (nlohmann::json::sax_parse, json.nlohmann.me "SAX
// interface") with the library's own DOM builder, refusing to open a 65th
// level.  Nothing Stasis writes nests deeper than 6 levels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace stasis {

constexpr size_t kMaxJsonDepth = 64;

namespace json_internal {

// json_sax_dom_parser is nlohmann's own DOM-building SAX handler (the one
// json::parse uses); only nesting is added.  sax_parse is a template on the
// handler type, so these members hide the base's without virtual calls.
class DepthLimitedSax : public nlohmann::detail::json_sax_dom_parser<nlohmann::json> {
  using Base = nlohmann::detail::json_sax_dom_parser<nlohmann::json>;

 public:
  explicit DepthLimitedSax(nlohmann::json& out) : Base(out, /*allow_exceptions_=*/false) {}
  bool start_object(std::size_t n) { return Deeper() && Base::start_object(n); }
  bool end_object() { --depth_; return Base::end_object(); }
  bool start_array(std::size_t n) { return Deeper() && Base::start_array(n); }
  bool end_array() { --depth_; return Base::end_array(); }
  template <class Exception>
  bool parse_error(std::size_t pos, const std::string& token, const Exception& ex) {
    if (error_.empty()) error_ = ex.what();
    return Base::parse_error(pos, token, ex);
  }
  bool too_deep() const { return too_deep_; }
  const std::string& error() const { return error_; }

 private:
  bool Deeper() {
    if (++depth_ <= kMaxJsonDepth) return true;
    too_deep_ = true;
    return false;
  }
  size_t depth_ = 0;
  bool too_deep_ = false;
  std::string error_;
};

}  // namespace json_internal

// Parses [data, data + size) as `format` (nlohmann::json::input_format_t::
// json or ::cbor; CBOR strictly: trailing bytes are an error).  Errors:
// "nested deeper than 64 levels" or the library's parse error text.
// Never throws.
inline StatusOr<nlohmann::json> ParseJsonLimited(const uint8_t* data, size_t size,
                                                 nlohmann::json::input_format_t format) {
  nlohmann::json out;
  json_internal::DepthLimitedSax sax(out);
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(data, data + size, &sax, format, /*strict=*/true);
  } catch (const std::exception& e) {  // e.g. out_of_range for a CBOR array longer than max_size()
    return Status::Error(e.what());
  }
  if (sax.too_deep()) return Status::Error("nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  if (!ok || sax.is_errored()) return Status::Error(sax.error().empty() ? "parse error" : sax.error());
  return out;
}

}  // namespace stasis
