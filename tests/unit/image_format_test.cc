// ImageWriter / ImageReader: round trips, atomicity and corruption detection.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "image/format.h"
#include "image/inspect.h"
#include "image/reader.h"
#include "image/writer.h"

namespace stasis::image {

// From image_codec_test.cc.
ProcessImage TestFullProcessImage();
void ExpectSameImage(const ProcessImage& a, const ProcessImage& b);

namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "stasis_image_test.XXXXXX").string();
    path_ = mkdtemp(t.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<uint8_t> ReadFile(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& p, const std::vector<uint8_t>& d) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(d.data()), static_cast<std::streamsize>(d.size()));
}

// Page contents: a mix of compressible and random pages, deterministic.
std::vector<uint8_t> MakePages(uint64_t n, uint32_t seed) {
  std::vector<uint8_t> v(n * kPageSize);
  std::mt19937_64 rng(seed);
  for (uint64_t p = 0; p < n; ++p) {
    uint8_t* page = v.data() + p * kPageSize;
    if (p % 3 == 0) {
      for (size_t i = 0; i < kPageSize; i += 8) {
        uint64_t r = rng();
        std::memcpy(page + i, &r, 8);
      }
    } else {
      for (size_t i = 0; i < kPageSize; ++i) page[i] = static_cast<uint8_t>((i / 16 + p + seed) & 0xff);
    }
  }
  return v;
}

// A process image with 3 areas: 0 (2000 pages), 1 (8 pages), 2 (3 pages).
ProcessImage SmallImage() {
  ProcessImage m = TestFullProcessImage();
  m.areas.resize(3);
  m.areas[0].start = 0x10000000;
  m.areas[0].end = m.areas[0].start + 2000 * kPageSize;
  m.areas[1].start = 0x20000000;
  m.areas[1].end = m.areas[1].start + 8 * kPageSize;
  m.areas[2].start = 0x30000000;
  m.areas[2].end = m.areas[2].start + 3 * kPageSize;
  return m;
}

struct Written {
  ProcessImage meta;
  // area -> page -> contents
  std::map<uint32_t, std::map<uint64_t, std::vector<uint8_t>>> pages;
  uint64_t size = 0;
};

// Writes SmallImage with: area 0 pages 0..1499 as one 6 MB run (split into
// blocks), area 0 pages 1600..1699 as 100 one-page calls (coalesced), area 1
// pages 2..5, area 2 page 2.
Written WriteSample(const std::string& path, const std::string& compression, int workers) {
  Written w;
  w.meta = SmallImage();
  auto spec = CompressionSpec::Parse(compression);
  EXPECT_TRUE(spec.ok());
  auto writer = ImageWriter::Create(path, *spec, workers);
  EXPECT_TRUE(writer.ok()) << writer.status().message();
  if (!writer.ok()) return w;
  EXPECT_TRUE((*writer)->SetMetadata(w.meta).ok());
  auto add = [&](uint32_t area, uint64_t first, uint32_t n, uint32_t seed) {
    std::vector<uint8_t> data = MakePages(n, seed);
    Status st = (*writer)->AddPages(area, first, data.data(), n);
    EXPECT_TRUE(st.ok()) << st.message();
    for (uint32_t i = 0; i < n; ++i)
      w.pages[area][first + i].assign(data.begin() + i * kPageSize, data.begin() + (i + 1) * kPageSize);
    std::fill(data.begin(), data.end(), 0xee);  // the writer must have copied it
  };
  add(0, 0, 1500, 1);
  for (uint32_t i = 0; i < 100; ++i) add(0, 1600 + i, 1, 100 + i);
  add(1, 2, 4, 7);
  add(2, 2, 1, 8);
  auto size = (*writer)->Commit();
  EXPECT_TRUE(size.ok()) << size.status().message();
  if (size.ok()) w.size = *size;
  return w;
}

Status OpenAndVerify(const std::string& path) {
  auto r = ImageReader::Open(path);
  if (!r.ok()) return r.status();
  return (*r)->Verify().status();
}

// Offsets of each block (header start) in an image file, by parsing sizes
// only (no verification).
struct BlockPos {
  uint64_t offset;
  BlockHeader header;
};
std::vector<BlockPos> ParseBlocks(const std::vector<uint8_t>& f) {
  std::vector<BlockPos> out;
  uint64_t off = sizeof(FileHeader);
  while (off + sizeof(BlockHeader) <= f.size()) {
    BlockPos b{off, {}};
    std::memcpy(&b.header, f.data() + off, sizeof b.header);
    out.push_back(b);
    off += sizeof(BlockHeader) + b.header.stored_size;
  }
  return out;
}

uint64_t HeaderSum(const BlockHeader& h) { return XXH3_64bits(&h, offsetof(BlockHeader, header_checksum)); }

// Recomputes every checksum of an uncompressed image after a test edited
// a payload, so only the semantic check under test can fail.
void Reseal(std::vector<uint8_t>& f) {
  std::vector<uint64_t> chain;
  for (const BlockPos& b : ParseBlocks(f)) {
    BlockHeader h = b.header;
    uint8_t* payload = f.data() + b.offset + sizeof h;
    if (h.type == BlockType::kEnd) {
      EndPayload e;
      std::memcpy(&e, payload, sizeof e);
      e.chain_checksum = XXH3_64bits(chain.data(), chain.size() * 8);
      std::memcpy(payload, &e, sizeof e);
    }
    h.payload_checksum = XXH3_64bits(payload, h.stored_size);
    h.header_checksum = HeaderSum(h);
    std::memcpy(f.data() + b.offset, &h, sizeof h);
    chain.push_back(h.payload_checksum);
  }
}

bool StartsWith(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

#define EXPECT_ERROR_NAMING(status, path, fragment)                                       \
  do {                                                                                    \
    const Status _s = (status);                                                           \
    EXPECT_FALSE(_s.ok());                                                                \
    EXPECT_TRUE(StartsWith(_s.message(), path)) << _s.message();                          \
    EXPECT_NE(_s.message().find(fragment), std::string::npos) << _s.message();            \
  } while (0)

TEST(CompressionSpec, ParseAndToString) {
  auto n = CompressionSpec::Parse("none");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->type, Compression::kNone);
  EXPECT_EQ(n->ToString(), "none");
  auto z = CompressionSpec::Parse("zstd");
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->type, Compression::kZstd);
  EXPECT_EQ(z->level, 1);
  EXPECT_EQ(z->ToString(), "zstd:1");
  auto z19 = CompressionSpec::Parse("zstd:19");
  ASSERT_TRUE(z19.ok());
  EXPECT_EQ(z19->level, 19);
  EXPECT_EQ(CompressionSpec::Parse(z19->ToString())->level, 19);
  for (const char* bad : {"zstd:0", "zstd:20", "zstd:", "zstd:3x", "lz4", "", "ZSTD"}) {
    auto r = CompressionSpec::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok() && *bad) {
      EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
    }
  }
}

class RoundTrip : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(RoundTrip, MetadataAndPages) {
  TempDir dir;
  const std::string path = dir / "ckpt_test_j_7_000001.stasis";
  auto [compression, workers] = GetParam();
  Written w = WriteSample(path, compression, workers);
  ASSERT_GT(w.size, 0u);
  EXPECT_EQ(w.size, fs::file_size(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);

  auto r = ImageReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->path(), path);
  ExpectSameImage(w.meta, (*r)->metadata());

  for (int pass = 0; pass < 2; ++pass) {  // ReadPages may be called again
    std::map<uint32_t, std::map<uint64_t, std::vector<uint8_t>>> got;
    auto sum = (*r)->ReadPages([&](uint32_t area, uint64_t first, const uint8_t* data, uint32_t n) {
      for (uint32_t i = 0; i < n; ++i) {
        auto& page = got[area][first + i];
        EXPECT_TRUE(page.empty()) << "page stored twice";
        page.assign(data + i * kPageSize, data + (i + 1) * kPageSize);
      }
      return Status::Ok();
    });
    ASSERT_TRUE(sum.ok()) << sum.status().message();
    EXPECT_TRUE(got == w.pages);
    EXPECT_EQ(sum->stored_pages, 1500u + 100 + 4 + 1);
    EXPECT_EQ(sum->raw_bytes, sum->stored_pages * kPageSize);
    EXPECT_EQ(sum->file_size, w.size);
    EXPECT_EQ(sum->format_version, kFormatVersion);
    // metadata + 2 blocks of 1024/476 pages + 1 coalesced run + 2 + end.
    EXPECT_EQ(sum->n_blocks, 1u + 2 + 1 + 2 + 1);
    EXPECT_EQ((*r)->metadata().areas[0].stored_pages, 1600u);
    EXPECT_EQ((*r)->metadata().areas[1].stored_pages, 4u);
    EXPECT_EQ((*r)->metadata().areas[2].stored_pages, 1u);
    if (compression == "none") {
      EXPECT_EQ(sum->stored_bytes, sum->raw_bytes + 16 * 5);
    } else {
      EXPECT_LT(sum->stored_bytes, sum->raw_bytes * 0.6);  // 2/3 of pages compress well
    }
  }
}

INSTANTIATE_TEST_SUITE_P(CompressionAndThreads, RoundTrip,
                         ::testing::Combine(::testing::Values("none", "zstd", "zstd:5"),
                                            ::testing::Values(0, 1, 2, 4)));

TEST(ImageWriter, EmptyImageHasMetadataAndEndOnly) {
  TempDir dir;
  const std::string path = dir / "empty.stasis";
  auto w = ImageWriter::Create(path, CompressionSpec{});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->SetMetadata(ProcessImage{}).ok());
  ASSERT_TRUE((*w)->Commit().ok());
  auto r = ImageReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto sum = (*r)->Verify();
  ASSERT_TRUE(sum.ok()) << sum.status().message();
  EXPECT_EQ(sum->n_blocks, 2u);
  EXPECT_EQ(sum->stored_pages, 0u);
}

TEST(ImageWriter, MisuseIsAnError) {
  TempDir dir;
  auto w = ImageWriter::Create(dir / "x.stasis", CompressionSpec{});
  ASSERT_TRUE(w.ok());
  uint8_t page[kPageSize] = {};
  EXPECT_FALSE((*w)->AddPages(0, 0, page, 1).ok());  // before SetMetadata
  ASSERT_TRUE((*w)->SetMetadata(SmallImage()).ok());
  EXPECT_FALSE((*w)->SetMetadata(SmallImage()).ok());
  EXPECT_ERROR_NAMING((*w)->AddPages(3, 0, page, 1), dir.path(), "outside area");   // no area 3
  EXPECT_ERROR_NAMING((*w)->AddPages(2, 2, page, 2), dir.path(), "outside area");   // 2+2 > 3
  EXPECT_TRUE((*w)->AddPages(2, 2, page, 1).ok());
  EXPECT_TRUE((*w)->Commit().ok());
  EXPECT_FALSE((*w)->Commit().ok());
}

TEST(ImageWriter, UncommittedLeavesNoFileAndOldImageUntouched) {
  TempDir dir;
  const std::string path = dir / "img.stasis";
  WriteFile(path, {'o', 'l', 'd'});
  {
    auto w = ImageWriter::Create(path, CompressionSpec{}, 2);
    ASSERT_TRUE(w.ok());
    EXPECT_TRUE(fs::exists(path + ".tmp"));
    ASSERT_TRUE((*w)->SetMetadata(SmallImage()).ok());
    std::vector<uint8_t> data = MakePages(1500, 3);
    ASSERT_TRUE((*w)->AddPages(0, 0, data.data(), 1500).ok());
  }  // destroyed without Commit
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(ReadFile(path), (std::vector<uint8_t>{'o', 'l', 'd'}));
  {
    auto w = ImageWriter::Create(dir / "never.stasis", CompressionSpec{}, 0);
    ASSERT_TRUE(w.ok());
  }
  EXPECT_FALSE(fs::exists(dir / "never.stasis"));
  EXPECT_FALSE(fs::exists(dir / "never.stasis.tmp"));
}

TEST(ImageWriter, CreateErrorsNameThePath) {
  TempDir dir;
  auto w = ImageWriter::Create(dir / "no/such/dir/x.stasis", CompressionSpec{});
  EXPECT_ERROR_NAMING(w.status(), dir.path(), "no/such/dir/x.stasis.tmp");
  WriteFile(dir / "busy.stasis.tmp", {1});
  auto busy = ImageWriter::Create(dir / "busy.stasis", CompressionSpec{});
  EXPECT_ERROR_NAMING(busy.status(), dir.path(), "exists");
}

TEST(ImageReader, EmptyFile) {
  TempDir dir;
  WriteFile(dir / "e.stasis", {});
  EXPECT_ERROR_NAMING(OpenAndVerify(dir / "e.stasis"), dir / "e.stasis", "empty file");
}

TEST(ImageReader, MissingFile) {
  TempDir dir;
  EXPECT_ERROR_NAMING(OpenAndVerify(dir / "nope.stasis"), dir / "nope.stasis", "No such file");
}

TEST(ImageReader, ForeignFiles) {
  TempDir dir;
  fs::copy_file("/proc/self/exe", dir / "elf");  // an ELF executable
  EXPECT_ERROR_NAMING(OpenAndVerify(dir / "elf"), dir / "elf", "not a Stasis image");
  WriteFile(dir / "text", {'h', 'e', 'l', 'l', 'o', '\n'});
  EXPECT_ERROR_NAMING(OpenAndVerify(dir / "text"), dir / "text", "not a Stasis image");
  WriteFile(dir / "tiny", {'S'});  // a prefix of the magic: a truncated image
  EXPECT_ERROR_NAMING(OpenAndVerify(dir / "tiny"), dir / "tiny", "truncated");
  EXPECT_ERROR_NAMING(OpenAndVerify(dir.path()), dir.path(), "not a regular file");
}

TEST(ImageReader, NewerVersionRefused) {
  TempDir dir;
  const std::string path = dir / "v.stasis";
  WriteSample(path, "zstd", 2);
  std::vector<uint8_t> f = ReadFile(path);
  FileHeader h;
  std::memcpy(&h, f.data(), sizeof h);
  h.version = kFormatVersion + 1;
  h.header_checksum = XXH3_64bits(&h, offsetof(FileHeader, header_checksum));
  std::memcpy(f.data(), &h, sizeof h);
  WriteFile(path, f);
  EXPECT_ERROR_NAMING(OpenAndVerify(path), path,
                      "image format version 2 is newer than this stasis supports (1)");
}

TEST(ImageReader, TruncatedAtVariousPoints) {
  TempDir dir;
  const std::string path = dir / "t.stasis";
  WriteSample(path, "zstd", 2);
  const std::vector<uint8_t> f = ReadFile(path);
  std::vector<BlockPos> blocks = ParseBlocks(f);
  ASSERT_GE(blocks.size(), 4u);
  std::vector<uint64_t> cuts = {1, 8, 30, 63, 64, 64 + 20, 64 + 48, blocks[1].offset - 1, blocks[1].offset,
                                blocks[1].offset + 48 + 100, blocks[2].offset, blocks.back().offset,
                                f.size() - 24, f.size() - 1};
  for (uint64_t cut : cuts) {
    const std::string p = dir / ("cut" + std::to_string(cut));
    WriteFile(p, std::vector<uint8_t>(f.begin(), f.begin() + static_cast<long>(cut)));
    EXPECT_ERROR_NAMING(OpenAndVerify(p), p, "truncated");
  }
  // Dropping the end block entirely says so.
  const std::string p = dir / "noend";
  WriteFile(p, std::vector<uint8_t>(f.begin(), f.begin() + static_cast<long>(blocks.back().offset)));
  EXPECT_ERROR_NAMING(OpenAndVerify(p), p, "truncated (no end block)");
}

TEST(ImageReader, TrailingGarbageDetected) {
  TempDir dir;
  const std::string path = dir / "g.stasis";
  WriteSample(path, "none", 1);
  std::vector<uint8_t> f = ReadFile(path);
  // Appending a copy of the end block keeps the tail well-formed for Open.
  std::vector<uint8_t> end(f.end() - 72, f.end());
  f.insert(f.end(), end.begin(), end.end());
  WriteFile(path, f);
  EXPECT_ERROR_NAMING(OpenAndVerify(path), path, "trailing data");
}

TEST(ImageReader, SingleBitFlipsDetected) {
  TempDir dir;
  const std::string path = dir / "b.stasis";
  WriteSample(path, "zstd", 2);
  const std::vector<uint8_t> f = ReadFile(path);
  std::vector<BlockPos> blocks = ParseBlocks(f);
  const BlockPos& meta = blocks[0];
  const BlockPos& pages = blocks[2];
  const BlockPos& end = blocks.back();
  struct Case {
    const char* what;
    uint64_t offset;
    const char* fragment;
  } cases[] = {
      {"file header", 20, "file header checksum mismatch"},
      {"file header reserved", 40, "file header checksum mismatch"},
      {"metadata header", meta.offset + 10, "block 0: header checksum mismatch"},
      {"metadata payload", meta.offset + 48 + meta.header.stored_size / 2, "block 0: payload checksum mismatch"},
      {"page block header", pages.offset + 20, "block 2: header checksum mismatch"},
      {"page payload", pages.offset + 48 + pages.header.stored_size / 2, "block 2: payload checksum mismatch"},
      {"end header", end.offset + 20, "header checksum mismatch"},
      {"end payload", end.offset + 48 + 5, "payload checksum mismatch"},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> g = f;
    g[c.offset] ^= 0x10;
    const std::string p = dir / (std::string("flip_") + std::to_string(c.offset));
    WriteFile(p, g);
    SCOPED_TRACE(c.what);
    EXPECT_ERROR_NAMING(OpenAndVerify(p), p, c.fragment);
  }
}

TEST(ImageReader, EveryByteIsProtected) {
  TempDir dir;
  const std::string path = dir / "small.stasis";
  ProcessImage m;
  m.program = "x";
  m.areas.resize(1);
  m.areas[0].start = 0x1000;
  m.areas[0].end = 0x3000;
  {
    auto w = ImageWriter::Create(path, CompressionSpec{Compression::kNone, 0}, 1);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->SetMetadata(m).ok());
    std::vector<uint8_t> d = MakePages(2, 9);
    ASSERT_TRUE((*w)->AddPages(0, 0, d.data(), 2).ok());
    ASSERT_TRUE((*w)->Commit().ok());
  }
  const std::vector<uint8_t> f = ReadFile(path);
  const std::string& p = path;
  // Flip in place with pwrite: rewriting with O_TRUNC makes ext4 flush each time.
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  for (size_t i = 0; i < f.size(); i += 3) {
    const uint8_t bad = f[i] ^ static_cast<uint8_t>(1u << (i % 8));
    ASSERT_EQ(::pwrite(fd, &bad, 1, static_cast<off_t>(i)), 1);
    Status st = OpenAndVerify(p);
    EXPECT_FALSE(st.ok()) << "undetected flip at byte " << i;
    if (!st.ok()) {
      EXPECT_TRUE(StartsWith(st.message(), p)) << st.message();
    }
    ASSERT_EQ(::pwrite(fd, &f[i], 1, static_cast<off_t>(i)), 1);
  }
  ::close(fd);
  EXPECT_TRUE(OpenAndVerify(p).ok());
}

TEST(ImageReader, PagesOutsideTheirAreaRejected) {
  TempDir dir;
  const std::string path = dir / "o.stasis";
  WriteSample(path, "none", 1);
  std::vector<uint8_t> f = ReadFile(path);
  std::vector<BlockPos> blocks = ParseBlocks(f);
  const BlockPos& last_pages = blocks[blocks.size() - 2];  // area 2, page 2, 1 page
  PagesPayloadHeader ph;
  uint8_t* at = f.data() + last_pages.offset + sizeof(BlockHeader);
  std::memcpy(&ph, at, sizeof ph);
  ASSERT_EQ(ph.area_index, 2u);
  ASSERT_EQ(ph.first_page, 2u);

  ph.first_page = 3;  // area 2 has 3 pages
  std::memcpy(at, &ph, sizeof ph);
  Reseal(f);
  WriteFile(path, f);
  EXPECT_ERROR_NAMING(OpenAndVerify(path), path, "outside area 2");

  ph.first_page = 0;
  ph.area_index = 9;
  std::memcpy(at, &ph, sizeof ph);
  Reseal(f);
  WriteFile(path, f);
  EXPECT_ERROR_NAMING(OpenAndVerify(path), path, "area 9");

  ph.area_index = 2;
  ph.n_pages = 2;  // disagrees with the block size
  std::memcpy(at, &ph, sizeof ph);
  Reseal(f);
  WriteFile(path, f);
  EXPECT_ERROR_NAMING(OpenAndVerify(path), path, "page count");
}

TEST(ImageReader, ReorderedOrDroppedBlocksRejected) {
  TempDir dir;
  const std::string path = dir / "s.stasis";
  WriteSample(path, "none", 1);
  const std::vector<uint8_t> f = ReadFile(path);
  std::vector<BlockPos> b = ParseBlocks(f);
  // Drop block 3 (valid on its own): the next block's sequence number is wrong.
  std::vector<uint8_t> g(f.begin(), f.begin() + static_cast<long>(b[3].offset));
  g.insert(g.end(), f.begin() + static_cast<long>(b[4].offset), f.end());
  WriteFile(path, g);
  EXPECT_ERROR_NAMING(OpenAndVerify(path), path, "block 3: sequence number 4");
}

TEST(ImageReader, SinkErrorStopsAndIsPrefixed) {
  TempDir dir;
  const std::string path = dir / "k.stasis";
  WriteSample(path, "zstd", 2);
  auto r = ImageReader::Open(path);
  ASSERT_TRUE(r.ok());
  int calls = 0;
  auto sum = (*r)->ReadPages([&](uint32_t, uint64_t, const uint8_t*, uint32_t) {
    ++calls;
    return Status::Error("slot full");
  });
  EXPECT_EQ(calls, 1);
  EXPECT_ERROR_NAMING(sum.status(), path, "slot full");
}

TEST(ImageReader, UsableAfterForkWithoutSharedOffsets) {
  TempDir dir;
  const std::string path = dir / "f.stasis";
  WriteSample(path, "zstd", 2);
  auto r = ImageReader::Open(path);
  ASSERT_TRUE(r.ok());
  pid_t child = fork();
  if (child == 0) _exit((*r)->Verify().ok() ? 0 : 1);
  bool parent_ok = (*r)->Verify().ok();
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(parent_ok);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(InspectImage, TextAndJson) {
  TempDir dir;
  const std::string path = dir / "i.stasis";
  WriteSample(path, "zstd", 2);
  std::ostringstream text;
  Status st = InspectImage(path, false, text);
  ASSERT_TRUE(st.ok()) << st.message();
  const std::string t = text.str();
  for (const char* s : {"python3", "/usr/bin/python3.11", "node-17", "6.1.0-18-amd64", "j1234", "UTC",
                        "worker1", "r-x", "integrity:", "OK (7 blocks verified)", "generation:     42"})
    EXPECT_NE(t.find(s), std::string::npos) << s << "\n" << t;

  std::ostringstream js;
  ASSERT_TRUE(InspectImage(path, true, js).ok());
  auto j = nlohmann::json::parse(js.str());
  EXPECT_EQ(j["integrity"], "ok");
  EXPECT_EQ(j["pid"], 7);
  EXPECT_EQ(j["stored_pages"], 1605);
  EXPECT_EQ(j["areas"][0]["stored_pages"], 1600);
}

// Found by tests/fuzz/image_reader_fuzz.cc (UBSan): a checkpoint time no
// time_t can hold was converted anyway.
TEST(InspectImage, ImpossibleCheckpointTimeIsShownAsInvalid) {
  TempDir dir;
  const std::string path = dir / "t.stasis";
  ProcessImage meta;
  meta.checkpoint_time = 1e30;
  auto w = ImageWriter::Create(path, CompressionSpec{});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->SetMetadata(meta).ok());
  ASSERT_TRUE((*w)->Commit().ok());
  std::ostringstream text;
  ASSERT_TRUE(InspectImage(path, false, text).ok());
  EXPECT_NE(text.str().find("(invalid time 1e+30)"), std::string::npos) << text.str();
}

TEST(InspectImage, CorruptImageReportsAndFails) {
  TempDir dir;
  const std::string path = dir / "c.stasis";
  WriteSample(path, "zstd", 2);
  std::vector<uint8_t> f = ReadFile(path);
  std::vector<BlockPos> b = ParseBlocks(f);
  f[b[2].offset + 48 + 10] ^= 1;
  WriteFile(path, f);
  std::ostringstream text;
  Status st = InspectImage(path, false, text);
  EXPECT_ERROR_NAMING(st, path, "payload checksum mismatch");
  EXPECT_NE(text.str().find("python3"), std::string::npos);  // what could be read
  EXPECT_NE(text.str().find("FAILED"), std::string::npos);
  std::ostringstream js;
  EXPECT_FALSE(InspectImage(path, true, js).ok());
  EXPECT_EQ(nlohmann::json::parse(js.str())["integrity"], "failed");
}

}  // namespace
}  // namespace stasis::image
