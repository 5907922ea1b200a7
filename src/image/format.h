// On-disk layout constants of a Stasis image (one process per file).
// Described for users in docs/image-format.md; keep the two in step.
//
//   FileHeader (64 bytes)
//   Block*          each: BlockHeader (48 bytes) + payload
//     kMetadata     exactly one, first: CBOR-encoded ProcessImage (model.h)
//     kPages        zero or more: PagesPayloadHeader + page bytes
//     kEnd          exactly one, last: EndPayload
// Every header and payload is checksummed with XXH3-64 (libxxhash); payloads
// may be zstd-compressed (libzstd).  Integers are little-endian.
#pragma once

#include <cstdint>

namespace stasis::image {

constexpr char kMagic[8] = {'S', 'T', 'A', 'S', 'I', 'S', 'I', 'M'};
constexpr uint32_t kFormatVersion = 1;
constexpr uint64_t kPageSize = 4096;

struct FileHeader {
  char magic[8];             // kMagic
  uint32_t version;          // kFormatVersion; readers refuse newer versions
  uint32_t header_size;      // sizeof(FileHeader)
  uint64_t created_ns;       // CLOCK_REALTIME at creation
  uint8_t reserved[32];
  uint64_t header_checksum;  // XXH3-64 of the preceding 56 bytes
};
static_assert(sizeof(FileHeader) == 64);

enum class BlockType : uint32_t { kMetadata = 1, kPages = 2, kEnd = 3 };
enum class Compression : uint32_t { kNone = 0, kZstd = 1 };

struct BlockHeader {
  BlockType type;
  Compression compression;
  uint64_t raw_size;          // payload bytes after decompression
  uint64_t stored_size;       // payload bytes in the file
  uint64_t payload_checksum;  // XXH3-64 of the stored payload bytes
  uint64_t sequence;          // 0,1,2... detects dropped or reordered blocks
  uint64_t header_checksum;   // XXH3-64 of the preceding 40 bytes
};
static_assert(sizeof(BlockHeader) == 48);

// Start of a kPages payload (before compression): `n_pages` consecutive pages
// of area `area_index`, starting `first_page` pages into the area.
struct PagesPayloadHeader {
  uint32_t area_index;
  uint32_t n_pages;
  uint64_t first_page;
};
static_assert(sizeof(PagesPayloadHeader) == 16);

struct EndPayload {
  uint64_t n_blocks;        // blocks before this one
  uint64_t stored_pages;    // total pages in kPages blocks
  uint64_t chain_checksum;  // XXH3-64 over the payload_checksums of all blocks, in order
};
static_assert(sizeof(EndPayload) == 24);

}  // namespace stasis::image
