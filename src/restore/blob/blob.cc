// The restorer blob: finishes a restart inside the process being restored,
// after the pre-restorer (src/restore/restorer.cc) loaded every memory area
// into a slot of the restorer region.  Steps and their order: blob_args.h.
//
// Freestanding: no libc, no TLS (the old %fs area is unmapped in step 1), no
// globals (the blob is mapped read+exec), no SSE (-mgeneral-regs-only), only
// PC-relative references (checked at build time, see CMakeLists.txt), so the
// flat binary runs wherever it is copied.  The technique follows CRIU's
// restorer (criu/pie/restorer.c); the code is our own.  System calls and
// their semantics: the man pages named at each call.
#include <stddef.h>
#include <stdint.h>

#include "restore/blob/blob_args.h"

using stasis::restore::BlobArea;
using stasis::restore::BlobArgs;
using stasis::restore::BlobRange;
using stasis::restore::BlobThread;

#define HIDDEN __attribute__((visibility("hidden")))

extern "C" {
HIDDEN long blob_clone_thread(void* clone_args, uint64_t size, BlobArgs* args, long index);
[[noreturn]] HIDDEN void blob_sigreturn(uint64_t frame_sp);
[[noreturn]] HIDDEN void blob_main(BlobArgs* args);
[[noreturn]] HIDDEN void blob_thread_main(BlobArgs* args, long index);

// The compiler may emit calls to these for struct copies.
HIDDEN void* memcpy(void* d, const void* s, size_t n) {
  auto* dp = static_cast<uint8_t*>(d);
  const auto* sp = static_cast<const uint8_t*>(s);
  while (n--) *dp++ = *sp++;
  return d;
}
HIDDEN void* memset(void* d, int c, size_t n) {
  auto* dp = static_cast<uint8_t*>(d);
  while (n--) *dp++ = static_cast<uint8_t>(c);
  return d;
}
}

namespace {

// x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
enum : long {
  kSysWrite = 1, kSysClose = 3, kSysMmap = 9, kSysMprotect = 10, kSysMunmap = 11,
  kSysRtSigaction = 13, kSysRtSigprocmask = 14, kSysSchedYield = 24, kSysMremap = 25,
  kSysSetitimer = 38, kSysGetpid = 39, kSysCapset = 126, kSysRtSigqueueinfo = 129,
  kSysPrctl = 157, kSysArchPrctl = 158, kSysSetTidAddress = 218, kSysExitGroup = 231,
  kSysSetRobustList = 273, kSysRtTgsigqueueinfo = 297, kSysRseq = 334,
};
constexpr long kProtRead = 1, kProtWrite = 2;
constexpr long kMapPrivate = 0x02, kMapFixed = 0x10, kMapAnonymous = 0x20, kMapGrowsdown = 0x100;
constexpr long kMremapMaymove = 1, kMremapFixed = 2;
constexpr long kArchSetGs = 0x1001, kArchSetFs = 0x1002;
constexpr long kPrSetName = 15, kPrSetMm = 35, kPrSetMmMap = 14;
constexpr uint64_t kCloneFlags = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000;
// CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM
constexpr uint64_t kPage = 4096;
constexpr uint64_t kLowest = 0x10000, kHighest = 0x7ffffffff000ull;

inline long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  long ret;
  register long r10 asm("r10") = d;
  register long r8 asm("r8") = e;
  register long r9 asm("r9") = f;
  asm volatile("syscall"
               : "=a"(ret)
               : "0"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return ret;
}

long Len(const char* s) {
  long n = 0;
  while (s[n]) ++n;
  return n;
}

void Put(char* buf, long* n, const char* s) {
  while (*s && *n < 250) buf[(*n)++] = *s++;
}
void PutNum(char* buf, long* n, long v) {
  char tmp[24];
  int k = 0;
  bool neg = v < 0;
  unsigned long u = neg ? 0ul - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
  do {
    tmp[k++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u);
  if (neg) tmp[k++] = '-';
  while (k && *n < 250) buf[(*n)++] = tmp[--k];
}

// Reports "stasis restorer: step N: what (err)" on report_fd and stderr and
// ends the whole process with status 70+step.
[[noreturn]] void Fail(const BlobArgs* a, int step, const char* what, long err) {
  char buf[256];
  long n = 0;
  Put(buf, &n, "stasis restorer: step ");
  PutNum(buf, &n, step);
  Put(buf, &n, ": ");
  Put(buf, &n, what);
  Put(buf, &n, " (");
  PutNum(buf, &n, err);
  Put(buf, &n, ")\n");
  if (a->report_fd >= 0) Sys(kSysWrite, a->report_fd, reinterpret_cast<long>(buf), n);
  if (a->report_fd != 2) Sys(kSysWrite, 2, reinterpret_cast<long>(buf), n);
  for (;;) Sys(kSysExitGroup, 70 + step);
}

inline bool IsErr(long r) { return r < 0 && r > -4096; }

// Step 1: munmap everything in [kLowest, kHighest) outside the keep ranges.
void UnmapOthers(BlobArgs* a) {
  BlobRange keep[stasis::restore::kBlobMaxVdsoAreas + 1];
  int n = 0;
  keep[n++] = a->region;
  for (int i = 0; i < a->n_vdso && i < stasis::restore::kBlobMaxVdsoAreas; ++i) keep[n++] = a->vdso_current[i];
  for (int i = 1; i < n; ++i) {  // insertion sort by start
    BlobRange r = keep[i];
    int j = i - 1;
    while (j >= 0 && keep[j].start > r.start) {
      keep[j + 1] = keep[j];
      --j;
    }
    keep[j + 1] = r;
  }
  uint64_t cur = kLowest;
  for (int i = 0; i <= n; ++i) {
    uint64_t next = i < n ? keep[i].start : kHighest;
    if (next > cur) {
      long r = Sys(kSysMunmap, static_cast<long>(cur), static_cast<long>(next - cur));
      if (IsErr(r)) Fail(a, 1, "munmap", r);
    }
    if (i < n && keep[i].start + keep[i].len > cur) cur = keep[i].start + keep[i].len;
  }
}

long Mremap(uint64_t from, uint64_t len, uint64_t to) {
  return Sys(kSysMremap, static_cast<long>(from), static_cast<long>(len), static_cast<long>(len),
             kMremapMaymove | kMremapFixed, static_cast<long>(to));
}

// Step 2: move the kernel's vDSO/vvar group by vdso_delta, via vdso_scratch
// so that overlapping source and destination ranges are no problem.
void MoveVdso(BlobArgs* a) {
  if (a->vdso_delta == 0 || a->n_vdso == 0) return;
  uint64_t base = a->vdso_current[0].start;
  for (int i = 1; i < a->n_vdso; ++i)
    if (a->vdso_current[i].start < base) base = a->vdso_current[i].start;
  for (int i = 0; i < a->n_vdso; ++i) {
    const BlobRange& r = a->vdso_current[i];
    long ret = Mremap(r.start, r.len, a->vdso_scratch + (r.start - base));
    if (IsErr(ret)) Fail(a, 2, "mremap vdso to scratch", ret);
  }
  for (int i = 0; i < a->n_vdso; ++i) {
    const BlobRange& r = a->vdso_current[i];
    long ret = Mremap(a->vdso_scratch + (r.start - base), r.len, r.start + a->vdso_delta);
    if (IsErr(ret)) Fail(a, 2, "mremap vdso to its final place", ret);
  }
}

bool ZeroPage(const uint64_t* p) {
  for (uint64_t i = 0; i < kPage / 8; ++i)
    if (p[i]) return false;
  return true;
}

// Step 3: every slot to its final address.
void PlaceAreas(BlobArgs* a) {
  for (int i = 0; i < a->n_areas; ++i) {
    const BlobArea& ar = a->areas[i];
    if (ar.flags & stasis::restore::kBlobAreaGrowsDown) {
      // mremap would lose VM_GROWSDOWN: build a fresh growsdown mapping and
      // copy the non-zero pages into it (mmap(2) MAP_GROWSDOWN).
      long r = Sys(kSysMmap, static_cast<long>(ar.start), static_cast<long>(ar.len), kProtRead | kProtWrite,
                   kMapFixed | kMapPrivate | kMapAnonymous | kMapGrowsdown, -1, 0);
      if (IsErr(r)) Fail(a, 3, "mmap growsdown stack", r);
      for (uint64_t off = 0; off < ar.len; off += kPage) {
        const auto* src = reinterpret_cast<const uint64_t*>(ar.slot + off);
        if (ZeroPage(src)) continue;
        auto* dst = reinterpret_cast<uint64_t*>(ar.start + off);
        for (uint64_t k = 0; k < kPage / 8; ++k) dst[k] = src[k];
      }
      r = Sys(kSysMunmap, static_cast<long>(ar.slot), static_cast<long>(ar.len));
      if (IsErr(r)) Fail(a, 3, "munmap stack slot", r);
    } else {
      long r = Mremap(ar.slot, ar.len, ar.start);
      if (IsErr(r)) Fail(a, 3, "mremap slot into place", r);
    }
    long r = Sys(kSysMprotect, static_cast<long>(ar.start), static_cast<long>(ar.len), ar.prot);
    if (IsErr(r)) Fail(a, 3, "mprotect", r);
  }
}

struct PrctlMmMap {  // struct prctl_mm_map, linux/prctl.h
  uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
  uint64_t arg_start, arg_end, env_start, env_end;
  uint64_t auxv;
  uint32_t auxv_size;
  uint32_t exe_fd;
};

// Step 4: mm layout, signal dispositions, timers, process-directed signals.
void ProcessState(BlobArgs* a) {
  if (a->mm_valid) {
    PrctlMmMap m;
    m.start_code = a->mm.start_code;
    m.end_code = a->mm.end_code;
    m.start_data = a->mm.start_data;
    m.end_data = a->mm.end_data;
    m.start_brk = a->mm.start_brk;
    m.brk = a->mm.brk;
    m.start_stack = a->mm.start_stack;
    m.arg_start = a->mm.arg_start;
    m.arg_end = a->mm.arg_end;
    m.env_start = a->mm.env_start;
    m.env_end = a->mm.env_end;
    m.auxv = reinterpret_cast<uint64_t>(&a->mm.auxv[0]);
    m.auxv_size = a->mm.auxv_size;
    m.exe_fd = static_cast<uint32_t>(a->mm.exe_fd);
    // Failure is not fatal: only /proc/<pid>/stat, brk(2) and /proc/self/exe
    // are affected; it is recorded for debugging.
    a->debug_mm_result = Sys(kSysPrctl, kPrSetMm, kPrSetMmMap, reinterpret_cast<long>(&m), sizeof m, 0);
  }
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == 9 || sig == 19) continue;  // SIGKILL, SIGSTOP
    long r = Sys(kSysRtSigaction, sig, reinterpret_cast<long>(&a->sigactions[sig - 1]), 0, 8);
    if (IsErr(r)) Fail(a, 4, "rt_sigaction", r);
  }
  for (int w = 0; w < 3; ++w) {
    struct { int64_t is, ius, vs, vus; } it = {
        static_cast<int64_t>(a->itimers[w].interval_us / 1000000),
        static_cast<int64_t>(a->itimers[w].interval_us % 1000000),
        static_cast<int64_t>(a->itimers[w].value_us / 1000000),
        static_cast<int64_t>(a->itimers[w].value_us % 1000000)};
    long r = Sys(kSysSetitimer, w, reinterpret_cast<long>(&it), 0);
    if (IsErr(r)) Fail(a, 4, "setitimer", r);
  }
  for (int i = 0; i < a->n_shared_pending; ++i) {
    // rt_sigqueueinfo(2) with any si_code is allowed when sending to oneself.
    long r = Sys(kSysRtSigqueueinfo, a->pid, a->shared_pending[i].signo,
                 reinterpret_cast<long>(a->shared_pending[i].siginfo));
    if (IsErr(r)) Fail(a, 4, "rt_sigqueueinfo", r);
  }
}

// Step 7, per thread (except the thread-directed signals, see blob_main).
void SetupThread(BlobArgs* a, const BlobThread& t) {
  long r = Sys(kSysArchPrctl, kArchSetFs, static_cast<long>(t.fs_base));
  if (IsErr(r)) Fail(a, 7, "arch_prctl(ARCH_SET_FS)", r);
  if (t.gs_base) {
    r = Sys(kSysArchPrctl, kArchSetGs, static_cast<long>(t.gs_base));
    if (IsErr(r)) Fail(a, 7, "arch_prctl(ARCH_SET_GS)", r);
  }
  Sys(kSysSetTidAddress, static_cast<long>(t.clear_child_tid));
  if (t.robust_list) {
    r = Sys(kSysSetRobustList, static_cast<long>(t.robust_list), static_cast<long>(t.robust_list_len));
    if (IsErr(r)) __atomic_add_fetch(&a->debug_robust_failures, 1, __ATOMIC_RELAXED);
  }
  if (t.rseq_addr) {
    r = Sys(kSysRseq, static_cast<long>(t.rseq_addr), t.rseq_len, 0, t.rseq_sig);
    if (IsErr(r)) __atomic_add_fetch(&a->debug_rseq_failures, 1, __ATOMIC_RELAXED);
  }
  char name[16];
  for (int i = 0; i < 15; ++i) name[i] = t.comm[i];
  name[15] = 0;
  if (name[0]) Sys(kSysPrctl, kPrSetName, reinterpret_cast<long>(name));
  // Thread-directed pending signals, each queued by its own thread: the
  // kernel accepts a kernel/user si_code from rt_tgsigqueueinfo(2) only when
  // the caller's tid is the target tid (kernel/signal.c,
  // do_rt_tgsigqueueinfo).  All signals stay blocked until rt_sigreturn
  // restores this thread's mask, so they remain pending until then.
  for (int k = 0; k < t.n_pending && k < stasis::agent::kMaxPendingPerThread; ++k) {
    r = Sys(kSysRtTgsigqueueinfo, a->pid, t.tid, t.pending[k].signo,
            reinterpret_cast<long>(t.pending[k].siginfo));
    if (IsErr(r)) Fail(a, 7, "rt_tgsigqueueinfo", r);
  }
  struct { uint32_t version; int32_t pid; } hdr = {0x20080522, 0};  // _LINUX_CAPABILITY_VERSION_3
  struct { uint32_t eff, perm, inh; } data[2] = {
      {static_cast<uint32_t>(a->caps_effective), static_cast<uint32_t>(a->caps_permitted),
       static_cast<uint32_t>(a->caps_inheritable)},
      {static_cast<uint32_t>(a->caps_effective >> 32), static_cast<uint32_t>(a->caps_permitted >> 32),
       static_cast<uint32_t>(a->caps_inheritable >> 32)}};
  r = Sys(kSysCapset, reinterpret_cast<long>(&hdr), reinterpret_cast<long>(data));
  if (IsErr(r)) Fail(a, 7, "capset", r);
}

// Step 5b: find the agent's restart trampoline in the restored memory and
// reset its arrival counter (the image holds the count of the last restart).
void PrepareTrampoline(BlobArgs* a) {
  a->trampoline = 0;
  if (!a->control_block) return;
  using stasis::agent::ControlBlock;
  auto* cb = reinterpret_cast<volatile ControlBlock*>(a->control_block);
  if (cb->magic != stasis::agent::kControlBlockMagic || cb->version < 2) return;
  cb->threads_returned = 0;
  a->trampoline = cb->restart_trampoline;
}

// Last step of every thread: rt_sigreturn into its saved frame, through the
// agent's trampoline when there is one (see control_block.h).
[[noreturn]] void ReturnToProgram(BlobArgs* a, const BlobThread& t) {
  if (a->trampoline) {
    using stasis::agent::ControlBlock;
    auto* cb = reinterpret_cast<ControlBlock*>(a->control_block);
    using Trampoline = void (*)(uint64_t, uint32_t*, uint64_t, uint64_t*);
    reinterpret_cast<Trampoline>(a->trampoline)(t.sigframe_sp, &cb->threads_returned,
                                                static_cast<uint64_t>(a->n_threads),
                                                &cb->restart.restorer_start);
  }
  blob_sigreturn(t.sigframe_sp);
}

}  // namespace

extern "C" void blob_thread_main(BlobArgs* a, long index) {
  const BlobThread& t = a->threads[index];
  SetupThread(a, t);
  __atomic_add_fetch(&a->threads_started, 1, __ATOMIC_SEQ_CST);
  ReturnToProgram(a, t);
}

extern "C" void blob_main(BlobArgs* a) {
  uint64_t all = ~0ull;
  Sys(kSysRtSigprocmask, 2 /*SIG_SETMASK*/, reinterpret_cast<long>(&all), 0, 8);
  if (a->magic != stasis::restore::kBlobArgsMagic) {
    const char msg[] = "stasis restorer: bad blob arguments\n";
    Sys(kSysWrite, 2, reinterpret_cast<long>(msg), Len(msg));
    for (;;) Sys(kSysExitGroup, 70);
  }
  UnmapOthers(a);
  MoveVdso(a);
  PlaceAreas(a);
  ProcessState(a);

  // Step 5: tell the agent it was restarted (agent/control_block.h).
  if (a->control_block) {
    auto* dst = reinterpret_cast<uint8_t*>(a->control_block + offsetof(stasis::agent::ControlBlock, restart));
    const auto* src = reinterpret_cast<const uint8_t*>(&a->restart_info);
    for (size_t i = 0; i < sizeof(a->restart_info); ++i) dst[i] = src[i];
  }
  PrepareTrampoline(a);
  for (int i = 0; i < a->n_fds_to_close && i < 4; ++i)
    if (a->fds_to_close[i] >= 0) Sys(kSysClose, a->fds_to_close[i]);

  // The leader's name first: a restored thread (the agent's) may read
  // /proc/self/comm as soon as it runs.
  {
    char name[16] = {};
    for (int i = 0; i < 15; ++i) name[i] = a->threads[0].comm[i];
    if (name[0]) Sys(kSysPrctl, kPrSetName, reinterpret_cast<long>(name));
  }

  // Step 6: the other threads, each with its old tid (clone3(2) set_tid).
  a->threads_started = 0;
  for (int i = 1; i < a->n_threads; ++i) {
    BlobThread& t = a->threads[i];
    struct {
      uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
          set_tid_size, cgroup;
    } ca = {kCloneFlags, 0, 0, 0, 0, t.stack_top - stasis::restore::kBlobThreadStackSize,
            stasis::restore::kBlobThreadStackSize, 0, reinterpret_cast<uint64_t>(&t.tid), 1, 0};
    long r = blob_clone_thread(&ca, sizeof ca, a, i);
    if (IsErr(r)) Fail(a, 6, "clone3", r);
    if (r != t.tid) Fail(a, 6, "clone3 returned a different tid", r);
  }
  // Wait until every thread is past its setup: after that only the leader
  // still uses the report fd.
  while (__atomic_load_n(&a->threads_started, __ATOMIC_SEQ_CST) < a->n_threads - 1) Sys(kSysSchedYield);
  SetupThread(a, a->threads[0]);  // capset last: clone3 set_tid needed the capability
  if (a->report_fd >= 0) Sys(kSysClose, a->report_fd);
  ReturnToProgram(a, a->threads[0]);
}
