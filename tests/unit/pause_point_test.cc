// STASIS_PAUSE_AT parsing and the marker protocol of the pause points.
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/pause_point.h"

namespace stasis {
namespace {

namespace fs = std::filesystem;

TEST(PausePoint, SpecSelectsPhaseAndGeneration) {
  unsetenv("STASIS_PAUSE_AT");
  EXPECT_FALSE(PauseRequested("manifest", 3));
  setenv("STASIS_PAUSE_AT", "quiesced:2,prune,manifest:3", 1);
  EXPECT_TRUE(PauseRequested("quiesced", 2));
  EXPECT_FALSE(PauseRequested("quiesced", 3));
  EXPECT_TRUE(PauseRequested("prune", 7));
  EXPECT_TRUE(PauseRequested("manifest", 3));
  EXPECT_FALSE(PauseRequested("manifest", 33));
  EXPECT_FALSE(PauseRequested("dumped", 3));
  unsetenv("STASIS_PAUSE_AT");
  EXPECT_EQ(PauseMarkerPath("/d", "quiesced", 4), "/d/stasis_paused_4");
  EXPECT_EQ(PauseMarkerPath("/d", "prune", 4), "/d/stasis_paused_prune_4");
}

// The marker appears with its text and the pause ends once it is removed.
TEST(PausePoint, WaitsForTheMarkerToGo) {
  std::string t = (fs::temp_directory_path() / "stasis_pause_test.XXXXXX").string();
  const std::string dir = mkdtemp(t.data());
  setenv("STASIS_PAUSE_AT", "dumped:5", 1);
  const std::string marker = PauseMarkerPath(dir, "dumped", 5);
  std::thread remover([&] {
    while (!fs::exists(marker)) usleep(1000);
    std::ifstream in(marker);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "hello\n");
    fs::remove(marker);
  });
  MaybePause("dumped", 5, dir, "hello\n");
  remover.join();
  EXPECT_FALSE(fs::exists(marker));
  MaybePause("dumped", 6, dir, "x");  // not requested: returns at once
  unsetenv("STASIS_PAUSE_AT");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace stasis
