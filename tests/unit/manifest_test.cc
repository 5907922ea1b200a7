// Manifests: naming, atomic round trip, ordering, generation discovery and
// keep-N pruning.
#include <stdlib.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "image/manifest.h"

namespace stasis::image {
namespace {

namespace fs = std::filesystem;

class ManifestDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "stasis_manifest_test.XXXXXX").string();
    dir_ = mkdtemp(t.data());
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Touch(const std::string& name, const std::string& content = "x") const {
    std::ofstream(Path(name)) << content;
  }
  bool Exists(const std::string& name) const { return fs::exists(Path(name)); }

  // A complete checkpoint of generation g: two images and the manifest.
  Manifest MakeCheckpoint(uint64_t g) const {
    Manifest m;
    m.job_id = "job7";
    m.generation = g;
    m.time = 1700000000.5 + static_cast<double>(g);
    m.hostname = "host";
    for (int32_t pid : {2, 3}) {
      ManifestProcess p;
      p.pid = pid;
      p.ppid = pid - 1;
      p.program = "prog";
      p.image = ImageFileName("prog", "job7", pid, g);
      p.image_size = 1;
      Touch(p.image);
      m.processes.push_back(p);
    }
    EXPECT_TRUE(WriteManifest(dir_, m).ok());
    return m;
  }

  std::string dir_;
};

TEST(ManifestNames, Format) {
  EXPECT_EQ(ManifestFileName(5), "stasis_manifest_000005.json");
  EXPECT_EQ(ManifestFileName(1234567), "stasis_manifest_1234567.json");
  EXPECT_EQ(ImageFileName("python3", "j1", 42, 3), "ckpt_python3_j1_42_000003.stasis");
  EXPECT_EQ(ImageFileName("a b/c:d", "j_1", 2, 10), "ckpt_a_b_c_d_j_1_2_000010.stasis");
  EXPECT_EQ(ImageFileName("", "j", 2, 1), "ckpt___j_2_000001.stasis");
}

TEST_F(ManifestDir, RoundTrip) {
  Manifest m;
  m.format_version = 1;
  m.job_id = "abc-123";
  m.generation = 17;
  m.time = 1717171717.25;
  m.hostname = "node-1";
  m.processes = {{2, 1, "python3", "ckpt_python3_abc-123_2_000017.stasis", 123456789012},
                 {3, 2, "sh", "ckpt_sh_abc-123_3_000017.stasis", 42}};
  m.interval = 30.5;
  m.keep = 5;
  m.compression = "zstd:3";
  m.stasis_version = "0.1.0 (git abc)";
  ASSERT_TRUE(WriteManifest(dir_, m).ok());
  EXPECT_TRUE(Exists("stasis_manifest_000017.json"));
  EXPECT_FALSE(Exists("stasis_manifest_000017.json.tmp"));
  auto r = ReadManifest(Path("stasis_manifest_000017.json"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format_version, 1u);
  EXPECT_EQ(r->job_id, m.job_id);
  EXPECT_EQ(r->generation, 17u);
  EXPECT_EQ(r->time, m.time);
  EXPECT_EQ(r->hostname, m.hostname);
  ASSERT_EQ(r->processes.size(), 2u);
  EXPECT_EQ(r->processes[0].pid, 2);
  EXPECT_EQ(r->processes[0].ppid, 1);
  EXPECT_EQ(r->processes[0].program, "python3");
  EXPECT_EQ(r->processes[0].image, m.processes[0].image);
  EXPECT_EQ(r->processes[0].image_size, 123456789012u);
  EXPECT_EQ(r->processes[1].image, m.processes[1].image);
  EXPECT_EQ(r->interval, 30.5);
  EXPECT_EQ(r->keep, 5u);
  EXPECT_EQ(r->compression, "zstd:3");
  EXPECT_EQ(r->stasis_version, "0.1.0 (git abc)");
  EXPECT_EQ(r->total_bytes(), 123456789054u);
}

TEST_F(ManifestDir, ReadErrorsNameFileAndProblem) {
  Touch("bad.json", "{not json");
  auto r = ReadManifest(Path("bad.json"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind(Path("bad.json"), 0), 0u) << r.status().message();
  EXPECT_NE(r.status().message().find("JSON"), std::string::npos);

  Touch("nofield.json", R"({"format_version":1,"job_id":"j","processes":[]})");
  r = ReadManifest(Path("nofield.json"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("generation"), std::string::npos) << r.status().message();

  Touch("escape.json",
        R"({"format_version":1,"job_id":"j","generation":1,"processes":[{"pid":2,"image":"../x"}]})");
  EXPECT_FALSE(ReadManifest(Path("escape.json")).ok());

  Touch("newer.json", R"({"format_version":99,"job_id":"j","generation":1,"processes":[]})");
  r = ReadManifest(Path("newer.json"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("newer"), std::string::npos);

  Touch("empty.json", "");
  EXPECT_FALSE(ReadManifest(Path("empty.json")).ok());
  EXPECT_FALSE(ReadManifest(Path("missing.json")).ok());
}

TEST_F(ManifestDir, ListNewestFirst) {
  for (uint64_t g : {3, 1, 1000000, 20, 2}) MakeCheckpoint(g);
  Touch("stasis_manifest_000099.json.tmp");  // not a manifest
  Touch("stasis_manifest_x.json");
  Touch("notes.txt");
  auto l = ListManifests(dir_);
  ASSERT_TRUE(l.ok());
  std::vector<std::string> want;
  for (uint64_t g : {1000000, 20, 3, 2, 1}) want.push_back(Path(ManifestFileName(g)));
  EXPECT_EQ(*l, want);
  EXPECT_FALSE(ListManifests(dir_ + "/missing").ok());
}

TEST_F(ManifestDir, HighestGeneration) {
  EXPECT_EQ(HighestGeneration(dir_), 0u);
  EXPECT_EQ(HighestGeneration(dir_ + "/missing"), 0u);
  MakeCheckpoint(4);
  EXPECT_EQ(HighestGeneration(dir_), 4u);
  Touch(ImageFileName("my_prog", "job_x", 9, 6));  // image of a checkpoint without manifest
  EXPECT_EQ(HighestGeneration(dir_), 6u);
  Touch(ImageFileName("p", "j", 9, 8) + ".tmp");  // an interrupted write
  EXPECT_EQ(HighestGeneration(dir_), 8u);
  Touch("ckpt_garbage.stasis");
  Touch("other_000099.stasis");
  EXPECT_EQ(HighestGeneration(dir_), 8u);
}

TEST_F(ManifestDir, PruneKeepsNewestN) {
  std::vector<Manifest> ms;
  for (uint64_t g = 1; g <= 5; ++g) ms.push_back(MakeCheckpoint(g));
  Touch(ImageFileName("prog", "job7", 4, 2) + ".tmp");  // stale temp of an old generation
  Touch(ImageFileName("prog", "job7", 9, 1));           // image of a failed checkpoint
  Touch("unrelated.txt");
  ASSERT_TRUE(PruneCheckpoints(dir_, 2).ok());
  for (uint64_t g = 1; g <= 5; ++g) {
    const bool kept = g >= 4;
    EXPECT_EQ(Exists(ManifestFileName(g)), kept) << g;
    for (const auto& p : ms[g - 1].processes) EXPECT_EQ(Exists(p.image), kept) << p.image;
  }
  EXPECT_FALSE(Exists(ImageFileName("prog", "job7", 4, 2) + ".tmp"));
  EXPECT_FALSE(Exists(ImageFileName("prog", "job7", 9, 1)));
  EXPECT_TRUE(Exists("unrelated.txt"));
  auto l = ListManifests(dir_);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->size(), 2u);

  ASSERT_TRUE(PruneCheckpoints(dir_, 1).ok());
  EXPECT_FALSE(Exists(ManifestFileName(4)));
  EXPECT_TRUE(Exists(ManifestFileName(5)));
  ASSERT_TRUE(PruneCheckpoints(dir_, 0).ok());  // never deletes the newest
  EXPECT_TRUE(Exists(ManifestFileName(5)));
  for (const auto& p : ms[4].processes) EXPECT_TRUE(Exists(p.image));
}

TEST_F(ManifestDir, PruneNeverDeletesWhatAKeptManifestUses) {
  Manifest old = MakeCheckpoint(1);
  Manifest cur = MakeCheckpoint(2);
  // Generation 2 reuses an image of generation 1 (e.g. an unchanged process).
  cur.processes.push_back(old.processes[0]);
  ASSERT_TRUE(WriteManifest(dir_, cur).ok());
  Touch(ImageFileName("prog", "job7", 5, 3) + ".tmp");  // a newer checkpoint being written
  ASSERT_TRUE(PruneCheckpoints(dir_, 1).ok());
  EXPECT_FALSE(Exists(ManifestFileName(1)));
  EXPECT_TRUE(Exists(old.processes[0].image));
  EXPECT_FALSE(Exists(old.processes[1].image));
  EXPECT_TRUE(Exists(ImageFileName("prog", "job7", 5, 3) + ".tmp"));
}


// Older manifests go before their images, so a prune interrupted at any
// unlink leaves only complete manifests; what it left is removed next time.
TEST_F(ManifestDir, PruneDeletesManifestBeforeItsImagesAndResumesAfterInterruption) {
  Manifest old = MakeCheckpoint(1);
  Manifest cur = MakeCheckpoint(2);
  std::vector<std::string> order;
  ASSERT_TRUE(PruneCheckpoints(dir_, 1, [&](const std::string& p) { order.push_back(fs::path(p).filename()); }).ok());
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order[0], ManifestFileName(1));

  // Interrupted after the manifest and one image: simulate by recreating
  // the other image of generation 1 and pruning again (a new prune, as at
  // the next checkpoint).
  for (size_t stop = 0; stop < 3; ++stop) {
    old = MakeCheckpoint(1);
    cur = MakeCheckpoint(2);
    size_t calls = 0;
    struct Interrupted {};
    try {
      (void)PruneCheckpoints(dir_, 1, [&](const std::string&) {
        if (calls++ == stop) throw Interrupted{};
      });
    } catch (const Interrupted&) {
    }
    // Every manifest left lists only files that exist.
    auto l = ListManifests(dir_);
    ASSERT_TRUE(l.ok());
    for (const auto& mp : *l) {
      auto m = ReadManifest(mp);
      ASSERT_TRUE(m.ok());
      for (const auto& p : m->processes) EXPECT_TRUE(Exists(p.image)) << mp << " stop " << stop;
    }
    ASSERT_TRUE(PruneCheckpoints(dir_, 1).ok());
    EXPECT_FALSE(Exists(ManifestFileName(1)));
    for (const auto& p : old.processes) EXPECT_FALSE(Exists(p.image)) << "stop " << stop;
    for (const auto& p : cur.processes) EXPECT_TRUE(Exists(p.image));
  }
}

// Images of a generation without a manifest (its writer was killed after
// the dump) and temp files are removed once a newer manifest exists, never
// an image a manifest lists, never files of a generation newer than every
// manifest (a checkpoint being written).
TEST_F(ManifestDir, LeftoversOfKilledWritersGoNeverListedImages) {
  Manifest m1 = MakeCheckpoint(1);
  Touch(ImageFileName("prog", "job7", 2, 2));           // orphan: no manifest 2
  Touch(ImageFileName("prog", "job7", 3, 2) + ".tmp");  // killed writer's temp
  Touch(SavedFileName("job7", 1, 2));                   // orphan saved copy
  Manifest m3 = MakeCheckpoint(3);
  Touch(ImageFileName("prog", "job7", 2, 4));           // checkpoint 4 being written
  Touch(ImageFileName("prog", "job7", 3, 4) + ".tmp");
  Touch(ImageFileName("prog", "otherjob", 2, 2));       // another job's: not ours to judge
  ASSERT_TRUE(RemoveLeftovers(dir_).ok());
  EXPECT_TRUE(Exists(ManifestFileName(1)));
  EXPECT_TRUE(Exists(ManifestFileName(3)));
  for (const auto& p : m1.processes) EXPECT_TRUE(Exists(p.image));
  for (const auto& p : m3.processes) EXPECT_TRUE(Exists(p.image));
  EXPECT_FALSE(Exists(ImageFileName("prog", "job7", 2, 2)));
  EXPECT_FALSE(Exists(ImageFileName("prog", "job7", 3, 2) + ".tmp"));
  EXPECT_FALSE(Exists(SavedFileName("job7", 1, 2)));
  EXPECT_TRUE(Exists(ImageFileName("prog", "job7", 2, 4)));
  EXPECT_TRUE(Exists(ImageFileName("prog", "job7", 3, 4) + ".tmp"));
  EXPECT_TRUE(Exists(ImageFileName("prog", "otherjob", 2, 2)));

  // An unreadable manifest protects its generation's files.
  Touch(ImageFileName("prog", "job7", 2, 5));
  Touch(ManifestFileName(5), "{not json");
  MakeCheckpoint(6);
  ASSERT_TRUE(RemoveLeftovers(dir_).ok());
  EXPECT_TRUE(Exists(ImageFileName("prog", "job7", 2, 5)));
  EXPECT_FALSE(Exists(ImageFileName("prog", "job7", 2, 4)));  // 4 has no manifest, 6 is newer
}

}  // namespace
}  // namespace stasis::image
