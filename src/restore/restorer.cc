// The pre-restorer: creates the restored process with its old pid, loads
// and verifies every page into slots, reopens files, fills BlobArgs and
// jumps to the blob (src/restore/blob).  Flow: docs/architecture.md,
// "Restart flow".  The child never creates threads: their pids may be
// needed by the image's threads.
#include "restore/restorer.h"

#include <fcntl.h>
#include <linux/sched.h>  // struct clone_args
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/raw_log.h"
#include "restore/blob/blob_args.h"
#include "restore/blob/blob_embed.h"
#include "restore/layout.h"
#include "restore/slots.h"
#include "state/files.h"
#include "state/memory.h"
#include "state/process.h"
#include "state/signals.h"
#include "state/threads.h"
#include "state/vdso.h"

namespace stasis::restore {
namespace {

using Kind = image::MemoryArea::Kind;
constexpr uint64_t kPage = image::kPageSize;

uint64_t RoundUp(uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

bool EnvIs1(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, "1") == 0;
}

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// glibc registers an rseq area for every thread (in its TCB).  The blob
// unmaps that memory, after which the kernel's rseq updates would fault and
// kill the process, so the registration is dropped before the jump (the
// image's own rseq areas are registered again by the blob).  rseq(2).
void UnregisterGlibcRseq() {
#ifdef RSEQ_SIG
  if (__rseq_size == 0) return;
  auto* area = reinterpret_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
  for (unsigned len : {__rseq_size, 32u}) {
    if (syscall(SYS_rseq, area, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0) return;
  }
#endif
}

// Copies the blob into the region, then switches to the leader's blob stack
// and jumps to its entry with %rdi = args.  Never returns.
[[noreturn]] void JumpToBlob(uint64_t code, uint64_t stack_top, BlobArgs* args) {
  asm volatile(
      "mov %0, %%rsp\n\t"
      "xor %%ebp, %%ebp\n\t"
      "jmp *%1\n\t"
      :
      : "r"(stack_top), "r"(code), "D"(args)
      : "memory");
  __builtin_unreachable();
}

// Everything the child does up to the jump.  Returns only on error; the
// caller reports the error on the status pipe and exits.
// `*report` is the status pipe; it is moved above the image's descriptors.
Status RunPreRestorer(image::ImageReader& reader, const RestoreOptions& opts, int* report) {
  const image::ProcessImage& img = reader.metadata();

  // Descriptors that survive RestoreFiles must sit above the image's.
  const int base = std::max(state::HighestFd(img), 2) + 1;
  int status_fd = ::fcntl(*report, F_DUPFD_CLOEXEC, base);
  if (status_fd < 0) return Status::Errno("moving the status pipe");
  ::close(*report);
  *report = status_fd;

  // a+b: plan the layout, reserve the region, build and fill the slots.
  ASSIGN_OR_RETURN(Slots slots, BuildSlots(img, opts.force_vdso_proxy || EnvIs1("STASIS_VDSO_PROXY")));
  RETURN_IF_ERROR(LoadPages(reader, slots));
  auto* args = reinterpret_cast<BlobArgs*>(slots.layout.plan.region.start + slots.layout.plan.args_off);

  // d: process attributes and descriptors.  Our stdio goes to high numbers
  // and is handed to RestoreFiles for the descriptors that were stdio.
  int stdio[3];
  for (int i = 0; i < 3; ++i) {
    stdio[i] = ::fcntl(i, F_DUPFD_CLOEXEC, status_fd + 1);
    if (stdio[i] < 0 && errno != EBADF) return Status::Errno("duplicating stdio " + std::to_string(i));
  }
  int exe_fd_number = std::max({status_fd, stdio[0], stdio[1], stdio[2]}) + 1;
  RETURN_IF_ERROR(state::RestoreProcessAttributes(img).With("restoring process attributes"));
  RETURN_IF_ERROR(state::RestoreFiles(img, stdio, {status_fd, exe_fd_number}).With("restoring descriptors"));

  // BlobArgs: the other modules' parts, then ours.
  for (size_t i = 0; i < img.threads.size() && i < static_cast<size_t>(kBlobMaxThreads); ++i)
    args->threads[i].stack_top = slots.layout.plan.StackTop(static_cast<int>(i));
  RETURN_IF_ERROR(state::PrepareThreads(img, args));
  RETURN_IF_ERROR(state::PrepareSignals(img, args));
  RETURN_IF_ERROR(state::PrepareProcess(img, exe_fd_number, args));
  args->magic = kBlobArgsMagic;
  args->region = {slots.layout.plan.region.start, slots.layout.plan.region.size()};
  args->pid = img.pid;
  args->report_fd = status_fd;
  RETURN_IF_ERROR(FillAreaArgs(img, slots, args));
  args->control_block = img.agent.control_block;
  args->restart_info.restarted = 1;
  args->restart_info.restorer_start = args->region.start;
  args->restart_info.restorer_len = args->region.len;
  std::snprintf(args->restart_info.supervisor_socket, sizeof args->restart_info.supervisor_socket,
                "%s", opts.supervisor_socket.c_str());
  if (opts.supervisor_socket.size() >= sizeof args->restart_info.supervisor_socket)
    return Status::Error("supervisor socket path too long: " + opts.supervisor_socket);

  // e: the blob's code, read+exec.
  const uint64_t blob_size = static_cast<uint64_t>(stasis_blob_end - stasis_blob_start);
  const uint64_t code = slots.layout.plan.region.start + slots.layout.plan.code_off;
  if (::mmap(reinterpret_cast<void*>(code), RoundUp(blob_size), PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
    return Status::Errno("mapping the blob code");
  std::memcpy(reinterpret_cast<void*>(code), stasis_blob_start, blob_size);
  if (::mprotect(reinterpret_cast<void*>(code), RoundUp(blob_size), PROT_READ | PROT_EXEC) != 0)
    return Status::Errno("mprotect blob code");

  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  ::prctl(PR_SET_PDEATHSIG, 0);
  WriteAll(status_fd, "OK\n");
  if (opts.pause_before_jump || EnvIs1("STASIS_RESTART_PAUSE")) {
    RawLog("restored process %d is stopped before the restorer blob (blob at 0x%lx, args at %p); "
           "attach with gdb -p %d, continue with SIGCONT",
           static_cast<int>(::getpid()), static_cast<unsigned long>(code), static_cast<void*>(args),
           static_cast<int>(::getpid()));
    ::raise(SIGSTOP);
  }
  UnregisterGlibcRseq();
  JumpToBlob(code, args->threads[0].stack_top, args);
}

[[noreturn]] void PreRestorerMain(image::ImageReader& reader, const RestoreOptions& opts, int status_pipe) {
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the supervisor died: nothing to restore for
  int report = status_pipe;
  Status st = RunPreRestorer(reader, opts, &report);
  WriteAll(report, st.message() + "\n");
  ::_exit(1);
}

}  // namespace

Status PrecheckImage(const image::ImageReader& reader) {
  const image::ProcessImage& img = reader.metadata();
  // Callers prefix the image path (supervisor.cc does).
  auto fail = [&](const std::string& m) { return Status::Error(m); };
  if (img.pid <= 0) return fail("image has no pid");
  if (img.threads.empty()) return fail("image has no threads");
  if (img.threads.size() > static_cast<size_t>(kBlobMaxThreads))
    return fail(std::to_string(img.threads.size()) + " threads; at most " + std::to_string(kBlobMaxThreads) +
                " can be restored");
  if (img.threads[0].tid != img.pid) return fail("the first thread is not the thread-group leader");
  if (img.areas.size() + 1 > static_cast<size_t>(kBlobMaxAreas))
    return fail(std::to_string(img.areas.size()) + " memory areas; at most " +
                std::to_string(kBlobMaxAreas - 1) + " can be restored");
  if (img.shared_pending.size() > static_cast<size_t>(agent::kMaxSharedPending))
    return fail("too many pending signals");
  for (const auto& a : img.areas) {
    if (a.start >= a.end || a.start % kPage || a.end % kPage || a.end > kUserHigh)
      return fail("bad memory area " + std::to_string(a.start) + "-" + std::to_string(a.end));
  }
  RETURN_IF_ERROR(state::CheckAreaFiles(img));
  RETURN_IF_ERROR(state::CheckFiles(img));
  return Status::Ok();
}

StatusOr<pid_t> SpawnRestoredProcess(image::ImageReader& reader, const RestoreOptions& opts) {
  const image::ProcessImage& img = reader.metadata();
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return Status::Errno("pipe");
  ScopedFd rd(pipefd[0]), wr(pipefd[1]);

  // clone3(2) with set_tid: a fork whose pid is the image's.  Raw syscall:
  // glibc has no wrapper, so the child must not rely on state another
  // thread of the parent might have been changing (malloc, stdio locks).
  struct clone_args ca;
  std::memset(&ca, 0, sizeof ca);
  pid_t want = img.pid;
  ca.exit_signal = SIGCHLD;
  ca.set_tid = reinterpret_cast<uint64_t>(&want);
  ca.set_tid_size = 1;
  long r = ::syscall(SYS_clone3, &ca, sizeof ca);
  if (r < 0) {
    int err = errno;
    std::string hint = err == EEXIST ? " (pid in use)"
                     : err == EPERM  ? " (needs CAP_CHECKPOINT_RESTORE in the pid namespace's user namespace)"
                                     : "";
    return Status::Errno(reader.path() + ": clone3(set_tid=" + std::to_string(want) + ")" + hint, err);
  }
  if (r == 0) {
    rd.reset();
    PreRestorerMain(reader, opts, wr.release());
  }
  pid_t pid = static_cast<pid_t>(r);
  wr.reset();

  std::string text;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(rd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.find('\n') != std::string::npos && text.rfind("OK\n", 0) == 0) return pid;
  }
  // Failure: the child reported an error (or died) and exits.
  int wst = 0;
  pid_t w;
  do w = ::waitpid(pid, &wst, 0); while (w < 0 && errno == EINTR);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) {
    std::string how = w != pid                ? "was reaped elsewhere"
                      : WIFSIGNALED(wst)      ? "was killed by signal " + std::to_string(WTERMSIG(wst))
                                              : "exited with status " + std::to_string(WEXITSTATUS(wst));
    return Status::Error(reader.path() + ": the restoring process " + how + " before it reported");
  }
  if (text.rfind(reader.path(), 0) == 0) return Status::Error(text);
  return Status::Error(reader.path() + ": " + text);
}

}  // namespace stasis::restore
