// The coordinator handshake (coordinator/auth.h, credential.h), files
// created without following symlinks (common/safe_file.h) and the ownership
// rules of a restart (image/trust.h).
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "common/safe_file.h"
#include "coordinator/auth.h"
#include "coordinator/credential.h"
#include "image/trust.h"

namespace stasis {
namespace {

namespace fs = std::filesystem;
using coordinator::Json;

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/stasis-security-test-XXXXXX";
    path_ = ::mkdtemp(t);
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

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(LocalSecret, ProofsDependOnSecretLabelAndChallenge) {
  auto a = coordinator::LocalSecret::FromBytes(std::string(32, 'a'), "a");
  auto b = coordinator::LocalSecret::FromBytes(std::string(32, 'b'), "b");
  const std::string t = a->Prove("coordinator", "n1/n2");
  EXPECT_EQ(t.size(), 64u);
  EXPECT_TRUE(a->Verify("coordinator", "n1/n2", t));
  EXPECT_FALSE(b->Verify("coordinator", "n1/n2", t));
  EXPECT_FALSE(a->Verify("peer", "n1/n2", t));  // no reflection
  EXPECT_FALSE(a->Verify("coordinator", "n1/n3", t));
  EXPECT_FALSE(a->Verify("coordinator", "n1/n2", t.substr(1)));
}

TEST(LocalSecret, CreateAndLoadRoundTripAndLoadChecksTheFile) {
  TempDir dir;
  const std::string path = dir / "c.secret";
  auto created = coordinator::LocalSecret::Create(path);
  ASSERT_TRUE(created.ok()) << created.status().message();
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = coordinator::LocalSecret::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_TRUE((*loaded)->Verify("x", "y", (*created)->Prove("x", "y")));

  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto readable = coordinator::LocalSecret::Load(path);
  ASSERT_FALSE(readable.ok());
  EXPECT_NE(readable.status().message().find("0600"), std::string::npos) << readable.status().message();

  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  ASSERT_EQ(::symlink(path.c_str(), (dir / "link").c_str()), 0);
  EXPECT_FALSE(coordinator::LocalSecret::Load(dir / "link").ok());

  (*created)->Retire();
  EXPECT_FALSE(fs::exists(path));
}

TEST(Handshake, BothSidesAgreeAndAWrongProofIsRefused) {
  auto cred = coordinator::LocalSecret::FromBytes(std::string(32, 's'), "test secret");
  coordinator::ServerAuthState server;
  Json hello = {{"type", "hello"}, {"role", "client"}};
  int step = 0;
  auto honest = [&](const Json& msg) -> StatusOr<Json> {
    if (step++ == 0) return coordinator::MakeChallenge(msg, *cred, &server);
    RETURN_IF_ERROR(coordinator::CheckAuthReply(msg, *cred, server));
    return Json{{"ok", true}};
  };
  bool refused = true;
  auto r = coordinator::AuthenticatedHello(-1, "test:1", 1, hello, cred.get(), honest, &refused);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(coordinator::GetBool(*r, "ok"));
  EXPECT_FALSE(refused);

  // A listener without the secret: its proof is wrong; no auth is sent.
  auto other = coordinator::LocalSecret::FromBytes(std::string(32, 'x'), "other");
  coordinator::ServerAuthState fake_state;
  int sent = 0;
  auto fake = [&](const Json& msg) -> StatusOr<Json> {
    ++sent;
    return coordinator::MakeChallenge(msg, *other, &fake_state);
  };
  r = coordinator::AuthenticatedHello(-1, "test:2", 2, hello, cred.get(), fake, &refused);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(refused);
  EXPECT_EQ(sent, 1);
  EXPECT_NE(r.status().message().find("failed to prove"), std::string::npos) << r.status().message();

  // A listener that claims success without a challenge.
  auto yes = [&](const Json&) -> StatusOr<Json> { return Json{{"ok", true}, {"job_id", "x"}}; };
  r = coordinator::AuthenticatedHello(-1, "test:3", 3, hello, cred.get(), yes, &refused);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(refused);

  // A peer without the secret, at the coordinator.
  coordinator::ServerAuthState st;
  hello["auth"] = {{"scheme", "local-secret"}, {"nonce", std::string(32, 'a')}};
  ASSERT_TRUE(coordinator::MakeChallenge(hello, *cred, &st).ok());
  EXPECT_FALSE(coordinator::CheckAuthReply({{"type", "auth"}, {"proof", other->Prove("stasis peer",
                                                                                    st.client_nonce + "/" +
                                                                                        st.server_nonce)}},
                                           *cred, st)
                   .ok());
  hello.erase("auth");
  EXPECT_FALSE(coordinator::MakeChallenge(hello, *cred, &st).ok());
}

TEST(SafeFile, NeverWritesThroughASymlinkAtTheTempName) {
  TempDir dir;
  const std::string victim = dir / "victim";
  { std::ofstream(victim) << "precious"; }
  ASSERT_EQ(::symlink(victim.c_str(), (dir / "out.tmp").c_str()), 0);
  ASSERT_TRUE(WriteFileAtomic(dir / "out", "data", 0640).ok());
  EXPECT_EQ(Read(victim), "precious");
  EXPECT_EQ(Read(dir / "out"), "data");
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir / "out.tmp")));
  struct stat st;
  ASSERT_EQ(::lstat((dir / "out").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0640u);

  // A symlink at the final name is replaced, not written through.
  ASSERT_EQ(::unlink((dir / "out").c_str()), 0);
  ASSERT_EQ(::symlink(victim.c_str(), (dir / "out").c_str()), 0);
  ASSERT_TRUE(WriteFileAtomic(dir / "out", "again", 0600).ok());
  EXPECT_EQ(Read(victim), "precious");
  EXPECT_EQ(Read(dir / "out"), "again");

  // Without replace_stale the planted entry is an error, never followed.
  ASSERT_EQ(::symlink(victim.c_str(), (dir / "img.tmp").c_str()), 0);
  auto f = AtomicFile::Create(dir / "img", 0600, /*replace_stale=*/false);
  EXPECT_FALSE(f.ok());
  EXPECT_EQ(Read(victim), "precious");
}

TEST(SafeFile, AbandonedFileLeavesNothing) {
  TempDir dir;
  {
    auto f = AtomicFile::Create(dir / "x", 0600);
    ASSERT_TRUE(f.ok());
    ASSERT_EQ(::write(f->fd(), "x", 1), 1);
  }
  EXPECT_FALSE(fs::exists(dir / "x.tmp"));
  EXPECT_FALSE(fs::exists(dir / "x"));
}

TEST(Trust, OwnershipRules) {
  TempDir dir;
  const uid_t me = ::geteuid();
  const std::string f = dir / "img";
  { std::ofstream(f) << "x"; }
  ASSERT_EQ(::chmod(f.c_str(), 0600), 0);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
  EXPECT_TRUE(image::CheckOwnership(f, false, me).ok());
  EXPECT_TRUE(image::CheckOwnership(dir.path(), true, me).ok());
  ASSERT_EQ(::chmod(f.c_str(), 0620), 0);
  Status st = image::CheckOwnership(f, false, me);
  EXPECT_NE(st.message().find("its group"), std::string::npos) << st.message();
  ASSERT_EQ(::chmod(f.c_str(), 0602), 0);
  st = image::CheckOwnership(f, false, me);
  EXPECT_NE(st.message().find("every user"), std::string::npos) << st.message();
  // A world-writable directory is fine only with the sticky bit.
  ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
  EXPECT_FALSE(image::CheckOwnership(dir.path(), true, me).ok());
  ASSERT_EQ(::chmod(dir.path().c_str(), 01777), 0);
  EXPECT_TRUE(image::CheckOwnership(dir.path(), true, me).ok());
  // Another owner (as seen by a different uid).
  st = image::CheckOwnership(dir.path(), true, me + 1);
  if (me != 0) {
    EXPECT_NE(st.message().find("owned by uid"), std::string::npos) << st.message();
  }
  EXPECT_FALSE(image::CheckOwnership(dir.path(), false, me).ok());  // not a regular file
}

}  // namespace
}  // namespace stasis
