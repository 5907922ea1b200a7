// The kind of a restart error (common/status.h StatusCode): damage of the
// checkpoint (kDataLoss, restart may fall back to an older one) versus
// everything else; that the code survives the namespace start report; and
// the checkpoint listing of `stasis inspect DIR` (image/checkpoints.h).
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "common/status.h"
#include "image/checkpoints.h"
#include "image/manifest.h"
#include "image/model.h"
#include "image/reader.h"
#include "image/writer.h"
#include "job/namespace.h"

namespace stasis {
namespace {

namespace fs = std::filesystem;

class Dir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "stasis_policy_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(t.data()), nullptr);
    dir_ = t;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string P(const std::string& name) const { return dir_ + "/" + name; }
  void Write(const std::string& name, const std::string& text) const { std::ofstream(P(name)) << text; }
  // A valid one-process checkpoint of `generation` (an image without pages).
  void WriteCheckpoint(uint64_t generation) const {
    image::ProcessImage meta;
    meta.pid = 2;
    meta.program = "prog";
    meta.job_id = "job";
    meta.generation = generation;
    const std::string name = image::ImageFileName("prog", "job", 2, generation);
    auto w = image::ImageWriter::Create(P(name), image::CompressionSpec{});
    ASSERT_TRUE(w.ok()) << w.status().message();
    ASSERT_TRUE((*w)->SetMetadata(meta).ok());
    auto size = (*w)->Commit();
    ASSERT_TRUE(size.ok()) << size.status().message();
    image::Manifest m;
    m.job_id = "job";
    m.generation = generation;
    m.time = 1700000000 + static_cast<double>(generation);
    m.processes.push_back({2, 1, "prog", name, *size});
    ASSERT_TRUE(image::WriteManifest(dir_, m).ok());
  }
  std::string dir_;
};

TEST(StatusCode, DataLossIsKeptByWithAndOnlyErrorsHaveCodes) {
  EXPECT_EQ(Status::Ok().code(), StatusCode::kOk);
  EXPECT_EQ(Status::Error("x").code(), StatusCode::kError);
  Status d = Status::DataLoss("img: block 3: payload checksum mismatch").With("restart");
  EXPECT_TRUE(d.IsDataLoss());
  EXPECT_EQ(d.message(), "restart: img: block 3: payload checksum mismatch");
  EXPECT_FALSE(Status::Errno("bind to 127.0.0.1:80", EADDRINUSE).IsDataLoss());
  EXPECT_TRUE(Status::FromCode(StatusCode::kDataLoss, "m").IsDataLoss());
  EXPECT_EQ(Status::FromCode(StatusCode::kOk, "m").code(), StatusCode::kError);  // an error stays one
  StatusOr<int> v = Status::DataLoss("m");
  EXPECT_TRUE(v.status().IsDataLoss());
}

TEST_F(Dir, DamagedImagesAreDataLossNewerVersionIsNot) {
  EXPECT_TRUE(image::ImageReader::Open(P("missing.stasis")).status().IsDataLoss());
  Write("empty.stasis", "");
  EXPECT_TRUE(image::ImageReader::Open(P("empty.stasis")).status().IsDataLoss());
  Write("foreign.stasis", "#!/bin/sh\necho hello\n");
  EXPECT_TRUE(image::ImageReader::Open(P("foreign.stasis")).status().IsDataLoss());
  WriteCheckpoint(1);
  const std::string img = P(image::ImageFileName("prog", "job", 2, 1));
  fs::resize_file(img, fs::file_size(img) - 10);
  auto truncated = image::ImageReader::Open(img);
  EXPECT_TRUE(truncated.status().IsDataLoss()) << truncated.status().message();
}

TEST_F(Dir, DamagedManifestsAreDataLossNewerVersionIsNot) {
  EXPECT_TRUE(image::ReadManifest(P("stasis_manifest_000009.json")).status().IsDataLoss());
  Write("a.json", "");
  EXPECT_TRUE(image::ReadManifest(P("a.json")).status().IsDataLoss());
  Write("b.json", "{\"format_version\": 1, \"job_id\": \"j\", \"gen");
  EXPECT_TRUE(image::ReadManifest(P("b.json")).status().IsDataLoss());
  Write("c.json", "{\"format_version\": 1, \"job_id\": \"j\", \"generation\": 1}");
  auto c = image::ReadManifest(P("c.json"));
  EXPECT_TRUE(c.status().IsDataLoss()) << c.status().message();
  Write("d.json", "{\"format_version\": 99, \"job_id\": \"j\", \"generation\": 1, \"processes\": []}");
  auto d = image::ReadManifest(P("d.json"));
  ASSERT_FALSE(d.ok());
  EXPECT_FALSE(d.status().IsDataLoss()) << d.status().message();
}

bool UserNamespacesWork() {
  pid_t pid = fork();
  if (pid == 0) _exit(unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(StartReport, CarriesTheCode) {
  if (!UserNamespacesWork()) GTEST_SKIP() << "unprivileged user namespaces unavailable";
  auto damaged = job::RunInJobNamespace([](job::InitContext& ctx) {
    ctx.reporter->Failed(Status::DataLoss("img.stasis: block 3: payload checksum mismatch"));
    return 1;
  });
  ASSERT_FALSE(damaged.ok());
  EXPECT_TRUE(damaged.status().IsDataLoss());
  EXPECT_EQ(damaged.status().message(), "img.stasis: block 3: payload checksum mismatch");
  auto env = job::RunInJobNamespace([](job::InitContext& ctx) {
    ctx.reporter->Failed(Status::Errno("bind to 127.0.0.1:5000", EADDRINUSE));
    return 1;
  });
  ASSERT_FALSE(env.ok());
  EXPECT_FALSE(env.status().IsDataLoss());
  EXPECT_EQ(env.status().message(), "bind to 127.0.0.1:5000: Address already in use");
}

TEST_F(Dir, ListingStatesAndRestartPick) {
  WriteCheckpoint(1);
  WriteCheckpoint(2);
  WriteCheckpoint(3);
  fs::remove(P(image::ImageFileName("prog", "job", 2, 3)));  // 3: an image missing
  Write(image::ImageFileName("prog", "job", 2, 4) + ".tmp", "partial");  // 4: interrupted
  auto list = image::ListCheckpoints(dir_);
  ASSERT_TRUE(list.ok()) << list.status().message();
  ASSERT_EQ(list->size(), 4u);
  const auto& c = *list;
  EXPECT_EQ(c[0].generation, 4u);
  EXPECT_EQ(c[0].state, image::CheckpointEntry::State::kIncomplete);
  EXPECT_TRUE(c[0].manifest.empty());
  EXPECT_EQ(c[1].generation, 3u);
  EXPECT_EQ(c[1].state, image::CheckpointEntry::State::kDamaged);
  EXPECT_NE(c[1].problem.find("missing"), std::string::npos) << c[1].problem;
  EXPECT_TRUE(c[1].fallback_ok);
  EXPECT_EQ(c[2].generation, 2u);
  EXPECT_EQ(c[2].state, image::CheckpointEntry::State::kComplete);
  EXPECT_TRUE(c[2].restart_pick);
  EXPECT_EQ(c[2].processes, 1u);
  EXPECT_GT(c[2].bytes, 0u);
  EXPECT_EQ(c[2].time, 1700000002.0);
  EXPECT_FALSE(c[3].restart_pick);
  EXPECT_EQ(c[3].state, image::CheckpointEntry::State::kComplete);
}

TEST_F(Dir, ListingStopsAtANonDamageError) {
  WriteCheckpoint(1);
  // A manifest of a newer format: restart refuses, it does not fall back.
  Write("stasis_manifest_000002.json",
        "{\"format_version\": 99, \"job_id\": \"j\", \"generation\": 2, \"processes\": []}");
  auto list = image::ListCheckpoints(dir_);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].state, image::CheckpointEntry::State::kDamaged);
  EXPECT_FALSE((*list)[0].fallback_ok);
  EXPECT_FALSE((*list)[1].restart_pick);
}

}  // namespace
}  // namespace stasis
