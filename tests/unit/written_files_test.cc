// Files written in place (state/written_files.h): the default-save rule,
// the size limit, write-back into the same inode, and the restart check of
// unsaved files.
#include "state/written_files.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "image/codec.h"
#include "paused_child.h"
#include "state/files.h"
#include "state/memory.h"
#include "state/saved_files.h"

namespace stasis::state {
namespace {

namespace fs = std::filesystem;
using Kind = image::FileDescriptor::Kind;

class WrittenFilesDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "stasis_written_files_test.XXXXXX").string();
    dir_ = mkdtemp(t.data());
    ckpt_ = dir_ + "/ckpt";
    ASSERT_EQ(mkdir(ckpt_.c_str(), 0700), 0);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void Write(const std::string& path, off_t at, const std::string& bytes) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), at), static_cast<ssize_t>(bytes.size()));
    close(fd);
  }
  static ino_t Inode(const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
  }
  // Captures a child holding `db` open O_RDWR at fd 20 and mapping `shared`
  // MAP_SHARED writable, with the given limit.
  struct Captured {
    image::ProcessImage img;
    std::vector<std::string> warnings;
  };
  Captured Capture(const std::string& db, const std::string& shared, uint64_t limit) {
    testing::PausedChild child([&] {
      int a = dup2(open(db.c_str(), O_RDWR | O_CLOEXEC), 20);
      int m = open(shared.c_str(), O_RDWR | O_CLOEXEC);
      if (a != 20 || m < 0 || mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0) == MAP_FAILED) _exit(1);
      close(m);
    });
    Captured c;
    EXPECT_TRUE(child.ready());
    auto target = ProcTarget::Open(child.pid());
    EXPECT_TRUE(target.ok()) << target.status().message();
    auto fds = CaptureFiles(*target, -1);
    auto areas = CaptureAreas(*target, {});
    EXPECT_TRUE(fds.ok() && areas.ok());
    // Only the test's own file: the child also inherits whatever the test
    // runner has open for writing (ctest's log), which would be saved too.
    std::erase_if(*fds, [](const image::FileDescriptor& f) { return f.fd != 20; });
    FileSaver saver(ckpt_, "job1", 1, {}, limit);
    Status st = saver.Save(*target, &*fds);
    EXPECT_TRUE(st.ok()) << st.message();
    st = saver.SaveMappings(*target, *areas, &c.img.saved_mappings);
    EXPECT_TRUE(st.ok()) << st.message();
    c.img.pid = child.pid();
    for (auto& f : *fds)
      if (f.fd == 20) c.img.fds.push_back(f);
    for (auto& a : *areas)
      if (a.name == shared) c.img.areas.push_back(a);
    c.img.absent_files = saver.AbsentJournals();
    c.warnings = saver.TakeWarnings();
    return c;
  }
  std::string dir_, ckpt_;
};

TEST(WrittenFiles, ParseByteSize) {
  EXPECT_EQ(*ParseByteSize("0"), 0u);
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("64K"), 64u << 10);
  EXPECT_EQ(*ParseByteSize("256M"), 256u << 20);
  EXPECT_EQ(*ParseByteSize("2GiB"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("1t"), 1ull << 40);
  for (const char* bad : {"", "M", "12X", "-1", "1.5G", "99999999999999999999"})
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
  EXPECT_FALSE(ParseByteSize("20000000000000T").ok());
}

TEST(WrittenFiles, WhichAreWrittenFiles) {
  image::FileDescriptor f;
  f.kind = Kind::kRegular;
  f.path = "/data/x.db";
  f.flags = O_RDWR;
  EXPECT_TRUE(IsWrittenFile(f));
  f.flags = O_WRONLY | O_APPEND;
  EXPECT_TRUE(IsWrittenFile(f));
  f.flags = O_RDONLY;
  EXPECT_FALSE(IsWrittenFile(f)) << "read-only";
  f.flags = O_RDWR;
  f.stdio_alias = 1;
  EXPECT_FALSE(IsWrittenFile(f)) << "stdio follows the restarting command";
  f.stdio_alias = -1;
  f.path = "/data/x.db (deleted)";
  EXPECT_FALSE(IsWrittenFile(f)) << "deleted files are --save-files'";
  f.path = "/memfd:x (deleted)";
  EXPECT_FALSE(IsWrittenFile(f));
  f.path = "/proc/self/oom_score_adj";
  EXPECT_FALSE(IsWrittenFile(f)) << "kernel pseudo files are not the job's";
  f.path = "/sys/fs/cgroup/x/cgroup.procs";
  EXPECT_FALSE(IsWrittenFile(f));

  image::MemoryArea a;
  a.kind = image::MemoryArea::Kind::kFileShared;
  a.prot = PROT_READ | PROT_WRITE;
  a.name = "/data/x.db-shm";
  EXPECT_TRUE(IsWrittenMapping(a));
  a.prot = PROT_READ;
  EXPECT_FALSE(IsWrittenMapping(a));
  a.prot = PROT_READ | PROT_WRITE;
  a.kind = image::MemoryArea::Kind::kFilePrivate;
  EXPECT_FALSE(IsWrittenMapping(a)) << "private: its pages are in the image";
  a.kind = image::MemoryArea::Kind::kFileShared;
  a.shmem_id = 7;
  EXPECT_FALSE(IsWrittenMapping(a)) << "shared memory: shmem.h";
}

// Saved by default; the lost run rewrites pages inside the size and grows
// the file; Prepare() puts both files back, in their own inodes.
TEST_F(WrittenFilesDir, SavedAndWrittenBackInPlace) {
  const std::string db = dir_ + "/x.db", shm = dir_ + "/x.db-shm";
  std::string db0(3 * 4096 + 100, 'a'), shm0(8192, 's');
  std::ofstream(db, std::ios::binary) << db0;
  std::ofstream(shm, std::ios::binary) << shm0;
  chmod(db.c_str(), 0640);
  Captured c = Capture(db, shm, kDefaultWrittenFilesLimit);
  ASSERT_EQ(c.img.fds.size(), 1u);
  ASSERT_TRUE(c.img.fds[0].saved);
  EXPECT_NE(c.img.fds[0].ctime_ns, 0);
  ASSERT_EQ(c.img.saved_mappings.size(), 1u);
  EXPECT_EQ(c.img.saved_mappings[0].path, shm);
  EXPECT_TRUE(c.warnings.empty());

  // No rollback journal at checkpoint: one found at restart is the lost run's.
  EXPECT_EQ(c.img.absent_files, (std::vector<std::string>{db + "-journal", shm + "-journal"}));

  const ino_t db_ino = Inode(db), shm_ino = Inode(shm);
  Write(db, 4096, "LOST RUN");     // inside the old size
  Write(db, db0.size(), "grown");  // and beyond
  Write(shm, 100, "lost");
  std::ofstream(db + "-journal") << "hot journal of the lost run";
  std::vector<std::string> warned;
  auto restored = SavedFilesRestore::Prepare({&c.img}, {ckpt_}, false,
                                             [&](const std::string& w) { warned.push_back(w); });
  ASSERT_TRUE(restored.ok()) << restored.status().message();
  EXPECT_FALSE(fs::exists(db + "-journal")) << "SQLite would play it back into the restored database";
  EXPECT_EQ(Read(db + "-journal.stasis-lost-1"), "hot journal of the lost run") << "kept, not deleted";
  ASSERT_EQ(warned.size(), 1u);
  EXPECT_NE(warned[0].find("moved aside"), std::string::npos) << warned[0];
  EXPECT_EQ(Read(db), db0);
  EXPECT_EQ(Read(shm), shm0);
  EXPECT_EQ(Inode(db), db_ino) << "written back into the same inode, not replaced";
  EXPECT_EQ(Inode(shm), shm_ino);
  struct stat st;
  ASSERT_EQ(stat(db.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

// Over the limit: not saved (a warning); unchanged restarts, changed fails
// naming the file and the options, --keep-current-files accepts it; the
// file is never truncated.
TEST_F(WrittenFilesDir, UnsavedFilesAreCheckedNotTruncated) {
  const std::string db = dir_ + "/big.db", shm = dir_ + "/big.db-shm";
  std::ofstream(db, std::ios::binary) << std::string(10000, 'b');
  std::ofstream(shm, std::ios::binary) << std::string(8192, 'm');
  Captured c = Capture(db, shm, 0);
  ASSERT_EQ(c.img.fds.size(), 1u);
  EXPECT_FALSE(c.img.fds[0].saved);
  EXPECT_TRUE(c.img.saved_mappings.empty());
  ASSERT_EQ(c.warnings.size(), 2u);
  EXPECT_NE(c.warnings[0].find(db), std::string::npos) << c.warnings[0];
  EXPECT_NE(c.warnings[0].find("--written-files-limit"), std::string::npos) << c.warnings[0];
  EXPECT_EQ(std::distance(fs::directory_iterator(ckpt_), fs::directory_iterator()), 0);

  ASSERT_TRUE(SavedFilesRestore::Prepare({&c.img}, {ckpt_}).ok()) << "unchanged: no false alarm";

  Write(db, 10000, "grown");
  auto bad = SavedFilesRestore::Prepare({&c.img}, {ckpt_});
  ASSERT_FALSE(bad.ok());
  const std::string m = bad.status().message();
  EXPECT_NE(m.find(db), std::string::npos) << m;
  EXPECT_NE(m.find("changed after the checkpoint"), std::string::npos) << m;
  EXPECT_NE(m.find("--keep-current-files"), std::string::npos) << m;
  EXPECT_EQ(m.find(shm), std::string::npos) << "the mapped file did not change: " << m;

  Write(shm, 0, "x");  // a store through the mapping is a write to the file
  std::vector<std::string> warned;
  auto kept = SavedFilesRestore::Prepare({&c.img}, {ckpt_}, true,
                                         [&](const std::string& w) { warned.push_back(w); });
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_EQ(warned.size(), 2u);
  EXPECT_EQ(Read(db).size(), 10005u) << "accepted as it is now: never truncated";
}

TEST(WrittenFiles, CodecRoundTripAndOlderImages) {
  image::ProcessImage img;
  image::FileDescriptor f;
  f.fd = 3;
  f.kind = Kind::kRegular;
  f.path = "/data/x.db";
  f.ctime_ns = 1234567890123456789;
  img.fds.push_back(f);
  img.saved_mappings.push_back({"/data/x.db-shm", image::SavedFile{"saved_j_00000000000000aa_000002.data", 32768,
                                                                    0x0123456789abcdefULL, 0644, false}});
  img.absent_files = {"/data/x.db-journal"};
  std::vector<uint8_t> bytes = image::EncodeMetadata(img);
  auto back = image::DecodeMetadata(bytes.data(), bytes.size());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->fds[0].ctime_ns, f.ctime_ns);
  ASSERT_EQ(back->saved_mappings.size(), 1u);
  EXPECT_EQ(back->saved_mappings[0].path, "/data/x.db-shm");
  EXPECT_EQ(back->saved_mappings[0].saved.xxh3, 0x0123456789abcdefULL);
  EXPECT_EQ(back->saved_mappings[0].saved.size, 32768u);
  EXPECT_EQ(back->absent_files, img.absent_files);
  nlohmann::json j = image::MetadataToJson(img);
  j["saved_mappings"][0]["saved"]["name"] = "../x";
  EXPECT_FALSE(image::MetadataFromJson(j).ok()) << "a copy name never leaves the checkpoint directory";
  j = image::MetadataToJson(img);
  j["absent_files"][0] = "relative";
  EXPECT_FALSE(image::MetadataFromJson(j).ok());
  // Older images have none of these: defaults.
  j = image::MetadataToJson(img);
  j.erase("saved_mappings");
  j.erase("absent_files");
  j["fds"][0].erase("ctime_ns");
  auto old = image::MetadataFromJson(j);
  ASSERT_TRUE(old.ok()) << old.status().message();
  EXPECT_TRUE(old->saved_mappings.empty() && old->absent_files.empty());
  EXPECT_EQ(old->fds[0].ctime_ns, 0);
}

// Locks are not restored: the checkpoint warns, naming the file and kind.
TEST_F(WrittenFilesDir, HeldLocksAreReported) {
  const std::string locked = dir_ + "/locked", unlocked = dir_ + "/unlocked";
  std::ofstream(locked) << "x";
  std::ofstream(unlocked) << "y";
  testing::PausedChild child([&] {
    int o = open(locked.c_str(), O_RDWR | O_CLOEXEC);
    int a = dup2(o, 20);
    close(o);  // the lock belongs to the open file: every descriptor of it would report it
    int b = dup2(open(unlocked.c_str(), O_RDWR | O_CLOEXEC), 21);
    if (a != 20 || b != 21 || flock(a, LOCK_EX) != 0) _exit(1);
  });
  ASSERT_TRUE(child.ready());
  auto target = ProcTarget::Open(child.pid());
  ASSERT_TRUE(target.ok());
  auto fds = CaptureFiles(*target, -1);
  ASSERT_TRUE(fds.ok());
  std::vector<std::string> w;
  for (const std::string& m : LockWarnings(child.pid(), *fds))
    if (m.find(dir_) != std::string::npos) w.push_back(m);  // not locks inherited from the test runner
  ASSERT_EQ(w.size(), 1u) << (w.empty() ? "" : w[0] + " | " + w.back());
  EXPECT_NE(w[0].find(locked), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("FLOCK"), std::string::npos) << w[0];
}

}  // namespace
}  // namespace stasis::state
