// ImageReader: positional reads only (pread), because one reader object is
// shared by the supervisor and a forked pre-restorer child and the file
// offset of a shared descriptor would race.
#include "image/reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/scoped_fd.h"
#include "image/codec.h"
#include "image/io_util.h"

namespace stasis::image {
namespace {

constexpr uint64_t kMaxPagesPerBlock = 1024;                       // 4 MiB, see writer.cc
constexpr uint64_t kMaxMetadataSize = uint64_t{256} << 20;         // sanity bound for any block, bytes
constexpr size_t kReadWindow = size_t{8} << 20;                    // bytes per pread

// A block that was read and checked up to its payload checksum.
struct RawBlock {
  BlockHeader header;
  const uint8_t* stored = nullptr;  // stored payload, valid until the next read
  uint64_t next_offset = 0;
};

class ReaderImpl final : public ImageReader {
 public:
  ReaderImpl(std::string path, ScopedFd fd, uint64_t size)
      : path_(std::move(path)), fd_(std::move(fd)), file_size_(size) {}
  ~ReaderImpl() override {
    if (dctx_) ZSTD_freeDCtx(dctx_);
  }

  const std::string& path() const override { return path_; }
  const ProcessImage& metadata() const override { return meta_; }

  Status Load() {
    if (file_size_ == 0) return Err("empty file");
    FileHeader h{};
    ASSIGN_OR_RETURN(size_t got, internal::PreadUpTo(fd_.get(), &h, sizeof h, 0, path_));
    const size_t magic_len = std::min(got, sizeof kMagic);
    if (std::memcmp(h.magic, kMagic, magic_len) != 0) return Err("not a Stasis image");
    if (got < sizeof h) return Err("truncated (file header incomplete, no end block)");
    if (h.version > kFormatVersion) {  // not damage: an older checkpoint is no help
      return Status::Error(path_ + ": image format version " + std::to_string(h.version) +
                           " is newer than this stasis supports (" + std::to_string(kFormatVersion) + ")");
    }
    if (h.version == 0) return Err("invalid image format version 0");
    if (internal::HeaderChecksum(h) != h.header_checksum) return Err("file header checksum mismatch");
    if (h.header_size != sizeof(FileHeader))
      return Err("file header: unexpected header_size " + std::to_string(h.header_size));
    version_ = h.version;

    ASSIGN_OR_RETURN(RawBlock b, ReadBlock(sizeof(FileHeader), 0));
    if (b.header.type != BlockType::kMetadata) return Err("block 0: expected the metadata block");
    if (b.header.raw_size > kMaxMetadataSize) return Err("block 0: metadata block too large");
    ASSIGN_OR_RETURN(const uint8_t* raw, Decompress(b, 0));
    auto meta = DecodeMetadata(raw, b.header.raw_size);
    if (!meta.ok()) return Status::DataLoss(meta.status().With(path_).message());  // checksummed, yet invalid
    meta_ = std::move(meta).value();
    metadata_checksum_ = b.header.payload_checksum;
    pages_offset_ = b.next_offset;
    return CheckTail();
  }

  StatusOr<ImageSummary> ReadPages(const PageSink& sink) override {
    ImageSummary sum;
    sum.file_size = file_size_;
    sum.format_version = version_;
    std::vector<uint64_t> chain{metadata_checksum_};
    std::vector<uint64_t> per_area(meta_.areas.size(), 0);
    uint64_t offset = pages_offset_;
    for (uint64_t seq = 1;; ++seq) {
      ASSIGN_OR_RETURN(RawBlock b, ReadBlock(offset, seq));
      offset = b.next_offset;
      const BlockHeader& h = b.header;
      const std::string where = "block " + std::to_string(seq) + ": ";
      if (h.type == BlockType::kEnd) {
        if (h.compression != Compression::kNone || h.raw_size != sizeof(EndPayload))
          return Err(where + "malformed end block");
        EndPayload end;
        std::memcpy(&end, b.stored, sizeof end);
        if (end.n_blocks != seq)
          return Err(where + "end block counts " + std::to_string(end.n_blocks) + " blocks, found " +
                     std::to_string(seq));
        if (end.stored_pages != sum.stored_pages)
          return Err(where + "end block counts " + std::to_string(end.stored_pages) + " pages, found " +
                     std::to_string(sum.stored_pages));
        if (end.chain_checksum != internal::Xxh3(chain.data(), chain.size() * sizeof(uint64_t)))
          return Err(where + "block chain checksum mismatch");
        if (offset != file_size_)
          return Err("trailing data after the end block (" + std::to_string(file_size_ - offset) + " bytes)");
        sum.n_blocks = seq + 1;
        for (size_t i = 0; i < per_area.size(); ++i) meta_.areas[i].stored_pages = per_area[i];
        return sum;
      }
      if (h.type != BlockType::kPages)
        return Err(where + "unexpected block type " + std::to_string(static_cast<uint32_t>(h.type)));
      chain.push_back(h.payload_checksum);
      if (h.raw_size < sizeof(PagesPayloadHeader) || (h.raw_size - sizeof(PagesPayloadHeader)) % kPageSize != 0 ||
          h.raw_size > sizeof(PagesPayloadHeader) + kMaxPagesPerBlock * kPageSize)
        return Err(where + "bad page block size " + std::to_string(h.raw_size));
      ASSIGN_OR_RETURN(const uint8_t* raw, Decompress(b, seq));
      PagesPayloadHeader ph;
      std::memcpy(&ph, raw, sizeof ph);
      const uint64_t n = (h.raw_size - sizeof ph) / kPageSize;
      if (ph.n_pages != n || n == 0)
        return Err(where + "page count " + std::to_string(ph.n_pages) + " does not match block size");
      if (ph.area_index >= meta_.areas.size())
        return Err(where + "pages for area " + std::to_string(ph.area_index) + ", but the image has " +
                   std::to_string(meta_.areas.size()) + " areas");
      const MemoryArea& area = meta_.areas[ph.area_index];
      const uint64_t area_pages = area.size() / kPageSize;
      if (ph.first_page > area_pages || n > area_pages - ph.first_page)
        return Err(where + "pages " + std::to_string(ph.first_page) + ".." +
                   std::to_string(ph.first_page + n) + " outside area " + std::to_string(ph.area_index) +
                   " (" + std::to_string(area_pages) + " pages)");
      per_area[ph.area_index] += n;
      sum.stored_pages += n;
      sum.raw_bytes += n * kPageSize;
      sum.stored_bytes += h.stored_size;
      if (sink) {
        Status st = sink(ph.area_index, ph.first_page, raw + sizeof ph, ph.n_pages);
        if (!st.ok()) return st.With(path_);
      }
    }
  }

 private:
  // Everything the reader finds wrong with the file's contents is damage.
  Status Err(const std::string& what) const { return Status::DataLoss(path_ + ": " + what); }

  // Returns `len` bytes at `offset` from the read window, refilling it with
  // one large pread if needed; nullptr (and *short_read) past end of file.
  StatusOr<const uint8_t*> Bytes(uint64_t offset, uint64_t len) {
    if (offset >= win_off_ && offset + len <= win_off_ + win_len_) return buf_.data() + (offset - win_off_);
    if (offset > file_size_ || len > file_size_ - offset) return static_cast<const uint8_t*>(nullptr);
    const uint64_t want = std::min<uint64_t>(std::max<uint64_t>(len, kReadWindow), file_size_ - offset);
    if (buf_.size() < want) buf_.resize(want);
    ASSIGN_OR_RETURN(size_t got, internal::PreadUpTo(fd_.get(), buf_.data(), want, offset, path_));
    win_off_ = offset;
    win_len_ = got;
    if (got < len) return static_cast<const uint8_t*>(nullptr);  // file shrank under us
    return static_cast<const uint8_t*>(buf_.data());
  }

  // Reads the block at `offset`, checking header checksum, sequence, sizes
  // and the stored payload's checksum.
  StatusOr<RawBlock> ReadBlock(uint64_t offset, uint64_t seq) {
    const std::string where = "block " + std::to_string(seq) + ": ";
    ASSIGN_OR_RETURN(const uint8_t* hp, Bytes(offset, sizeof(BlockHeader)));
    if (!hp) return Err("truncated (no end block): file ends inside " + where.substr(0, where.size() - 2));
    RawBlock b;
    std::memcpy(&b.header, hp, sizeof b.header);
    const BlockHeader& h = b.header;
    if (internal::HeaderChecksum(h) != h.header_checksum) return Err(where + "header checksum mismatch");
    if (h.sequence != seq)
      return Err(where + "sequence number " + std::to_string(h.sequence) + " (blocks missing or reordered)");
    if (h.compression != Compression::kNone && h.compression != Compression::kZstd)
      return Err(where + "unknown compression " + std::to_string(static_cast<uint32_t>(h.compression)));
    if (h.compression == Compression::kNone && h.stored_size != h.raw_size)
      return Err(where + "stored and raw sizes differ in an uncompressed block");
    if (h.raw_size > kMaxMetadataSize || h.stored_size > kMaxMetadataSize)
      return Err(where + "block too large (" + std::to_string(h.stored_size) + " bytes)");
    const uint64_t payload_off = offset + sizeof(BlockHeader);
    ASSIGN_OR_RETURN(b.stored, Bytes(payload_off, h.stored_size));
    if (!b.stored) return Err("truncated (no end block): file ends inside " + where.substr(0, where.size() - 2));
    if (internal::Xxh3(b.stored, h.stored_size) != h.payload_checksum)
      return Err(where + "payload checksum mismatch");
    b.next_offset = payload_off + h.stored_size;
    return b;
  }

  StatusOr<const uint8_t*> Decompress(const RawBlock& b, uint64_t seq) {
    const BlockHeader& h = b.header;
    if (h.compression == Compression::kNone) return b.stored;
    if (!dctx_) dctx_ = ZSTD_createDCtx();
    if (out_.size() < h.raw_size) out_.resize(h.raw_size);
    size_t n = ZSTD_decompressDCtx(dctx_, out_.data(), h.raw_size, b.stored, h.stored_size);
    const std::string where = "block " + std::to_string(seq) + ": ";
    if (ZSTD_isError(n)) return Err(where + "zstd: " + ZSTD_getErrorName(n));
    if (n != h.raw_size)
      return Err(where + "decompressed to " + std::to_string(n) + " bytes, expected " + std::to_string(h.raw_size));
    return static_cast<const uint8_t*>(out_.data());
  }

  // The last block must be an end block; finding it here lets a truncated
  // image fail at Open rather than halfway through a restore.
  Status CheckTail() {
    constexpr uint64_t kEndBlockSize = sizeof(BlockHeader) + sizeof(EndPayload);
    if (file_size_ < pages_offset_ + kEndBlockSize) return Err("truncated (no end block)");
    BlockHeader h;
    ASSIGN_OR_RETURN(size_t got, internal::PreadUpTo(fd_.get(), &h, sizeof h, file_size_ - kEndBlockSize, path_));
    if (got != sizeof h) return Err("truncated (no end block)");
    const bool valid = internal::HeaderChecksum(h) == h.header_checksum;
    if (h.type != BlockType::kEnd) return Err("truncated (no end block)");
    if (!valid) return Err("end block: header checksum mismatch");
    if (h.raw_size != sizeof(EndPayload) || h.stored_size != sizeof(EndPayload) ||
        h.compression != Compression::kNone)
      return Err("end block: malformed");
    return Status::Ok();
  }

  const std::string path_;
  ScopedFd fd_;
  const uint64_t file_size_;
  uint32_t version_ = 0;
  ProcessImage meta_;
  uint64_t metadata_checksum_ = 0;
  uint64_t pages_offset_ = 0;
  ZSTD_DCtx* dctx_ = nullptr;
  std::vector<uint8_t> buf_;  // read window
  uint64_t win_off_ = 0, win_len_ = 0;
  std::vector<uint8_t> out_;  // decompression output
};

}  // namespace

StatusOr<std::unique_ptr<ImageReader>> ImageReader::Open(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd && errno == ENOENT) return Status::DataLoss(path + ": open: " + std::strerror(ENOENT));  // incomplete
  if (!fd) return Status::Errno(path + ": open");
  return Open(std::move(fd), path);
}

StatusOr<std::unique_ptr<ImageReader>> ImageReader::Open(ScopedFd fd, const std::string& name) {
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return Status::Errno(name + ": fstat");
  if (!S_ISREG(st.st_mode)) return Status::DataLoss(name + ": not a regular file");
  auto r = std::make_unique<ReaderImpl>(name, std::move(fd), static_cast<uint64_t>(st.st_size));
  RETURN_IF_ERROR(r->Load());
  return std::unique_ptr<ImageReader>(std::move(r));
}

}  // namespace stasis::image
