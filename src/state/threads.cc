// Threads: converting the agent's ThreadRecords into image::Thread and back
// into the blob's BlobThread.  See threads.h for the technique.
#include "state/threads.h"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>

namespace stasis::state {
namespace {

// Tids listed in /proc/<pid>/task (proc(5)).
StatusOr<std::set<int32_t>> ListTasks(const ProcTarget& target) {
  std::string dir = target.ProcPath("task");
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Status::Errno("pid " + std::to_string(target.pid) + ": opendir " + dir);
  std::set<int32_t> tids;
  while (struct dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long tid = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && tid > 0) tids.insert(static_cast<int32_t>(tid));
  }
  ::closedir(d);
  return tids;
}

}  // namespace

StatusOr<std::vector<image::Thread>> CaptureThreads(const ProcTarget& target,
                                                    const agent::ControlBlock& cb) {
  const std::string who = "pid " + std::to_string(target.pid);
  if (cb.n_threads < 1 || cb.n_threads > agent::kMaxThreads) {
    return Status::Error(who + ": agent control block lists " + std::to_string(cb.n_threads) +
                         " threads (expected 1.." + std::to_string(agent::kMaxThreads) + ")");
  }
  if (cb.threads[0].tid != target.pid) {
    return Status::Error(who + ": agent control block's first thread is " +
                         std::to_string(cb.threads[0].tid) + ", not the thread-group leader");
  }
  // Every live thread must have parked and recorded itself: a thread missing
  // from the records would silently vanish at restart.
  ASSIGN_OR_RETURN(std::set<int32_t> tasks, ListTasks(target));
  std::set<int32_t> recorded;
  std::vector<image::Thread> out;
  out.reserve(static_cast<size_t>(cb.n_threads));
  for (int i = 0; i < cb.n_threads; ++i) {
    const agent::ThreadRecord& r = cb.threads[i];
    if (!recorded.insert(r.tid).second) {
      return Status::Error(who + ": thread " + std::to_string(r.tid) +
                           " is recorded twice in the agent control block");
    }
    if (tasks.count(r.tid) == 0) {
      return Status::Error(who + ": thread " + std::to_string(r.tid) +
                           " is recorded by the agent but no longer exists");
    }
    if (r.n_pending < 0 || r.n_pending > agent::kMaxPendingPerThread) {
      return Status::Error(who + ": thread " + std::to_string(r.tid) + ": bad pending-signal count " +
                           std::to_string(r.n_pending));
    }
    if (r.sigframe_sp == 0) {
      return Status::Error(who + ": thread " + std::to_string(r.tid) +
                           " has no saved signal frame (did not park in the checkpoint handler)");
    }
    image::Thread t;
    t.tid = r.tid;
    auto comm = ReadProcFile(target.ProcPath("task/" + std::to_string(r.tid) + "/comm"));
    if (!comm.ok()) return comm.status().With(who + ": thread " + std::to_string(r.tid));
    t.comm = std::move(comm).value();
    while (!t.comm.empty() && t.comm.back() == '\n') t.comm.pop_back();
    t.sigframe_sp = r.sigframe_sp;
    t.fs_base = r.fs_base;
    t.gs_base = r.gs_base;
    t.clear_child_tid = r.clear_child_tid;
    t.robust_list = r.robust_list;
    t.robust_list_len = r.robust_list_len;
    t.rseq_addr = r.rseq_addr;
    t.rseq_len = r.rseq_len;
    t.rseq_sig = r.rseq_sig;
    t.sigmask = r.sigmask;
    for (int k = 0; k < r.n_pending; ++k) {
      image::PendingSignal p;
      p.signo = r.pending[k].signo;
      std::memcpy(p.siginfo.data(), r.pending[k].siginfo, p.siginfo.size());
      t.pending.push_back(p);
    }
    out.push_back(std::move(t));
  }
  for (int32_t tid : tasks) {
    if (recorded.count(tid) == 0) {
      return Status::Error(who + ": thread " + std::to_string(tid) +
                           " did not park for the checkpoint (not in the agent control block)");
    }
  }
  return out;
}

Status PrepareThreads(const image::ProcessImage& img, restore::BlobArgs* args) {
  const size_t n = img.threads.size();
  if (n == 0) return Status::Error("image has no threads");
  if (n > static_cast<size_t>(restore::kBlobMaxThreads)) {
    return Status::Error("image has " + std::to_string(n) + " threads; at most " +
                         std::to_string(restore::kBlobMaxThreads) + " can be restored");
  }
  if (img.threads[0].tid != img.pid) {
    return Status::Error("image's first thread " + std::to_string(img.threads[0].tid) +
                         " is not the leader (pid " + std::to_string(img.pid) + ")");
  }
  for (size_t i = 0; i < n; ++i) {
    const image::Thread& t = img.threads[i];
    if (t.pending.size() > static_cast<size_t>(agent::kMaxPendingPerThread)) {
      return Status::Error("thread " + std::to_string(t.tid) + " has " +
                           std::to_string(t.pending.size()) + " pending signals; at most " +
                           std::to_string(agent::kMaxPendingPerThread) + " are supported");
    }
    restore::BlobThread& b = args->threads[i];
    uint64_t stack_top = b.stack_top;  // owned by the caller
    std::memset(&b, 0, sizeof b);
    b.stack_top = stack_top;
    b.tid = t.tid;
    b.n_pending = static_cast<int32_t>(t.pending.size());
    b.sigframe_sp = t.sigframe_sp;
    b.fs_base = t.fs_base;
    b.gs_base = t.gs_base;
    b.clear_child_tid = t.clear_child_tid;
    b.robust_list = t.robust_list;
    b.robust_list_len = t.robust_list_len;
    b.rseq_addr = t.rseq_addr;
    b.rseq_len = t.rseq_len;
    b.rseq_sig = t.rseq_sig;
    // comm is at most 15 characters plus NUL (prctl(2) PR_SET_NAME).
    std::strncpy(b.comm, t.comm.c_str(), sizeof b.comm - 1);
    for (size_t k = 0; k < t.pending.size(); ++k) {
      b.pending[k].signo = t.pending[k].signo;
      std::memcpy(b.pending[k].siginfo, t.pending[k].siginfo.data(), sizeof b.pending[k].siginfo);
    }
  }
  args->n_threads = static_cast<int32_t>(n);
  return Status::Ok();
}

}  // namespace stasis::state
