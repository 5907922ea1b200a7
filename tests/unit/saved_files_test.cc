// Saved files (--save-files): pattern rule, the saved copy (sparse, atomic,
// checksummed), capture from a live process holding a deleted file, restore
// (verify first, recreate, deleted files reopened through the supervisor's
// descriptor) and pruning of copies with their checkpoint.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "image/codec.h"
#include "image/manifest.h"
#include "paused_child.h"
#include "state/files.h"
#include "state/saved_files.h"

namespace stasis::state {
namespace {

namespace fs = std::filesystem;
using Kind = image::FileDescriptor::Kind;

class SavedFilesDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "stasis_saved_files_test.XXXXXX").string();
    dir_ = mkdtemp(t.data());
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static std::string ReadFd(int fd) {
    std::string out;
    char buf[4096];
    ssize_t n;
    off_t at = 0;
    while ((n = pread(fd, buf, sizeof buf, at)) > 0) {
      out.append(buf, static_cast<size_t>(n));
      at += n;
    }
    return out;
  }
  std::string dir_;
};

image::FileDescriptor Regular(const std::string& path) {
  image::FileDescriptor f;
  f.fd = 3;
  f.kind = Kind::kRegular;
  f.path = path;
  return f;
}

TEST(SavePatterns, SplitAndNormalize) {
  EXPECT_EQ(SplitSavePatterns("/a/*::/b/*:"), (std::vector<std::string>{"/a/*", "/b/*"}));
  EXPECT_TRUE(SplitSavePatterns("").empty());
  auto n = NormalizeSavePatterns({"/tmp/*", "out/*.dat", "./x", "*.log", "/tmp/*"}, "/home/u/run");
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, (std::vector<std::string>{"/tmp/*", "/home/u/run/out/*.dat", "/home/u/run/x", "*.log"}));
  EXPECT_FALSE(NormalizeSavePatterns({""}, "/").ok());
}

TEST(SavePatterns, StarAlsoMatchesSlash) {
  const std::vector<std::string> p = {"/scratch/job/*", "*.ckpt"};
  EXPECT_TRUE(MatchesSavePattern(p, "/scratch/job/a.dat"));
  EXPECT_TRUE(MatchesSavePattern(p, "/scratch/job/sub/dir/b.dat"));  // the whole tree below
  EXPECT_FALSE(MatchesSavePattern(p, "/scratch/jobs/a.dat"));
  EXPECT_FALSE(MatchesSavePattern(p, "/scratch/job"));
  EXPECT_TRUE(MatchesSavePattern(p, "/home/u/state.ckpt"));
  EXPECT_FALSE(MatchesSavePattern({}, "/anything"));
}

TEST(SavePatterns, WhichDescriptorsAreSaved) {
  const std::vector<std::string> p = {"/tmp/*"};
  EXPECT_TRUE(ShouldSaveFile(p, Regular("/tmp/x")));
  EXPECT_FALSE(ShouldSaveFile(p, Regular("/home/x")));
  // Deleted files are saved whatever their path once any pattern is given...
  EXPECT_TRUE(ShouldSaveFile(p, Regular("/home/x (deleted)")));
  // ...and never without one.
  EXPECT_FALSE(ShouldSaveFile({}, Regular("/tmp/x (deleted)")));
  image::FileDescriptor out = Regular("/tmp/log");
  out.stdio_alias = 1;  // follows the restarting command's stdout instead
  EXPECT_FALSE(ShouldSaveFile(p, out));
  image::FileDescriptor dir = Regular("/tmp/d");
  dir.kind = Kind::kDirectory;
  EXPECT_FALSE(ShouldSaveFile(p, dir));
  EXPECT_EQ(LivePath("/a/b (deleted)"), std::make_pair(std::string("/a/b"), true));
  EXPECT_EQ(LivePath("/a/b"), std::make_pair(std::string("/a/b"), false));
}

TEST_F(SavedFilesDir, CopyIsSparseAtomicAndVerified) {
  // 8 MiB with data only at 0 and 6 MiB: the copy keeps the holes.
  const std::string src = Path("src");
  ScopedFd in(open(src.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(in);
  ASSERT_EQ(pwrite(in.get(), "head", 4, 0), 4);
  ASSERT_EQ(pwrite(in.get(), "middle", 6, 6 << 20), 6);
  ASSERT_EQ(ftruncate(in.get(), 8 << 20), 0);
  auto st = WriteSavedCopy(in.get(), 8 << 20, Path("copy"), "src");
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ(st->size, 8u << 20);
  EXPECT_FALSE(fs::exists(Path("copy.tmp")));
  EXPECT_EQ(Read(Path("copy")), Read(src));
  struct stat cs;
  ASSERT_EQ(stat(Path("copy").c_str(), &cs), 0);
  EXPECT_EQ(cs.st_size, 8 << 20);
  EXPECT_LT(cs.st_blocks * 512, 1 << 20) << "holes were written out";

  image::SavedFile s;
  s.size = st->size;
  s.xxh3 = st->xxh3;
  EXPECT_TRUE(VerifySavedCopy(Path("copy"), s).ok());
  // One flipped byte (inside a hole, too) is caught by the checksum.
  {
    ScopedFd c(open(Path("copy").c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_EQ(pwrite(c.get(), "X", 1, 3 << 20), 1);
  }
  Status bad = VerifySavedCopy(Path("copy"), s);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("corrupt: checksum"), std::string::npos) << bad.message();
  ASSERT_EQ(truncate(Path("copy").c_str(), 100), 0);
  bad = VerifySavedCopy(Path("copy"), s);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("100 bytes, the checkpoint recorded 8388608"), std::string::npos) << bad.message();
  EXPECT_FALSE(VerifySavedCopy(Path("missing"), s).ok());

  // A source shorter than announced leaves nothing behind.
  auto short_src = WriteSavedCopy(in.get(), 9 << 20, Path("copy2"), "src");
  EXPECT_FALSE(short_src.ok());
  EXPECT_FALSE(fs::exists(Path("copy2")));
  EXPECT_FALSE(fs::exists(Path("copy2.tmp")));
}

// A live process holding a scratch file (twice: dup) and a deleted file:
// each is copied once, the image fields are set, and Prepare() brings both
// back -- the scratch file at its path, the deleted one open and unlinked.
TEST_F(SavedFilesDir, CaptureOnceAndRestore) {
  const std::string scratch = Path("scratch");
  ASSERT_EQ(mkdir(scratch.c_str(), 0700), 0);
  const std::string kept = scratch + "/kept.dat", gone = scratch + "/gone.tmp";
  const std::string ckpt = Path("ckpt");
  ASSERT_EQ(mkdir(ckpt.c_str(), 0700), 0);
  testing::PausedChild child([&] {
    umask(0);
    int a = dup2(open(kept.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0640), 20);
    int b = dup2(open(gone.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600), 21);
    if (a != 20 || b != 21 || dup2(a, 22) != 22) _exit(1);
    if (write(a, "kept contents\n", 14) != 14 || write(b, "deleted contents\n", 17) != 17) _exit(1);
    unlink(gone.c_str());
  });
  ASSERT_TRUE(child.ready());
  auto target = ProcTarget::Open(child.pid());
  ASSERT_TRUE(target.ok()) << target.status().message();
  auto fds = CaptureFiles(*target, -1);
  ASSERT_TRUE(fds.ok()) << fds.status().message();
  FileSaver saver(ckpt, "job7", 3, {scratch + "/*"});
  ASSERT_TRUE(saver.Save(*target, &*fds).ok());
  EXPECT_EQ(saver.files(), 2u);
  EXPECT_EQ(saver.TakeWritten().size(), 2u);
  EXPECT_TRUE(saver.TakeWritten().empty());

  image::ProcessImage img;
  for (const auto& f : *fds)
    if (f.fd >= 20 && f.fd <= 22) img.fds.push_back(f);
  ASSERT_EQ(img.fds.size(), 3u);
  for (const auto& f : img.fds) ASSERT_TRUE(f.saved) << f.fd;
  EXPECT_EQ(img.fds[0].saved->name, img.fds[2].saved->name);  // fd 22 is a dup of fd 20
  EXPECT_FALSE(img.fds[0].saved->deleted);
  EXPECT_EQ(img.fds[0].saved->mode, 0640u);
  EXPECT_TRUE(img.fds[1].saved->deleted);
  EXPECT_EQ(img.fds[1].saved->size, 17u);
  // The names say generation and job, so pruning finds them.
  EXPECT_EQ(img.fds[0].saved->name.rfind("saved_job7_", 0), 0u);
  EXPECT_NE(img.fds[0].saved->name.find("_000003.data"), std::string::npos);

  // Another node: the scratch directory is gone.
  fs::remove_all(scratch);
  {
    auto restored = SavedFilesRestore::Prepare({&img}, {ckpt});
    ASSERT_TRUE(restored.ok()) << restored.status().message();
    EXPECT_EQ(restored->files(), 2u);
    EXPECT_EQ(Read(kept), "kept contents\n");
    struct stat ks;
    ASSERT_EQ(stat(kept.c_str(), &ks), 0);
    EXPECT_EQ(ks.st_mode & 07777, 0640u);
    EXPECT_FALSE(fs::exists(gone)) << "a deleted file must stay deleted";
    EXPECT_EQ(SavedOpenPath(img.fds[0]), kept);
    const std::string open_path = SavedOpenPath(img.fds[1]);
    ASSERT_EQ(open_path.rfind("/proc/", 0), 0u) << open_path;
    ScopedFd d(open(open_path.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(d) << open_path;
    EXPECT_EQ(ReadFd(d.get()), "deleted contents\n");
    struct stat ds;
    ASSERT_EQ(fstat(d.get(), &ds), 0);
    EXPECT_EQ(ds.st_nlink, 0u);
    char link[4096] = {};
    ASSERT_GT(readlink(("/proc/self/fd/" + std::to_string(d.get())).c_str(), link, sizeof link - 1), 0);
    EXPECT_EQ(std::string(link), gone + " (deleted)");
  }
  EXPECT_EQ(SavedOpenPath(img.fds[1]), "") << "the table is forgotten with the restore";

  // An open directory below the pattern comes back (empty) too.
  fs::remove_all(scratch);
  image::FileDescriptor sub = Regular(scratch + "/sub/dir");
  sub.kind = Kind::kDirectory;
  img.save_files = {scratch + "/*"};
  img.fds.push_back(sub);
  {
    auto restored = SavedFilesRestore::Prepare({&img}, {ckpt});
    ASSERT_TRUE(restored.ok()) << restored.status().message();
    EXPECT_TRUE(fs::is_directory(scratch + "/sub/dir"));
  }
  img.fds.pop_back();

  // A corrupt copy: an error naming it, and nothing is written.
  fs::remove_all(scratch);
  {
    std::ofstream(ckpt + "/" + img.fds[1].saved->name, std::ios::in | std::ios::out | std::ios::binary)
        << "X";
  }
  auto bad = SavedFilesRestore::Prepare({&img}, {ckpt});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(img.fds[1].saved->name), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("corrupt"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(fs::exists(kept)) << "nothing may be written before every copy is verified";
}

TEST(SavedFilesCheck, DeletedWithoutCopyFailsWithAHint) {
  image::ProcessImage img;
  img.fds.push_back(Regular("/tmp/stasis-nonexistent-dir/x (deleted)"));
  Status st = CheckFiles(img);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("--save-files"), std::string::npos) << st.message();
  img.fds[0].saved = image::SavedFile{};
  EXPECT_TRUE(CheckFiles(img).ok());
  // An open directory below a pattern is created at restart if missing.
  image::FileDescriptor dir = Regular("/tmp/stasis-nonexistent-dir/sub");
  dir.kind = Kind::kDirectory;
  img.fds = {dir};
  EXPECT_FALSE(CheckFiles(img).ok());
  img.save_files = {"/tmp/stasis-nonexistent-dir/*"};
  EXPECT_TRUE(CheckFiles(img).ok());
  img.save_files.clear();
  img.fds = {Regular("/tmp/stasis-nonexistent-dir/x (deleted)")};
  // A saved scratch file may be missing before the restore recreates it.
  img.fds[0] = Regular("/tmp/stasis-nonexistent-dir/y");
  EXPECT_FALSE(CheckFiles(img).ok());
  img.fds[0].saved = image::SavedFile{};
  EXPECT_TRUE(CheckFiles(img).ok());
}

TEST(SavedFilesCodec, RoundTripAndBadFields) {
  image::ProcessImage img;
  img.save_files = {"/tmp/*", "/scratch/*"};
  img.fds.push_back(Regular("/tmp/a (deleted)"));
  img.fds[0].saved = image::SavedFile{"saved_j_0000000000000001_000001.data", 12345, 0xfedcba9876543210ULL, 0640, true};
  img.fds.push_back(Regular("/tmp/b"));
  std::vector<uint8_t> bytes = image::EncodeMetadata(img);
  auto back = image::DecodeMetadata(bytes.data(), bytes.size());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->save_files, img.save_files);
  ASSERT_TRUE(back->fds[0].saved);
  const image::SavedFile& s = *back->fds[0].saved;
  EXPECT_EQ(s.name, "saved_j_0000000000000001_000001.data");
  EXPECT_EQ(s.size, 12345u);
  EXPECT_EQ(s.xxh3, 0xfedcba9876543210ULL);  // all 64 bits survive
  EXPECT_EQ(s.mode, 0640u);
  EXPECT_TRUE(s.deleted);
  EXPECT_FALSE(back->fds[1].saved);
  // A copy name that leaves the checkpoint directory is refused.
  nlohmann::json j = image::MetadataToJson(img);
  j["fds"][0]["saved"]["name"] = "../../etc/passwd";
  auto escaped = image::MetadataFromJson(j);
  ASSERT_FALSE(escaped.ok());
  EXPECT_NE(escaped.status().message().find("not a plain file name"), std::string::npos);
  j["fds"][0]["saved"]["name"] = "ok.data";
  j["fds"][0]["saved"]["xxh3"] = "zz";
  EXPECT_FALSE(image::MetadataFromJson(j).ok());
}

TEST_F(SavedFilesDir, CopiesArePrunedWithTheirCheckpoint) {
  auto touch = [&](const std::string& name) { std::ofstream(Path(name)) << "x"; };
  for (uint64_t g = 1; g <= 3; ++g) {
    image::Manifest m;
    m.job_id = "job7";
    m.generation = g;
    image::ManifestProcess p;
    p.pid = 2;
    p.image = image::ImageFileName("prog", "job7", 2, g);
    touch(p.image);
    m.processes.push_back(p);
    touch(image::SavedFileName("job7", 0xabc, g));
    ASSERT_TRUE(image::WriteManifest(dir_, m).ok());
  }
  touch(image::SavedFileName("job7", 0xdef, 1) + ".tmp");  // a crashed copy
  touch(image::SavedFileName("other", 0xabc, 1));          // another job's
  EXPECT_EQ(image::HighestGeneration(dir_), 3u);
  ASSERT_TRUE(image::PruneCheckpoints(dir_, 2).ok());
  EXPECT_FALSE(fs::exists(Path(image::SavedFileName("job7", 0xabc, 1))));
  EXPECT_FALSE(fs::exists(Path(image::SavedFileName("job7", 0xdef, 1) + ".tmp")));
  EXPECT_TRUE(fs::exists(Path(image::SavedFileName("job7", 0xabc, 2))));
  EXPECT_TRUE(fs::exists(Path(image::SavedFileName("job7", 0xabc, 3))));
  EXPECT_TRUE(fs::exists(Path(image::SavedFileName("other", 0xabc, 1))));
  EXPECT_EQ(image::SavedFileName("job7", 0xabc, 2), "saved_job7_0000000000000abc_000002.data");
}

}  // namespace
}  // namespace stasis::state
