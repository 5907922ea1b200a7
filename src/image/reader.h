// Reads and verifies a process image written by ImageWriter.
//
// Open() checks the file header and decodes the metadata block; ReadPages()
// streams the page blocks in file order, verifying every checksum, the block
// sequence and the end block, so a truncated, bit-flipped, empty, foreign or
// newer-version file is reported with a message naming the file and the
// problem ("ckpt_x.stasis: block 12: payload checksum mismatch").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/scoped_fd.h"
#include "common/status.h"
#include "image/format.h"
#include "image/model.h"

namespace stasis::image {

struct ImageSummary {
  uint64_t file_size = 0;        // bytes
  uint64_t n_blocks = 0;        // all blocks verified, incl. metadata and end
  uint64_t stored_pages = 0;
  uint64_t raw_bytes = 0;        // page bytes after decompression
  uint64_t stored_bytes = 0;     // page-block payload bytes in the file (as stored)
  uint32_t format_version = 0;
};

class ImageReader {
 public:
  // Errors: missing/unreadable file, not a Stasis image, newer format
  // version, corrupt header or metadata block.
  static StatusOr<std::unique_ptr<ImageReader>> Open(const std::string& path);
  // The same for an already open regular file (e.g. a memfd, as the fuzz
  // targets in tests/fuzz use); `name` stands for the path in messages.
  static StatusOr<std::unique_ptr<ImageReader>> Open(ScopedFd fd, const std::string& name);
  virtual ~ImageReader() = default;

  virtual const std::string& path() const = 0;
  virtual const ProcessImage& metadata() const = 0;

  // Called for every run of stored pages: `data` holds n_pages * kPageSize
  // bytes, valid only during the call.  A non-OK return stops the read and is
  // returned (with the file name prefixed).
  using PageSink = std::function<Status(uint32_t area_index, uint64_t first_page,
                                        const uint8_t* data, uint32_t n_pages)>;

  // Streams all page blocks from the start, verifying checksums, sequence
  // numbers and the end block; may be called more than once.  On success the
  // returned summary is complete and metadata().areas[i].stored_pages is set.
  virtual StatusOr<ImageSummary> ReadPages(const PageSink& sink) = 0;

  // ReadPages with a sink that discards data: a full integrity check.
  StatusOr<ImageSummary> Verify() { return ReadPages(nullptr); }
};

}  // namespace stasis::image
