// The in-memory model of one process's checkpoint: everything the image holds
// except the page contents, which are streamed separately (see writer.h /
// reader.h).  Capture modules (src/state/*) fill it, the image codec
// serialises it (docs/image-format.md), and restore modules consume it.
//
// Units: addresses and sizes are bytes; times are seconds (double) or
// nanoseconds where named *_ns.  All addresses are the process's own virtual
// addresses at checkpoint time.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace stasis::image {

// One memory area (a line of /proc/<pid>/maps).
struct MemoryArea {
  enum class Kind : uint8_t {
    kAnonPrivate = 0,  // private anonymous, incl. [heap] and thread stacks
    kAnonShared = 1,   // MAP_SHARED|MAP_ANONYMOUS ("/dev/zero (deleted)")
    kFilePrivate = 2,  // MAP_PRIVATE of a file: file pages + stored COW pages
    kFileShared = 3,   // MAP_SHARED of a file: the file holds the data
    kStack = 4,        // the main thread's [stack] (VM_GROWSDOWN)
    kVdso = 5,         // [vdso]: never stored, replaced by the new kernel's
    kVvar = 6,         // [vvar], [vvar_vclock], ...: kernel data pages
  };
  uint64_t start = 0;        // inclusive, page aligned
  uint64_t end = 0;          // exclusive, page aligned
  uint32_t prot = 0;         // PROT_READ|PROT_WRITE|PROT_EXEC
  Kind kind = Kind::kAnonPrivate;
  std::string name;          // path, "[heap]", "[stack]", "[vdso]", "" ...
  uint64_t file_offset = 0;  // bytes into the file (file-backed kinds)
  // Identity of the backing file at checkpoint, checked before restart so a
  // changed library is reported instead of silently mapped.
  uint64_t file_size = 0;
  int64_t file_mtime_ns = 0;
  // Shared memory object whose contents the checkpoint saves (state/shmem.h;
  // the same id in every process that maps it), 0: none.  For such areas
  // file_offset is the offset into the object.
  uint64_t shmem_id = 0;
  // Pages of this area stored in the image.  Not serialised: the reader
  // counts them from the page blocks (ImageReader::ReadAll).
  uint64_t stored_pages = 0;
  bool is_heap() const { return name == "[heap]"; }
  uint64_t size() const { return end - start; }
};

// A queued signal, as the kernel's 128-byte siginfo_t.
struct PendingSignal {
  int32_t signo = 0;
  std::array<uint8_t, 128> siginfo{};
};

// One thread, captured while parked in the agent's checkpoint signal handler.
// Registers (incl. FPU/SSE/AVX xsave state), the signal mask and the
// alternate stack are not separate fields: they live in the kernel-built
// rt_sigframe on the thread's stack, which is part of the memory image, and
// are reloaded by rt_sigreturn(2) at restart.
struct Thread {
  int32_t tid = 0;
  std::string comm;               // /proc/<pid>/task/<tid>/comm
  uint64_t sigframe_sp = 0;       // address of the ucontext; rsp for rt_sigreturn
  uint64_t fs_base = 0;           // TLS base (arch_prctl ARCH_GET_FS)
  uint64_t gs_base = 0;
  uint64_t clear_child_tid = 0;   // prctl(PR_GET_TID_ADDRESS)
  uint64_t robust_list = 0;       // get_robust_list(2) head
  uint64_t robust_list_len = 0;
  uint64_t rseq_addr = 0;         // 0 if not registered
  uint32_t rseq_len = 0;
  uint32_t rseq_sig = 0;
  uint64_t sigmask = 0;           // informational copy of uc_sigmask
  std::vector<PendingSignal> pending;  // thread-directed pending signals
};

// rt_sigaction(2) kernel view of one signal's disposition.
struct SignalAction {
  uint64_t handler = 0;  // SIG_DFL=0, SIG_IGN=1, or an address
  uint64_t flags = 0;    // SA_*
  uint64_t restorer = 0;
  uint64_t mask = 0;
};

// A socket (socket(7), unix(7), ip(7), tcp(7)), read through a duplicate
// of the descriptor (pidfd_getfd(2)).  Addresses are raw struct sockaddr
// bytes as getsockname(2)/getpeername(2) return them (empty: none).
struct SocketInfo {
  enum class State : uint8_t {
    kUnconnected = 0,  // never connected (maybe bound)
    kListening = 1,
    kConnected = 2,    // connected to a peer (maybe the peer has closed)
  };
  int32_t family = 0;    // AF_UNIX, AF_INET, AF_INET6
  int32_t type = 0;      // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
  int32_t protocol = 0;
  State state = State::kUnconnected;
  uint64_t inode = 0;        // the "socket:[inode]" of the descriptor
  uint64_t peer_inode = 0;   // AF_UNIX: the peer's inode (sock_diag(7)); 0: none
  std::vector<uint8_t> local_addr, peer_addr;
  int32_t backlog = 0;       // listening: accept queue limit
  bool reuse_addr = false, keep_alive = false, no_delay = false;
  // shut_wr: this end sent its FIN / shut down writing; shut_rd: the peer
  // did (it closed or shut down writing: after the queue, end-of-file).
  bool shut_rd = false, shut_wr = false;
  // Unread data in the receive queue, copied without consuming it: a byte
  // stream, or one entry per message for SOCK_DGRAM/SOCK_SEQPACKET.
  std::vector<std::vector<uint8_t>> queued;
};

// State of the anon-inode kinds (src/state/{eventfd,timerfd,signalfd,epoll}.h
// say where each field comes from and how it is restored).  Only the struct
// of a descriptor's own kind is meaningful.
struct EventfdState {
  uint64_t count = 0;        // eventfd(2) counter
  bool semaphore = false;    // EFD_SEMAPHORE
};
struct TimerfdState {
  int32_t clockid = 0;       // CLOCK_REALTIME, CLOCK_MONOTONIC, ...
  uint64_t ticks = 0;        // expirations not yet read
  int32_t settime_flags = 0; // TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
  uint64_t value_ns = 0;     // time to the next expiration (0: disarmed)
  uint64_t interval_ns = 0;  // period (0: one-shot)
  int64_t clock_ns = 0;      // the timer's clock when value_ns was read
};
struct SignalfdState {
  uint64_t sigmask = 0;      // accepted signals, bit (signo - 1)
};
struct EpollTarget {
  int32_t fd = -1;           // the watched descriptor's number in this process
  uint32_t events = 0;       // epoll_event.events incl. EPOLLET, EPOLLONESHOT...
  uint64_t data = 0;         // epoll_event.data
  // The watched file is still open at `fd` (kcmp(2) KCMP_EPOLL_TFD); false
  // when `fd` was closed (a dup keeps the registration) or now names
  // another file: such a target cannot be restored.
  bool restorable = true;
};
struct EpollState {
  std::vector<EpollTarget> targets;
};

// A terminal as seen through one descriptor at checkpoint (src/state/tty.h):
// its settings (termios(3), read with TCGETS), window size (TIOCGWINSZ) and,
// if it was the process's controlling terminal, its foreground process group
// (proc(5) /proc/<pid>/stat fields 7 and 8).
struct TerminalState {
  uint32_t iflag = 0, oflag = 0, cflag = 0, lflag = 0;  // termios c_iflag ... c_lflag
  uint8_t line = 0;                 // c_line, the line discipline
  std::vector<uint8_t> cc;          // c_cc, the special characters (NCCS entries)
  uint16_t rows = 0, cols = 0;      // window size, characters
  uint16_t xpixel = 0, ypixel = 0;  // window size, pixels (often 0)
  uint64_t device = 0;              // the terminal device (TIOCGDEV), makedev(3) encoding
  bool controlling = false;         // the process's controlling terminal
  // Its foreground process group, in the job's pid namespace: > 0 a group
  // of the job, 0 a group outside the job (e.g. the launching shell's job);
  // meaningful only if `controlling`.
  int32_t foreground_pgid = 0;
};

// Bytes of a shared memory object saved through a descriptor (runs of
// non-zero pages; see state/shmem.h).
struct ShmemRun {
  uint64_t offset = 0;          // bytes into the object, page aligned
  std::vector<uint8_t> bytes;   // whole pages
};

// A regular file whose contents were copied into the checkpoint directory
// (`--save-files`, src/state/saved_files.h): one copy per file and
// checkpoint, shared by every descriptor of every process that held it.
struct SavedFile {
  std::string name;       // the copy's file name inside the checkpoint directory
  uint64_t size = 0;      // bytes of the file (holes included)
  uint64_t xxh3 = 0;      // XXH3-64 of the size bytes (holes read as zeros)
  uint32_t mode = 0600;   // permission bits (st_mode & 07777) for recreating it
  bool deleted = false;   // it had been unlinked while open
};

// One open file descriptor.
struct FileDescriptor {
  enum class Kind : uint8_t {
    kRegular = 0, kDirectory = 1, kCharDevice = 2, kTty = 3, kPipe = 4,
    kFifo = 5, kSocket = 6, kOther = 7,
    kEventfd = 8, kTimerfd = 9, kSignalfd = 10, kEpoll = 11,
  };
  int32_t fd = -1;
  Kind kind = Kind::kOther;
  int32_t flags = 0;        // open(2) flags from fdinfo: O_ACCMODE|O_APPEND|O_NONBLOCK...
  bool cloexec = false;
  uint64_t offset = 0;      // file position, bytes
  std::string path;         // readlink of /proc/<pid>/fd/<fd>
  uint64_t size = 0;        // regular files: size at checkpoint, bytes
  int64_t mtime_ns = 0;
  // Regular files: status change time at checkpoint (st_ctim), so that a
  // restart notices a file changed after it even if its mtime was reset
  // (state/written_files.h).  0: not recorded (older images).
  int64_t ctime_ns = 0;
  uint64_t rdev = 0;        // character devices
  // If this descriptor shares its open file description with stdin, stdout
  // or stderr (kcmp(2) KCMP_FILE), that stdio number; else -1.  Such
  // descriptors are connected to the restarting command's stdio.
  int32_t stdio_alias = -1;
  SocketInfo socket;        // kind == kSocket only
  // A shared memory object (memfd, /dev/shm file; state/shmem.h): its id
  // (as in MemoryArea::shmem_id), size in bytes, and the pages saved
  // through this descriptor.  0: not one.
  uint64_t shmem_id = 0;
  uint64_t shmem_size = 0;
  std::vector<ShmemRun> shmem_data;
  // Anon-inode kinds: a lower descriptor of this process that shares this
  // one's open file description (kcmp(2) KCMP_FILE), restored as a dup of
  // it; else -1.
  int32_t same_file_as = -1;
  // eventfd, timerfd, signalfd whose open file other processes of the job
  // hold too: the lowest (pid, fd) holding it, the same in every holder's
  // image, so restart creates the object once for all of them.  0: private.
  int32_t shared_pid = 0, shared_fd = -1;
  EventfdState eventfd;      // kind kEventfd
  TimerfdState timerfd;      // kind kTimerfd
  SignalfdState signalfd;    // kind kSignalfd
  EpollState epoll;          // kind kEpoll
  // Terminals (kind kTty): what the restart reapplies to the new terminal.
  // Absent if the terminal could not be read (hung up) or in older images.
  std::optional<TerminalState> terminal;
  // Regular files saved with `--save-files`: where the contents are.
  std::optional<SavedFile> saved;
};

// Kernel-maintained mm fields restored through prctl(PR_SET_MM_MAP).
struct MmLayout {
  uint64_t start_code = 0, end_code = 0, start_data = 0, end_data = 0;
  uint64_t start_brk = 0, brk = 0, start_stack = 0;
  uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
};

// The old kernel's vDSO, so restart can decide whether the new one can take
// its place unchanged or needs proxy trampolines (see src/state/vdso.h).
struct VdsoInfo {
  uint64_t vdso_start = 0, vdso_end = 0;
  std::vector<uint8_t> vdso_bytes;            // the whole old vDSO image
  struct Symbol { std::string name; uint64_t offset = 0; };
  std::vector<Symbol> symbols;                // exported functions, offset from vdso_start
};

struct ResourceLimit { uint64_t cur = 0, max = 0; };
struct IntervalTimer { uint64_t interval_us = 0, value_us = 0; };

struct Capabilities { uint64_t inheritable = 0, permitted = 0, effective = 0, bounding = 0, ambient = 0; };

// Addresses inside the agent library of the checkpointed process that the
// restorer writes to (see src/agent/control_block.h).
struct AgentInfo {
  uint64_t control_block = 0;  // address of the process's AgentControlBlock
  int32_t socket_fd = -1;      // the agent's own descriptor; never restored
  // The agent library mapped in the process (a versioned path,
  // lib/stasis/<version>/libstasis_agent.so once installed) and the Stasis
  // that wrote the image (common/version.h).  Empty in older images.
  std::string path;
  std::string stasis_version;
};

// A child that had exited but was not yet reaped (state Z) at checkpoint.
// The restorer recreates it as a zombie with the same pid so the program's
// later wait() returns it.  Source: /proc/<pid>/stat fields 4 and 52.
struct ZombieChild {
  int32_t pid = 0;
  int32_t exit_status = 0;  // raw wait(2) status (WIFEXITED/WIFSIGNALED encoding)
};

// Bytes that were in a pipe (written, not yet read) at checkpoint, copied
// without consuming them (tee(2)) through the read end this process holds.
// Every process holding a read end of the pipe records the same bytes.
struct PipeContents {
  uint64_t inode = 0;          // the "pipe:[inode]" of the descriptors
  std::vector<uint8_t> bytes;
};

struct ProcessImage {
  // Identity.
  std::string program;          // comm of the main thread, e.g. "python3"
  std::string exe;              // /proc/<pid>/exe
  std::vector<std::string> argv;
  int32_t pid = 0, ppid = 0, pgid = 0, sid = 0;  // in the job's pid namespace
                                // (pgid/sid 0: leader outside the namespace)
  std::vector<ZombieChild> zombies;  // unreaped exited children, by pid
  uint32_t uid = 0, gid = 0;
  std::string hostname;
  std::string kernel_release;   // uname -r at checkpoint
  double checkpoint_time = 0;   // seconds since the epoch
  uint64_t generation = 0;      // checkpoint number within the job
  std::string job_id;

  // Memory.
  std::vector<MemoryArea> areas;
  MmLayout mm;
  std::vector<uint64_t> auxv;   // raw /proc/<pid>/auxv as 64-bit words
  VdsoInfo vdso;

  // Threads and signals.
  std::vector<Thread> threads;  // threads[0] is the thread-group leader
  std::array<SignalAction, 64> sigactions{};  // index = signo - 1
  std::vector<PendingSignal> shared_pending;  // process-directed pending signals
  std::array<IntervalTimer, 3> itimers{};     // ITIMER_REAL, _VIRTUAL, _PROF

  // Process attributes.
  std::string cwd;
  uint32_t umask = 022;
  uint32_t personality = 0;
  std::array<ResourceLimit, 16> rlimits{};    // index = RLIMIT_*
  Capabilities caps;
  std::vector<FileDescriptor> fds;
  std::vector<PipeContents> pipes;  // one per pipe read by this process
  // The job's `--save-files` patterns at checkpoint (src/state/saved_files.h),
  // reused by a restart that gives none.
  std::vector<std::string> save_files;
  // Files mapped MAP_SHARED and writable whose contents this checkpoint
  // saved (state/written_files.h), by the path of the mapping; written back
  // before any process maps them again (the same copy as a descriptor's,
  // if one holds the file too).
  struct SavedMapping {
    std::string path;  // the area's name: the file's absolute path
    SavedFile saved;
  };
  std::vector<SavedMapping> saved_mappings;
  // Absolute paths of SQLite rollback journals ("<file>-journal") of saved
  // written files that did not exist at checkpoint: one found at restart
  // was left by the lost run and is moved aside, else SQLite would play it
  // back into the restored database (state/written_files.h).
  std::vector<std::string> absent_files;
  // What a restart will not bring back as it was, found at checkpoint time
  // (src/state/losses.h); shown by `stasis inspect`.  Absent: none.
  std::vector<std::string> warnings;

  AgentInfo agent;
};

}  // namespace stasis::image
