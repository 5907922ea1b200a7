// The pre-restorer: creates the restored processes of a tree with their old
// pids (tree.h), loads and verifies every page into slots, waits until the
// whole tree has loaded, reopens files, fills BlobArgs and jumps to the blob
// (src/restore/blob).  Flow: docs/architecture.md, "Restart flow".  A
// pre-restorer never creates threads: their tids may be needed by the
// image's threads.
#include "restore/restorer.h"

#include <fcntl.h>
#include <linux/sched.h>  // struct clone_args
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/raw_log.h"
#include "common/scoped_fd.h"
#include "restore/blob/blob_args.h"
#include "restore/blob/blob_embed.h"
#include "restore/agent_library.h"
#include "restore/layout.h"
#include "restore/objects.h"
#include "restore/slots.h"
#include "state/anon_inode.h"
#include "state/epoll.h"
#include "state/files.h"
#include "state/memory.h"
#include "state/process.h"
#include "state/shmem.h"
#include "state/signals.h"
#include "state/sockets.h"
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
  // `code` is pinned to %rax: in a register of the compiler's choice it
  // could be %rbp, which is zeroed before the jump.
  asm volatile(
      "mov %0, %%rsp\n\t"
      "xor %%ebp, %%ebp\n\t"
      "jmp *%1\n\t"
      :
      : "r"(stack_top), "a"(code), "D"(args)
      : "memory");
  __builtin_unreachable();
}

// What every pre-restorer of a tree shares.  Each process has its own copy
// (fork semantics) and updates it as it moves and closes descriptors.
struct TreeContext {
  const std::vector<image::ImageReader*>* readers = nullptr;
  const TreePlan* plan = nullptr;
  const RestoreOptions* opts = nullptr;
  std::vector<int> report_wr;  // per node: write end of its status pipe (-1: closed, zombie)
  int go_rd = -1;              // read end of the shared "go" pipe
  const std::vector<PlannedObject>* objects = nullptr;
  std::vector<std::array<int, 3>> obj_fd;  // per planned object: its descriptors here (-1: not open)
};

// Moves `*fd` to the lowest free number >= base (close-on-exec: no exec
// happens before the blob, which only closes what it is told to).
Status MoveAbove(int* fd, int base, const char* what) {
  if (*fd < 0 || *fd >= base) return Status::Ok();
  int moved = ::fcntl(*fd, F_DUPFD_CLOEXEC, base);
  if (moved < 0) return Status::Errno(std::string("moving ") + what);
  ::close(*fd);
  *fd = moved;
  return Status::Ok();
}

// Creates planned object k here (kind by kind, see objects.h) and moves
// its descriptors above `base`.  (GCC 12 misreads the std::variant inside
// StatusOr<std::array<ScopedFd, N>> as freeing a non-heap object.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
Status CreatePlannedObject(TreeContext& ctx, size_t k, int base) {
  const PlannedObject& o = (*ctx.objects)[k];
  std::array<int, 3>& fds = ctx.obj_fd[k];
  switch (o.kind) {
    case PlannedObject::Kind::kPipe: {
      ASSIGN_OR_RETURN(auto ends, state::CreatePipe(o.pipe));
      for (int e = 0; e < 3; ++e) fds[e] = ends[e].release();
      break;
    }
    case PlannedObject::Kind::kSocketPair: {
      // TCP: the end at a recreated listener's address is the server end.
      const image::SocketInfo* s[2] = {&o.desc[0]->socket, &o.desc[1]->socket};
      const int flags[2] = {o.desc[0]->flags, o.desc[1]->flags};
      int server = 0, listener = -1;
      for (size_t j = 0; j < k && listener < 0; ++j) {
        const PlannedObject& l = (*ctx.objects)[j];
        if (l.kind != PlannedObject::Kind::kSocket || ctx.obj_fd[j][0] < 0 ||
            l.desc[0]->socket.state != image::SocketInfo::State::kListening)
          continue;
        for (int e = 0; e < 2 && listener < 0; ++e) {
          if (l.desc[0]->socket.local_addr == s[e]->local_addr) {
            server = e;
            listener = ctx.obj_fd[j][0];
          }
        }
      }
      ASSIGN_OR_RETURN(auto pair, state::CreateConnectedPair(*s[server], flags[server], *s[1 - server],
                                                             flags[1 - server], listener));
      fds[server] = pair[0].release();
      fds[1 - server] = pair[1].release();
      break;
    }
    case PlannedObject::Kind::kShmem: {
      auto made = state::CreateShmemObject(o.shmem_name, o.shmem_path, o.shmem_size);
      if (!made.ok()) return made.status();
      fds = {made->release(), -1, -1};
      for (const auto* runs : o.shmem_data) RETURN_IF_ERROR(state::FillShmemObject(fds[0], *runs, o.what));
      if (o.shmem_offset != 0) (void)::lseek(fds[0], static_cast<off_t>(o.shmem_offset), SEEK_SET);
      break;
    }
    case PlannedObject::Kind::kAnon: {
      auto made = state::RestoreAnonFd(*o.desc[0], 2);
      if (!made.ok()) return made.status().With(o.what);
      fds = {made->release(), -1, -1};
      break;
    }
    case PlannedObject::Kind::kSocket: {
      std::string warning;
      ASSIGN_OR_RETURN(ScopedFd fd, state::CreateSingleSocket(o.desc[0]->socket, o.desc[0]->flags, &warning));
      if (!warning.empty()) RawLog("stasis restart: warning: %s: %s", o.what.c_str(), warning.c_str());
      fds = {fd.release(), -1, -1};
      break;
    }
  }
  for (int& fd : fds) RETURN_IF_ERROR(MoveAbove(&fd, base, o.what.c_str()));
  return Status::Ok();
}
#pragma GCC diagnostic pop

// Closes the object descriptors this node does not install (its children,
// created already, have their copies).
void DropForeignObjectEnds(TreeContext& ctx, size_t node) {
  for (size_t k = 0; k < ctx.obj_fd.size(); ++k) {
    for (int end = 0; end < 3; ++end) {
      bool mine = false;
      for (const ObjectEnd& e : (*ctx.objects)[k].ends) mine |= e.node == node && e.end == end;
      if (!mine && ctx.obj_fd[k][end] >= 0) {
        ::close(ctx.obj_fd[k][end]);
        ctx.obj_fd[k][end] = -1;
      }
    }
  }
}

std::vector<int> HeldObjectFds(const TreeContext& ctx) {
  std::vector<int> out;
  for (const auto& fds : ctx.obj_fd)
    for (int fd : fds)
      if (fd >= 0) out.push_back(fd);
  return out;
}

// After RestoreFiles: each object descriptor of the image, dup'd to its number.
Status InstallObjectEnds(TreeContext& ctx, size_t node) {
  for (size_t k = 0; k < ctx.obj_fd.size(); ++k) {
    for (const ObjectEnd& e : (*ctx.objects)[k].ends) {
      if (e.node != node || e.fd < 0) continue;
      int src = ctx.obj_fd[k][e.end];
      if (src < 0 || ::dup3(src, e.fd, e.cloexec ? O_CLOEXEC : 0) < 0)
        return Status::Errno("fd " + std::to_string(e.fd) + ": installing " + (*ctx.objects)[k].what);
    }
  }
  for (int fd : HeldObjectFds(ctx)) ::close(fd);
  for (auto& fds : ctx.obj_fd) fds = {-1, -1, -1};
  return Status::Ok();
}

// clone3(2) with set_tid: a fork whose pid is `want`.  Raw syscall (glibc
// has no wrapper), so the child must not rely on glibc's cached tid (raise,
// pthread_self()->tid) nor on locks another thread might hold.
long CloneWithPid(pid_t want) {
  struct clone_args ca;
  std::memset(&ca, 0, sizeof ca);
  ca.exit_signal = SIGCHLD;
  ca.set_tid = reinterpret_cast<uint64_t>(&want);
  ca.set_tid_size = 1;
  return ::syscall(SYS_clone3, &ca, sizeof ca);
}

std::string CloneError(pid_t want, int err) {
  std::string hint = err == EEXIST ? " (pid in use)"
                   : err == EPERM  ? " (needs CAP_CHECKPOINT_RESTORE in the pid namespace's user namespace)"
                                   : "";
  return "clone3(set_tid=" + std::to_string(want) + ")" + hint;
}

// A recreated zombie: terminates at once the way the original did (wait(2)
// status), and stays unreaped until the restored parent waits for it.  A
// signal death is reproduced by the signal itself; no core file is written
// (RLIMIT_CORE 0), so WCOREDUMP is not reproduced.
[[noreturn]] void BecomeZombie(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    struct rlimit none = {0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    ::sigaction(sig, &dfl, nullptr);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    ::sigprocmask(SIG_UNBLOCK, &one, nullptr);
    ::syscall(SYS_kill, ::syscall(SYS_getpid), sig);
  }
  ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

[[noreturn]] void PreRestorerMain(TreeContext& ctx, size_t node);

// Session, group, then the node's children and zombies, before any memory
// is loaded (the children are cheap copies of a small process).  Closes the
// status pipes of all descendants afterwards so that each pipe is held by
// its own process only: a process that dies is seen as EOF.
Status CreateChildren(TreeContext& ctx, size_t node, int own_status_fd, int base) {
  const TreePlan& plan = *ctx.plan;
  const TreeNode& n = plan.nodes[node];
  if (n.setsid && ::setsid() < 0) return Status::Errno("setsid");
  if (n.group == TreeNode::Group::kOwn && ::setpgid(0, 0) != 0) return Status::Errno("setpgid(0, 0)");
  if (n.group == TreeNode::Group::kJoin && ::setpgid(0, n.pgid) != 0)
    return Status::Errno("setpgid(0, " + std::to_string(n.pgid) + ")");
  for (size_t k = 0; k < ctx.objects->size(); ++k) {
    if ((*ctx.objects)[k].creator == node) RETURN_IF_ERROR(CreatePlannedObject(ctx, k, base));
  }
  std::vector<pid_t> zombies;
  for (size_t c : n.children) {
    const TreeNode& child = plan.nodes[c];
    long r = CloneWithPid(child.pid);
    if (r < 0) return Status::Errno(CloneError(child.pid, errno) + (child.zombie ? " for an unreaped child" : ""));
    if (r == 0) {
      if (child.zombie) BecomeZombie(child.exit_status);
      std::vector<size_t> sub = plan.Subtree(c);
      for (size_t k = 0; k < ctx.report_wr.size(); ++k) {
        if (ctx.report_wr[k] < 0 || std::find(sub.begin(), sub.end(), k) != sub.end()) continue;
        ::close(ctx.report_wr[k]);
        ctx.report_wr[k] = -1;
      }
      ::close(own_status_fd);
      PreRestorerMain(ctx, c);
    }
    if (child.zombie) {
      zombies.push_back(static_cast<pid_t>(r));
    } else if (child.group == TreeNode::Group::kOwn) {
      ::setpgid(static_cast<pid_t>(r), static_cast<pid_t>(r));  // the child does it too; whoever is first
    } else if (child.group == TreeNode::Group::kJoin) {
      ::setpgid(static_cast<pid_t>(r), child.pgid);
    }
  }
  for (pid_t z : zombies) {  // wait until it is a zombie, without reaping it
    siginfo_t si;
    while (::waitid(P_PID, static_cast<id_t>(z), &si, WEXITED | WNOWAIT) != 0) {
      if (errno != EINTR) return Status::Errno("waiting for unreaped child " + std::to_string(z) + " to exit");
    }
  }
  for (size_t k : plan.Subtree(node)) {
    if (k != node && ctx.report_wr[k] >= 0) ::close(ctx.report_wr[k]);
    ctx.report_wr[k] = -1;
  }
  DropForeignObjectEnds(ctx, node);
  // The zombies' SIGCHLD was delivered (and handled) before the checkpoint.
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  struct timespec zero = {0, 0};
  while (::sigtimedwait(&chld, nullptr, &zero) == SIGCHLD) {
  }
  return Status::Ok();
}

// Everything one pre-restorer does up to the jump.  Returns only on error;
// the caller reports the error on the status pipe and exits.  `*report` is
// the status pipe; it is moved above the image's descriptors.
Status RunPreRestorer(TreeContext& ctx, size_t node, int* report) {
  const TreeNode& tn = ctx.plan->nodes[node];
  image::ImageReader& reader = *(*ctx.readers)[tn.process];
  const RestoreOptions& opts = *ctx.opts;
  const image::ProcessImage& img = reader.metadata();

  // Descriptors that survive RestoreFiles must sit above the image's.
  const int base = std::max(state::HighestFd(img), 2) + 1;
  int status_fd = ::fcntl(*report, F_DUPFD_CLOEXEC, base);
  if (status_fd < 0) return Status::Errno("moving the status pipe");
  ::close(*report);
  ctx.report_wr[node] = -1;
  *report = status_fd;
  int go_fd = ::fcntl(ctx.go_rd, F_DUPFD_CLOEXEC, base);
  if (go_fd < 0) return Status::Errno("moving the go pipe");
  ::close(ctx.go_rd);
  ctx.go_rd = go_fd;
  for (auto& fds : ctx.obj_fd)
    for (int& fd : fds) RETURN_IF_ERROR(MoveAbove(&fd, base, "an inherited pipe or socket"));

  RETURN_IF_ERROR(CreateChildren(ctx, node, status_fd, base));

  // a+b: plan the layout, reserve the region, build and fill the slots.
  std::map<uint64_t, int> shmem_fds;  // this process's shared memory objects
  for (size_t k = 0; k < ctx.objects->size(); ++k) {
    const PlannedObject& o = (*ctx.objects)[k];
    if (o.kind == PlannedObject::Kind::kShmem && ctx.obj_fd[k][0] >= 0) shmem_fds[o.shmem_id] = ctx.obj_fd[k][0];
  }
  ASSIGN_OR_RETURN(Slots slots, BuildSlots(img, opts.force_vdso_proxy || EnvIs1("STASIS_VDSO_PROXY"), shmem_fds));
  RETURN_IF_ERROR(LoadPages(reader, slots));
  auto* args = reinterpret_cast<BlobArgs*>(slots.layout.plan.region.start + slots.layout.plan.args_off);
  RETURN_IF_ERROR(state::RestoreProcessAttributes(img).With("restoring process attributes"));

  // Barrier: nothing with effects outside this process (descriptors may
  // truncate files) until every process of the tree has loaded its pages.
  // From here on a failure anywhere makes the supervisor kill the whole
  // tree, so the parent-death signal is dropped now: a restored parent may
  // legitimately exit while this child is still restoring its descriptors.
  ::prctl(PR_SET_PDEATHSIG, 0);
  WriteAll(status_fd, "LOADED\n");
  char go = 0;
  ssize_t got;
  do got = ::read(go_fd, &go, 1); while (got < 0 && errno == EINTR);
  if (got != 1) ::_exit(1);  // aborted: the supervisor kills us anyway
  ::close(go_fd);

  // d: descriptors.  Our stdio goes to high numbers and is handed to
  // RestoreFiles for the descriptors that were stdio.
  int stdio[3];
  for (int i = 0; i < 3; ++i) {
    stdio[i] = ::fcntl(i, F_DUPFD_CLOEXEC, status_fd + 1);
    if (stdio[i] < 0 && errno != EBADF) return Status::Errno("duplicating stdio " + std::to_string(i));
  }
  std::vector<int> keep = HeldObjectFds(ctx);
  int exe_fd_number = std::max({status_fd, stdio[0], stdio[1], stdio[2]}) + 1;
  for (int fd : keep) exe_fd_number = std::max(exe_fd_number, fd + 1);
  keep.push_back(status_fd);
  keep.push_back(exe_fd_number);
  if (ctx.objects->empty()) {
    RETURN_IF_ERROR(state::RestoreFiles(img, stdio, keep).With("restoring descriptors"));
  } else {
    image::ProcessImage others = img;  // the objects' descriptors are installed below
    std::erase_if(others.fds, [&](const image::FileDescriptor& f) {
      return IsPlannedFd(*ctx.objects, *ctx.plan, tn.process, f.fd);
    });
    RETURN_IF_ERROR(state::RestoreFiles(others, stdio, keep).With("restoring descriptors"));
  }
  RETURN_IF_ERROR(InstallObjectEnds(ctx, node));
  state::RestoreEpollTargets(img);  // targets are named by number: only now all in place

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

[[noreturn]] void PreRestorerMain(TreeContext& ctx, size_t node) {
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // parent died: the restart failed, nothing to restore for
  int report = ctx.report_wr[node];
  Status st = RunPreRestorer(ctx, node, &report);
  // "E<code> <message>": the code travels too, so that the caller can tell a
  // damaged image (fall back to an older checkpoint) from the environment.
  WriteAll(report, "E" + std::to_string(static_cast<int>(st.code())) + " " + st.message() + "\n");
  ::_exit(1);
}

}  // namespace

Status PrecheckImage(const image::ImageReader& reader) {
  const image::ProcessImage& img = reader.metadata();
  // Callers prefix the image path (supervisor.cc does).
  auto fail = [&](const std::string& m) { return Status::Error(m); };  // a limit of Stasis
  auto damaged = [&](const std::string& m) { return Status::DataLoss(m); };  // checksummed, yet nonsense
  if (img.pid <= 0) return damaged("image has no pid");
  if (img.threads.empty()) return damaged("image has no threads");
  if (img.threads.size() > static_cast<size_t>(kBlobMaxThreads))
    return fail(std::to_string(img.threads.size()) + " threads; at most " + std::to_string(kBlobMaxThreads) +
                " can be restored");
  if (img.threads[0].tid != img.pid) return damaged("the first thread is not the thread-group leader");
  if (img.areas.size() + 1 > static_cast<size_t>(kBlobMaxAreas))
    return fail(std::to_string(img.areas.size()) + " memory areas; at most " +
                std::to_string(kBlobMaxAreas - 1) + " can be restored");
  if (img.shared_pending.size() > static_cast<size_t>(agent::kMaxSharedPending))
    return fail("too many pending signals");
  for (const auto& a : img.areas) {
    if (a.start >= a.end || a.start % kPage || a.end % kPage || a.end > kUserHigh)
      return damaged("bad memory area " + std::to_string(a.start) + "-" + std::to_string(a.end));
  }
  RETURN_IF_ERROR(CheckAgentLibrary(img));
  RETURN_IF_ERROR(state::CheckAreaFiles(img));
  RETURN_IF_ERROR(state::CheckFiles(img));
  return Status::Ok();
}

namespace {

// One line from a status pipe ("" on EOF without a line).
std::string ReadLine(int fd) {
  std::string text;
  char c;
  for (;;) {
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') return text;
    text.push_back(c);
  }
}

// Waits for `expect` from every process's status pipe.  Error: the first
// reported message (a process that only died is reported last: it may be
// the victim of its parent's failure), prefixed with its image path.
Status CollectReports(const std::vector<image::ImageReader*>& readers, const TreePlan& plan,
                      std::vector<ScopedFd>& rd, const char* expect, const std::vector<pid_t>& roots,
                      std::vector<int>* root_status) {
  std::string error, died;
  StatusCode error_code = StatusCode::kError;
  for (size_t k = 0; k < plan.nodes.size(); ++k) {
    if (!rd[k]) continue;
    std::string line = ReadLine(rd[k].get());
    if (line == expect) continue;
    const std::string& path = readers[plan.nodes[k].process]->path();
    if (!line.empty()) {
      StatusCode code = StatusCode::kError;
      if (line.size() >= 3 && line[0] == 'E' && line[1] >= '0' && line[1] <= '9' && line[2] == ' ') {
        code = static_cast<StatusCode>(line[1] - '0');
        line = line.substr(3);
      }
      if (error.empty()) {
        error = line.rfind(path, 0) == 0 ? line : path + ": " + line;
        error_code = code;
      }
      continue;
    }
    if (!died.empty()) continue;
    std::string how = "died";
    for (size_t r = 0; r < roots.size(); ++r) {
      if (plan.nodes[plan.roots[r]].pid != plan.nodes[k].pid) continue;
      int wst = 0;
      pid_t w;
      do w = ::waitpid(roots[r], &wst, 0); while (w < 0 && errno == EINTR);
      (*root_status)[r] = w == roots[r] ? wst : -1;
      how = w != roots[r]           ? "was reaped elsewhere"
            : WIFSIGNALED(wst)      ? "was killed by signal " + std::to_string(WTERMSIG(wst))
                                    : "exited with status " + std::to_string(WEXITSTATUS(wst));
    }
    died = path + ": the restoring process (pid " + std::to_string(plan.nodes[k].pid) + ") " + how +
           " before it reported";
  }
  if (!error.empty()) return Status::FromCode(error_code, error);
  if (!died.empty()) return Status::Error(died);
  return Status::Ok();
}

// Failure: SIGKILL every process of the tree, reap the roots.
void KillTree(const TreePlan& plan, const std::vector<pid_t>& roots, const std::vector<int>& root_status) {
  for (const TreeNode& n : plan.nodes)
    if (!n.zombie) ::kill(n.pid, SIGKILL);
  for (size_t r = 0; r < roots.size(); ++r) {
    if (root_status[r] != -2) continue;  // already reaped
    int wst;
    while (::waitpid(roots[r], &wst, 0) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace

StatusOr<std::vector<pid_t>> RestoreTree(const std::vector<image::ImageReader*>& readers,
                                         const TreePlan& plan, const RestoreOptions& opts) {
  const size_t n = plan.nodes.size();
  TreeContext ctx;
  ctx.readers = &readers;
  ctx.plan = &plan;
  ctx.opts = &opts;
  ctx.report_wr.assign(n, -1);
  std::vector<ScopedFd> rd(n);
  std::vector<ScopedFd> wr_owner(n);
  size_t processes = 0;
  for (size_t k = 0; k < n; ++k) {
    if (plan.nodes[k].zombie) continue;
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return Status::Errno("pipe");
    rd[k].reset(p[0]);
    wr_owner[k].reset(p[1]);
    ctx.report_wr[k] = p[1];
    ++processes;
  }
  int g[2];
  if (::pipe2(g, O_CLOEXEC) != 0) return Status::Errno("pipe");
  ScopedFd go_rd(g[0]), go_wr(g[1]);
  ctx.go_rd = g[0];

  std::vector<const image::ProcessImage*> images;
  for (auto* r : readers) images.push_back(&r->metadata());
  ASSIGN_OR_RETURN(std::vector<PlannedObject> objects, PlanObjects(plan, images));
  ctx.objects = &objects;
  ctx.obj_fd.assign(objects.size(), {-1, -1, -1});
  for (size_t k = 0; k < objects.size(); ++k) {  // sockets; pipes whose holders are under different roots
    if (objects[k].creator != SIZE_MAX) continue;
    Status st = CreatePlannedObject(ctx, k, 3);
    if (!st.ok()) {
      for (int fd : HeldObjectFds(ctx)) ::close(fd);
      return st;
    }
  }

  std::vector<pid_t> roots;
  std::vector<int> root_status;  // -2: not reaped yet
  for (size_t r : plan.roots) {
    const TreeNode& root = plan.nodes[r];
    long pid = CloneWithPid(root.pid);
    if (pid < 0) {
      int err = errno;
      Status st = Status::Errno(readers[root.process]->path() + ": " + CloneError(root.pid, err), err);
      wr_owner.clear();
      go_wr.reset();
      for (int fd : HeldObjectFds(ctx)) ::close(fd);
      KillTree(plan, roots, root_status);
      return st;
    }
    if (pid == 0) {
      for (auto& fd : rd) fd.reset();
      go_wr.reset();
      std::vector<size_t> sub = plan.Subtree(r);
      for (size_t k = 0; k < n; ++k) {
        if (std::find(sub.begin(), sub.end(), k) != sub.end()) {
          (void)wr_owner[k].release();  // the child keeps its subtree's write ends
        } else {
          wr_owner[k].reset();
          ctx.report_wr[k] = -1;
        }
      }
      PreRestorerMain(ctx, r);
    }
    roots.push_back(static_cast<pid_t>(pid));
    root_status.push_back(-2);
  }
  wr_owner.clear();  // only the processes hold their status pipes now
  go_rd.reset();
  for (int fd : HeldObjectFds(ctx)) ::close(fd);

  Status st = CollectReports(readers, plan, rd, "LOADED", roots, &root_status);
  if (!st.ok()) {
    go_wr.reset();
    KillTree(plan, roots, root_status);
    return st;
  }
  const std::string go(processes, 'G');
  WriteAll(go_wr.get(), go);
  go_wr.reset();
  st = CollectReports(readers, plan, rd, "OK", roots, &root_status);
  if (!st.ok()) {
    KillTree(plan, roots, root_status);
    return st;
  }
  return roots;
}

StatusOr<pid_t> SpawnRestoredProcess(image::ImageReader& reader, const RestoreOptions& opts) {
  ASSIGN_OR_RETURN(TreePlan plan, PlanTree({TreeProcessOf(reader.metadata())}));
  std::vector<image::ImageReader*> readers = {&reader};
  ASSIGN_OR_RETURN(std::vector<pid_t> roots, RestoreTree(readers, plan, opts));
  return roots.at(0);
}

}  // namespace stasis::restore
