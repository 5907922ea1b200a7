// Restart precheck of the agent a checkpointed process mapped
// (src/restore/agent_library.h): missing and replaced files are refused,
// naming the path and the Stasis version.
#include "restore/agent_library.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace stasis::restore {
namespace {

image::ProcessImage ImageMapping(const std::string& path) {
  image::ProcessImage img;
  img.agent.path = path;
  img.agent.stasis_version = "0.1.0 (git abc)";
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    image::MemoryArea a;
    a.start = 0x7f0000000000;
    a.end = a.start + 4096;
    a.kind = image::MemoryArea::Kind::kFilePrivate;
    a.name = path;
    a.file_size = static_cast<uint64_t>(st.st_size);
    a.file_mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    img.areas.push_back(a);
  }
  return img;
}

TEST(AgentLibrary, PresentAndUnchangedPasses) {
  char path[] = "/tmp/stasis_agent_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "agent", 5), 5);
  close(fd);
  image::ProcessImage img = ImageMapping(path);
  EXPECT_TRUE(CheckAgentLibrary(img).ok());

  // Reinstalled in place: same path, other contents and mtime.
  std::ofstream(path, std::ios::app) << "v2";
  Status st = CheckAgentLibrary(img);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("was replaced since the checkpoint"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(path), std::string::npos) << st.message();

  unlink(path);
  st = CheckAgentLibrary(img);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("is missing"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("Stasis 0.1.0 (git abc)"), std::string::npos) << st.message();
}

TEST(AgentLibrary, OlderImagesWithoutPathPass) {
  image::ProcessImage img;
  EXPECT_TRUE(CheckAgentLibrary(img).ok());
}

}  // namespace
}  // namespace stasis::restore
