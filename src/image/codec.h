// Serialisation of the metadata model (model.h) for the image's metadata
// block (CBOR, RFC 8949, via nlohmann::json) and for `stasis inspect --json`.
// Field names and encodings are documented in docs/image-format.md.
//
// Nothing here throws: nlohmann exceptions are caught and returned as errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "image/model.h"

namespace stasis::image {

// The complete metadata as a JSON value: every field of model.h except
// MemoryArea::stored_pages (derived from the page blocks).  Byte arrays
// (vdso_bytes, siginfo) are JSON binary values, which CBOR stores as byte
// strings; the result is therefore meant for CBOR, not for text JSON.
nlohmann::json MetadataToJson(const ProcessImage& img);

// Inverse of MetadataToJson.  Unknown keys are ignored and missing keys keep
// the model's defaults (see the versioning policy); a key of the wrong type,
// an unknown enum name or an over-long fixed-size array is an error naming
// the field ("threads[1].tid: expected an integer").
StatusOr<ProcessImage> MetadataFromJson(const nlohmann::json& j);

// CBOR bytes of MetadataToJson(img): the payload of the metadata block.
std::vector<uint8_t> EncodeMetadata(const ProcessImage& img);

// Decodes a metadata block payload.  Errors: not CBOR, or as MetadataFromJson.
StatusOr<ProcessImage> DecodeMetadata(const uint8_t* data, size_t size);

// A human-oriented JSON view for `stasis inspect --json`: like MetadataToJson
// but text-JSON safe: byte arrays are summarised as {"size": bytes,
// "xxh3": "<16 hex digits>"}, and areas include "stored_pages".
nlohmann::json ToJson(const ProcessImage& img);

// Names used for the enums in both JSON forms ("anon_private", "tty", ...).
const char* AreaKindName(MemoryArea::Kind kind);
const char* FdKindName(FileDescriptor::Kind kind);

}  // namespace stasis::image
