// libFuzzer target: the image reader (src/image/reader.cc) on arbitrary
// files: file header, block headers and sequence, zstd payloads, the
// metadata block (CBOR decode, codec.cc), page blocks and the end block;
// then both `stasis inspect` renderings (JSON, text) of whatever was accepted.
//
// Input: one flag byte, then the file.  Flag bit 0 set: the harness first
// recomputes every checksum the format has (file header, block headers,
// payloads, the end block's chain), so mutations get past XXH3 and reach
// the decoders; bit 0 clear: the file as given (checksum paths).
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <vector>

#include "fuzz_util.h"
#include "image/codec.h"
#include "image/format.h"
#include "image/inspect.h"
#include "image/io_util.h"
#include "image/reader.h"

namespace {

using namespace stasis::image;
using stasis::image::internal::HeaderChecksum;
using stasis::image::internal::Xxh3;

void FixChecksums(std::vector<uint8_t>& f) {
  if (f.size() < sizeof(FileHeader)) return;
  FileHeader fh;
  std::memcpy(&fh, f.data(), sizeof fh);
  fh.header_checksum = HeaderChecksum(fh);
  std::memcpy(f.data(), &fh, sizeof fh);
  std::vector<uint64_t> chain;
  uint64_t off = sizeof(FileHeader);
  for (uint64_t seq = 0; off + sizeof(BlockHeader) <= f.size(); ++seq) {
    BlockHeader h;
    std::memcpy(&h, f.data() + off, sizeof h);
    h.sequence = seq;
    const uint64_t payload = off + sizeof h;
    const bool whole = h.stored_size <= f.size() - payload;
    if (whole) {
      if (h.type == BlockType::kEnd && h.stored_size == sizeof(EndPayload)) {
        EndPayload end;
        std::memcpy(&end, f.data() + payload, sizeof end);
        end.n_blocks = seq;
        end.chain_checksum = Xxh3(chain.data(), chain.size() * sizeof(uint64_t));
        std::memcpy(f.data() + payload, &end, sizeof end);
      }
      h.payload_checksum = Xxh3(f.data() + payload, h.stored_size);
    }
    chain.push_back(h.payload_checksum);
    h.header_checksum = HeaderChecksum(h);
    std::memcpy(f.data() + off, &h, sizeof h);
    if (!whole) break;
    off = payload + h.stored_size;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::vector<uint8_t> file(data + 1, data + size);
  if (data[0] & 1) FixChecksums(file);
  stasis::ScopedFd mem = stasis::fuzz::MemFile(file.data(), file.size());
  auto reader = ImageReader::Open(stasis::ScopedFd(::dup(mem.get())), "fuzz.stasis");
  if (!reader.ok()) return 0;
  ImageReader& r = **reader;
  const ProcessImage& meta = r.metadata();
  auto sum = r.ReadPages([&](uint32_t area, uint64_t first, const uint8_t* p, uint32_t n) -> stasis::Status {
    // The reader promised n pages inside area `area`: touch both ends.
    FUZZ_CHECK(area < meta.areas.size());
    FUZZ_CHECK(n > 0 && first + n <= meta.areas[area].size() / kPageSize);
    volatile uint8_t sink = p[0] ^ p[uint64_t{n} * kPageSize - 1];
    (void)sink;
    return stasis::Status::Ok();
  });
  if (sum.ok()) FUZZ_CHECK(sum->n_blocks >= 2 && sum->file_size == file.size());
  // What `stasis inspect --json` prints must be valid JSON text (dump throws
  // on invalid UTF-8 unless told to replace it, as inspect.cc does).
  std::string text = ToJson(meta).dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  FUZZ_CHECK(!nlohmann::json::parse(text, nullptr, false).is_discarded());
  // And the text form of `stasis inspect` (a second, full verification).
  std::ostringstream out;
  (void)InspectImage("/proc/self/fd/" + std::to_string(mem.get()), /*json=*/false, out);
  return 0;
}
