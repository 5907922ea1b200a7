// Slurm helpers of `stasis run` (src/cli/slurm.h): the --time format parser
// (the checkpoint directory lock: ckpt_lock_test.cc).
#include "cli/slurm.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace stasis::cli::slurm {
namespace {

double Parse(const std::string& text) {
  auto d = ParseDuration(text);
  EXPECT_TRUE(d.ok()) << text << ": " << d.status().message();
  return d.ok() ? *d : -1;
}

TEST(SlurmDuration, AllSbatchTimeForms) {
  EXPECT_EQ(Parse("45"), 45 * 60);                             // MM
  EXPECT_EQ(Parse("0"), 0);
  EXPECT_EQ(Parse("90"), 90 * 60);                             // minutes may exceed 59
  EXPECT_EQ(Parse("10:30"), 10 * 60 + 30);                     // MM:SS
  EXPECT_EQ(Parse("1:02:03"), 3600 + 2 * 60 + 3);              // HH:MM:SS
  EXPECT_EQ(Parse("2-5"), 2 * 86400 + 5 * 3600);               // D-HH
  EXPECT_EQ(Parse("0-0:45"), 45 * 60);                         // D-HH:MM (Gizmo's SLURM_CHECKPOINT)
  EXPECT_EQ(Parse("1-02:03"), 86400 + 2 * 3600 + 3 * 60);
  EXPECT_EQ(Parse("0-0:00:10"), 10);                           // D-HH:MM:SS
  EXPECT_EQ(Parse("3-12:30:15"), 3 * 86400 + 12 * 3600 + 30 * 60 + 15);
  EXPECT_EQ(Parse(" 00:02:00\n"), 120);                        // as read from a file or squeue
}

TEST(SlurmDuration, UnitSuffixes) {
  EXPECT_EQ(Parse("90s"), 90);
  EXPECT_EQ(Parse("5m"), 300);
  EXPECT_EQ(Parse("2h"), 7200);
}

TEST(SlurmDuration, BadInputIsAnErrorThatQuotesIt) {
  for (const char* bad : {"", " ", "abc", "1:2:3:4", "1-2:3:4:5", "-5", "5-", "1::2", ":30", "10:", "1.5",
                          "1-a", "x-1", "5x", "s", "1-2-3", "+5", "1234567890"}) {
    auto d = ParseDuration(bad);
    EXPECT_FALSE(d.ok()) << "'" << bad << "' parsed as " << (d.ok() ? *d : 0);
    if (!d.ok()) {
      EXPECT_NE(d.status().message().find(std::string("'") + bad + "'"), std::string::npos) << d.status().message();
      EXPECT_NE(d.status().message().find("D-H:M:S"), std::string::npos) << d.status().message();
    }
  }
}

}  // namespace
}  // namespace stasis::cli::slurm
