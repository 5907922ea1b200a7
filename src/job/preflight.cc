#include "job/preflight.h"

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace stasis::job {
namespace {

std::string ReadSmall(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string ReadLink(const std::string& path) {
  char buf[4096];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

// Numeric entries of a /proc directory.
std::vector<long> Numbers(const std::string& dir) {
  std::vector<long> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    char* end = nullptr;
    long v = strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0') out.push_back(v);
  }
  closedir(d);
  return out;
}

}  // namespace

bool ParseTaskStat(const std::string& line, char* state, unsigned long* flags) {
  // "pid (comm) S ppid pgrp session tty_nr tpgid flags ...": comm may hold ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  std::istringstream in(line.substr(close + 2));
  std::string st;
  long ppid, pgrp, session, tty, tpgid;
  unsigned long f;
  if (!(in >> st >> ppid >> pgrp >> session >> tty >> tpgid >> f) || st.size() != 1) return false;
  *state = st[0];
  *flags = f;
  return true;
}

std::string DescribeProcess(pid_t pid) {
  std::string program = ReadLink(fmt::format("/proc/{}/exe", pid));
  if (program.empty()) program = Trim(ReadSmall(fmt::format("/proc/{}/comm", pid)));
  return fmt::format("pid {} ({})", pid, program.empty() ? "?" : program);
}

namespace {

struct Finding {
  std::string message;
  bool transient = false;  // a vfork parent: may be gone in a moment
};

std::vector<Finding> Scan(pid_t self) {
  std::vector<Finding> out;
  for (long pid : Numbers("/proc")) {
    if (pid <= 1 || pid == self) continue;
    const std::string base = fmt::format("/proc/{}", pid);
    char state = 0;
    unsigned long flags = 0;
    if (!ParseTaskStat(ReadSmall(base + "/stat"), &state, &flags) || state == 'Z' || state == 'X')
      continue;
    for (long fd : Numbers(base + "/fd")) {
      if (ReadLink(fmt::format("{}/fd/{}", base, fd)) == "anon_inode:[io_uring]") {
        out.push_back({fmt::format("{} uses io_uring (descriptor {}), which cannot be checkpointed yet",
                                   DescribeProcess(static_cast<pid_t>(pid)), fd)});
        break;
      }
    }
    for (long tid : Numbers(base + "/task")) {
      const std::string task = fmt::format("{}/task/{}", base, tid);
      if (!ParseTaskStat(ReadSmall(task + "/stat"), &state, &flags)) continue;
      if (flags & kPfIoWorker) continue;  // never signalled (agent); the io_uring check names it
      const std::string comm = Trim(ReadSmall(task + "/comm"));
      if (state == 't') {
        out.push_back({fmt::format("{}: thread {} ({}) is stopped by a tracer (ptrace) and cannot "
                                   "reach the checkpoint handler",
                                   DescribeProcess(static_cast<pid_t>(pid)), tid, comm)});
      } else if (state == 'D') {
        const std::string wchan = Trim(ReadSmall(task + "/wchan"));
        if (wchan == "kernel_clone" || wchan.find("vfork") != std::string::npos) {
          out.push_back({fmt::format("{}: thread {} ({}) is a vfork(2) parent, suspended until its "
                                     "child execs or exits; it cannot be checkpointed until then",
                                     DescribeProcess(static_cast<pid_t>(pid)), tid, comm),
                         true});
        }
      }
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> QuiescePreflight(pid_t self, double vfork_grace) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(vfork_grace);
  for (;;) {
    std::vector<Finding> found = Scan(self);
    bool all_transient = !found.empty();
    for (const Finding& f : found) all_transient = all_transient && f.transient;
    if (!all_transient || std::chrono::steady_clock::now() >= deadline) {
      std::vector<std::string> out;
      for (Finding& f : found) out.push_back(std::move(f.message));
      return out;
    }
    usleep(20 * 1000);
  }
}

}  // namespace stasis::job
