// Streams one process image to disk atomically: data goes to "<path>.tmp",
// and Commit() fsyncs it and renames it to <path>; until then an existing
// <path> (an older checkpoint) is untouched.  Destroying an uncommitted
// writer removes the temp file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "image/format.h"
#include "image/model.h"

namespace stasis::image {

struct CompressionSpec {
  Compression type = Compression::kZstd;
  int level = 1;  // zstd level (1 = fast)
  // Parses "none", "zstd" or "zstd:<level>" (level 1..19).  Errors name the bad value.
  static StatusOr<CompressionSpec> Parse(const std::string& text);
  std::string ToString() const;
};

class ImageWriter {
 public:
  // Creates <path>.tmp.  Errors: cannot create/write (message names the path).
  static StatusOr<std::unique_ptr<ImageWriter>> Create(const std::string& path,
                                                       CompressionSpec compression,
                                                       int worker_threads = 2);
  virtual ~ImageWriter() = default;

  // Writes the metadata block.  Must be called exactly once, before any
  // AddPages (readers need the memory areas before the pages).
  virtual Status SetMetadata(const ProcessImage& meta) = 0;

  // Queues `n_pages` pages (n_pages * kPageSize bytes at `data`) of area
  // `area_index`, starting at page `first_page` of that area.  The data is
  // copied or compressed before return, so `data` may be reused at once.
  // Contiguous runs of one area are merged into blocks of up to 4 MiB.
  // Errors: pages outside the area, called before SetMetadata, or an
  // earlier write failure (e.g. disk full; message names the file).
  virtual Status AddPages(uint32_t area_index, uint64_t first_page,
                          const void* data, uint32_t n_pages) = 0;

  // Writes the remaining page blocks and the end block, fsyncs, renames
  // <path>.tmp -> <path> and fsyncs the directory.  Returns the final file
  // size in bytes.  Errors (write/fsync/rename, or an earlier AddPages
  // failure) leave no file at <path>; the writer is unusable afterwards.
  virtual StatusOr<uint64_t> Commit() = 0;
};

}  // namespace stasis::image
