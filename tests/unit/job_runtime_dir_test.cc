// Runtime directory for the supervisor socket (src/job/runtime_dir.h).
#include "job/runtime_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace stasis::job {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/stasis_rt_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Sets an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

TEST(JobRuntimeDir, CreatesPrivateJobDirAndRemovesIt) {
  TempDir base;
  std::string path;
  {
    auto dir = RuntimeDir::CreateIn(base.path(), "0123456789abcdef");
    ASSERT_TRUE(dir.ok()) << dir.status().message();
    path = dir->path();
    EXPECT_EQ(path.rfind(base.path() + "/0123456789abcdef.", 0), 0u) << path;
    EXPECT_EQ(ModeOf(path), 0700u);
    EXPECT_LT(dir->supervisor_socket().size(), kMaxSocketPath);
    std::ofstream(dir->supervisor_socket()) << "x";  // stands in for the socket
    RuntimeDir moved = std::move(dir).value();
    EXPECT_EQ(moved.path(), path);
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0) << path << " not removed";
}

TEST(JobRuntimeDir, TwoJobsWithTheSameIdGetDistinctDirs) {
  TempDir base;
  auto a = RuntimeDir::CreateIn(base.path(), "job");
  auto b = RuntimeDir::CreateIn(base.path(), "job");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->path(), b->path());
}

TEST(JobRuntimeDir, RefusesSocketPathsThatDoNotFit) {
  TempDir tmp;
  std::string base = tmp.path() + "/" + std::string(90, 'x');
  ASSERT_EQ(mkdir(base.c_str(), 0700), 0);
  auto dir = RuntimeDir::CreateIn(base, "0123456789abcdef");
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("socket path"), std::string::npos)
      << dir.status().message();
}

TEST(JobRuntimeDir, BaseUnderXdgRuntimeDir) {
  TempDir xdg;
  ScopedEnv env("XDG_RUNTIME_DIR", xdg.path());
  auto base = RuntimeBaseDir();
  ASSERT_TRUE(base.ok()) << base.status().message();
  EXPECT_EQ(*base, xdg.path() + "/stasis");
  EXPECT_EQ(ModeOf(*base), 0700u);
}

TEST(JobRuntimeDir, FallsBackToTmpWithoutUsableXdg) {
  ScopedEnv env("XDG_RUNTIME_DIR", "/nonexistent/stasis-test");
  auto base = RuntimeBaseDir();
  ASSERT_TRUE(base.ok()) << base.status().message();
  EXPECT_EQ(*base, "/tmp/stasis-" + std::to_string(geteuid()));
  EXPECT_EQ(ModeOf(*base), 0700u);
}

TEST(JobRuntimeDir, TightensModeOfOwnDir) {
  TempDir tmp;
  std::string dir = tmp.path() + "/rt";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  ASSERT_TRUE(EnsurePrivateDir(dir).ok());
  EXPECT_EQ(ModeOf(dir), 0700u);
}

TEST(JobRuntimeDir, RefusesSymlinkAndFile) {
  TempDir tmp;
  std::string file = tmp.path() + "/file", link = tmp.path() + "/link";
  std::ofstream(file) << "x";
  ASSERT_EQ(symlink(tmp.path().c_str(), link.c_str()), 0);
  EXPECT_FALSE(EnsurePrivateDir(file).ok());
  EXPECT_FALSE(EnsurePrivateDir(link).ok());
}

TEST(JobRuntimeDir, RefusesDirOwnedBySomeoneElse) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a directory owned by another user";
  TempDir tmp;
  std::string dir = tmp.path() + "/other";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
  Status st = EnsurePrivateDir(dir);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("owned by uid 65534"), std::string::npos) << st.message();
}

TEST(JobRuntimeDir, RandomHex) {
  std::string a = RandomHex(8), b = RandomHex(8);
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace stasis::job
