// Tests of src/state/files: fdinfo parsing and classification on synthetic
// input, capture of a forked child's descriptors, pre-restart checks, and
// RestoreFiles run inside a forked child (it closes every descriptor).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "paused_child.h"
#include "state/files.h"

namespace stasis::state {
namespace {

using Kind = image::FileDescriptor::Kind;

using testing::PausedChild;

std::string MakeTempDir() {
  char tmpl[] = "/tmp/stasis-files-test-XXXXXX";
  const char* d = mkdtemp(tmpl);
  return d ? d : "";
}

void WriteFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  close(fd);
}

const image::FileDescriptor* Find(const std::vector<image::FileDescriptor>& fds, int fd) {
  for (const auto& f : fds) if (f.fd == fd) return &f;
  return nullptr;
}

TEST(FilesParse, FdinfoPosAndFlags) {
  auto info = ParseFdinfo("pos:\t123\nflags:\t02102001\nmnt_id:\t25\nino:\t77\n");
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->pos, 123u);
  EXPECT_EQ(info->flags, 02102001);
  EXPECT_TRUE(info->flags & O_CLOEXEC);
  EXPECT_TRUE(info->flags & O_APPEND);
  EXPECT_EQ(info->flags & O_ACCMODE, O_WRONLY);
}

TEST(FilesParse, FdinfoErrors) {
  EXPECT_FALSE(ParseFdinfo("pos:\t0\n").ok());
  EXPECT_FALSE(ParseFdinfo("flags:\t02\n").ok());
  EXPECT_FALSE(ParseFdinfo("pos:\tx\nflags:\t02\n").ok());
  EXPECT_FALSE(ParseFdinfo("pos:\t1\nflags:\t9\n").ok());  // not octal
}

TEST(FilesParse, Classify) {
  EXPECT_EQ(ClassifyFd("pipe:[1234]", S_IFIFO | 0600, 0), Kind::kPipe);
  EXPECT_EQ(ClassifyFd("/tmp/fifo", S_IFIFO | 0600, 0), Kind::kFifo);
  EXPECT_EQ(ClassifyFd("socket:[99]", S_IFSOCK | 0777, 0), Kind::kSocket);
  EXPECT_EQ(ClassifyFd("anon_inode:[eventfd]", S_IFREG | 0600, 0), Kind::kEventfd);
  EXPECT_EQ(ClassifyFd("anon_inode:inotify", S_IFREG | 0600, 0), Kind::kOther);
  EXPECT_EQ(ClassifyFd("/etc/passwd", S_IFREG | 0644, 0), Kind::kRegular);
  EXPECT_EQ(ClassifyFd("/tmp", S_IFDIR | 0755, 0), Kind::kDirectory);
  EXPECT_EQ(ClassifyFd("/dev/null", S_IFCHR | 0666, makedev(1, 3)), Kind::kCharDevice);
  EXPECT_EQ(ClassifyFd("/dev/pts/3", S_IFCHR | 0620, makedev(136, 3)), Kind::kTty);
  EXPECT_EQ(ClassifyFd("/dev/tty", S_IFCHR | 0666, makedev(5, 0)), Kind::kTty);
  EXPECT_EQ(ClassifyFd("/dev/ttyS0", S_IFCHR | 0660, makedev(4, 64)), Kind::kTty);
  EXPECT_EQ(ClassifyFd("/dev/ptmx", S_IFCHR | 0666, makedev(5, 2)), Kind::kOther);
  EXPECT_EQ(ClassifyFd("/dev/sda", S_IFBLK | 0660, makedev(8, 0)), Kind::kOther);
}

TEST(FilesCapture, ForkedChild) {
  std::string dir = MakeTempDir();
  ASSERT_FALSE(dir.empty());
  const std::string log = dir + "/log", data = dir + "/data";
  WriteFile(data, "0123456789");
  int out_pipe[2], other_pipe[2];
  ASSERT_EQ(pipe(out_pipe), 0);
  ASSERT_EQ(pipe(other_pipe), 0);
  {
    PausedChild child([&] {
      int fd = open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
      if (write(fd, "0123456789", 10) != 10) _exit(2);
      dup2(fd, 20);
      fd = open(data.c_str(), O_RDONLY | O_CLOEXEC);
      lseek(fd, 3, SEEK_SET);
      dup3(fd, 21, O_CLOEXEC);
      dup2(open(dir.c_str(), O_RDONLY | O_DIRECTORY), 22);
      dup2(open("/dev/null", O_RDWR), 23);
      dup2(out_pipe[1], 1);  // stdout is a pipe
      dup2(1, 24);           // shares stdout's open file
      dup2(other_pipe[0], 25);  // a pipe that is not stdio
      dup2(open("/dev/null", O_RDONLY), 26);  // "agent socket": skipped
    });
    ASSERT_TRUE(child.ready());
    auto target = ProcTarget::Open(child.pid());
    ASSERT_TRUE(target.ok()) << target.status().message();
    auto fds = CaptureFiles(*target, 26);
    ASSERT_TRUE(fds.ok()) << fds.status().message();

    const auto* f = Find(*fds, 20);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->kind, Kind::kRegular);
    EXPECT_EQ(f->path, log);
    EXPECT_EQ(f->offset, 10u);
    EXPECT_EQ(f->size, 10u);
    EXPECT_TRUE(f->flags & O_APPEND);
    EXPECT_EQ(f->flags & O_ACCMODE, O_WRONLY);
    EXPECT_FALSE(f->cloexec);
    EXPECT_EQ(f->stdio_alias, -1);

    f = Find(*fds, 21);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->offset, 3u);
    EXPECT_TRUE(f->cloexec);
    EXPECT_EQ(f->flags & O_ACCMODE, O_RDONLY);

    f = Find(*fds, 22);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->kind, Kind::kDirectory);
    EXPECT_EQ(f->path, dir);

    f = Find(*fds, 23);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->kind, Kind::kCharDevice);
    EXPECT_EQ(f->path, "/dev/null");
    EXPECT_EQ(f->rdev, makedev(1, 3));

    f = Find(*fds, 1);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->kind, Kind::kPipe);
    EXPECT_EQ(f->stdio_alias, 1);
    f = Find(*fds, 24);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->kind, Kind::kPipe);
    EXPECT_EQ(f->stdio_alias, 1);
    f = Find(*fds, 25);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->kind, Kind::kPipe);
    EXPECT_EQ(f->stdio_alias, -1);
    EXPECT_EQ(Find(*fds, 26), nullptr);

    // Pre-restart check: a pipe that is not stdio does not block a restart
    // (RestoreFiles replaces it by /dev/null with a warning).
    image::ProcessImage img;
    img.fds = *fds;
    EXPECT_TRUE(CheckFiles(img).ok()) << CheckFiles(img).message();
  }
  for (int fd : {out_pipe[0], out_pipe[1], other_pipe[0], other_pipe[1]}) close(fd);
  unlink(log.c_str());
  unlink(data.c_str());
  rmdir(dir.c_str());
}

TEST(FilesCheck, MissingAndDeleted) {
  image::ProcessImage img;
  image::FileDescriptor gone;
  gone.fd = 7;
  gone.kind = Kind::kRegular;
  gone.path = "/nonexistent/stasis/file";
  img.fds = {gone};
  Status st = CheckFiles(img);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("fd 7: /nonexistent/stasis/file"), std::string::npos) << st.message();

  img.fds[0].path = "/tmp/x (deleted)";
  st = CheckFiles(img);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("deleted"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("--save-files"), std::string::npos) << st.message();

  // A socket shared with stdout is fine; the agent's socket is never checked.
  img.fds[0].kind = Kind::kSocket;
  img.fds[0].path = "socket:[5]";
  img.fds[0].stdio_alias = 1;
  image::FileDescriptor agent_sock;
  agent_sock.fd = 9;
  agent_sock.kind = Kind::kSocket;
  agent_sock.path = "socket:[6]";
  img.fds.push_back(agent_sock);
  img.agent.socket_fd = 9;
  EXPECT_TRUE(CheckFiles(img).ok()) << CheckFiles(img).message();
  EXPECT_EQ(HighestFd(img), 9);
}

// RestoreFiles closes every descriptor, so it runs in a child, which checks
// the result itself and reports "OK" or what was wrong through a kept fd.
TEST(FilesRestore, InForkedChild) {
  std::string dir = MakeTempDir();
  ASSERT_FALSE(dir.empty());
  const std::string grown = dir + "/grown", ro = dir + "/ro";
  WriteFile(grown, "0123456789ABCDEF");  // 16 bytes; 10 at checkpoint (never cut here: written_files.h)
  WriteFile(ro, "0123456789ABCDEF");
  struct stat null_st;
  ASSERT_EQ(stat("/dev/null", &null_st), 0);

  image::ProcessImage img;
  auto add = [&](int fd, Kind kind, const std::string& path, int flags, uint64_t offset,
                 uint64_t size, bool cloexec, int alias) {
    image::FileDescriptor f;
    f.fd = fd; f.kind = kind; f.path = path; f.flags = flags; f.offset = offset;
    f.size = size; f.cloexec = cloexec; f.stdio_alias = alias;
    if (kind == Kind::kCharDevice) f.rdev = null_st.st_rdev;
    img.fds.push_back(f);
  };
  add(1, Kind::kPipe, "pipe:[1]", O_WRONLY, 0, 0, false, 1);
  add(2, Kind::kTty, "/dev/pts/9", O_RDWR, 0, 0, false, 2);  // stdio[2] absent: /dev/null
  add(5, Kind::kRegular, grown, O_RDWR | O_APPEND, 4, 10, true, -1);
  add(7, Kind::kRegular, ro, O_RDONLY, 7, 10, false, -1);
  add(8, Kind::kDirectory, dir, O_RDONLY | O_DIRECTORY, 0, 0, true, -1);
  add(9, Kind::kCharDevice, "/dev/null", O_WRONLY, 0, 0, false, -1);
  add(11, Kind::kPipe, "pipe:[4242]", O_WRONLY, 0, 0, false, -1);  // led outside the job
  ASSERT_TRUE(CheckFiles(img).ok()) << CheckFiles(img).message();

  int out_pipe[2], report[2];
  ASSERT_EQ(pipe(out_pipe), 0);
  ASSERT_EQ(pipe(report), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(out_pipe[0]);
    close(report[0]);
    int rep = fcntl(report[1], F_DUPFD_CLOEXEC, 101);
    int stdio[3] = {-1, fcntl(out_pipe[1], F_DUPFD_CLOEXEC, 100), -1};
    open("/dev/null", O_RDONLY);  // some stray descriptor that must be closed
    std::string errors;
    auto check = [&](bool ok, const char* what) { if (!ok) errors += std::string(what) + "; "; };
    Status st = RestoreFiles(img, stdio, {rep});
    check(st.ok(), st.message().c_str());
    struct stat s;
    check(fstat(5, &s) == 0 && s.st_size == 16, "fd 5 must not be truncated");
    check(lseek(5, 0, SEEK_CUR) == 4, "fd 5 offset");
    check(fcntl(5, F_GETFD) == FD_CLOEXEC, "fd 5 cloexec");
    check((fcntl(5, F_GETFL) & (O_ACCMODE | O_APPEND)) == (O_RDWR | O_APPEND), "fd 5 flags");
    check(fstat(7, &s) == 0 && s.st_size == 16, "fd 7 (read-only) must not be truncated");
    check(lseek(7, 0, SEEK_CUR) == 7, "fd 7 offset");
    check(fcntl(7, F_GETFD) == 0, "fd 7 cloexec");
    check(fstat(8, &s) == 0 && S_ISDIR(s.st_mode), "fd 8 dir");
    check(fcntl(8, F_GETFD) == FD_CLOEXEC, "fd 8 cloexec");
    check(fstat(9, &s) == 0 && S_ISCHR(s.st_mode), "fd 9 chr");
    check(fstat(2, &s) == 0 && S_ISCHR(s.st_mode) && s.st_rdev == null_st.st_rdev, "fd 2 /dev/null");
    check(fstat(11, &s) == 0 && S_ISCHR(s.st_mode) && s.st_rdev == null_st.st_rdev, "fd 11 /dev/null");
    check((fcntl(11, F_GETFL) & O_ACCMODE) == O_WRONLY, "fd 11 access mode");
    check(fcntl(0, F_GETFD) < 0, "fd 0 should be closed");
    check(fcntl(3, F_GETFD) < 0, "fd 3 should be closed");
    check(fcntl(100, F_GETFD) < 0, "stdio copy should be closed");
    check(fcntl(rep, F_GETFD) >= 0, "kept fd closed");
    check(write(1, "hello", 5) == 5, "write to fd 1");
    if (errors.empty()) errors = "OK";
    (void)!write(rep, errors.data(), errors.size());
    _exit(0);
  }
  close(out_pipe[1]);
  close(report[1]);
  std::string got;
  char buf[512];
  ssize_t n;
  while ((n = read(report[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(got, "OK");
  n = read(out_pipe[0], buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "hello");
  close(out_pipe[0]);
  close(report[0]);
  unlink(grown.c_str());
  unlink(ro.c_str());
  rmdir(dir.c_str());
}

TEST(FilesRestore, KeepCollidingWithImageIsAnError) {
  image::ProcessImage img;
  image::FileDescriptor f;
  f.fd = 4;
  f.kind = Kind::kCharDevice;
  f.path = "/dev/null";
  img.fds = {f};
  int stdio[3] = {-1, -1, -1};
  // Fails before closing anything, so it is safe in the test process.
  Status st = RestoreFiles(img, stdio, {4});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("fd 4"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace stasis::state
