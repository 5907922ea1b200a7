#include "cli/slurm.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace stasis::cli::slurm {
namespace {

// Runs argv (searched in PATH), returns its stdout; `*code` gets the exit code.
StatusOr<std::string> Capture(const std::vector<std::string>& args, int* code) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::Errno("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int err = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (err != 0) {
    close(fds[0]);
    return Status::Error(fmt::format("cannot run {}: {}", args[0], strerror(err)));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return out;
}

bool ParseUint(const std::string& s, long* out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  *out = std::strtol(s.c_str(), nullptr, 10);
  return true;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

}  // namespace

StatusOr<double> ParseDuration(const std::string& text) {
  const Status bad = Status::Error(
      "'" + text + "': not a Slurm time (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or N with s/m/h)");
  std::string t = Trim(text);
  if (t.empty()) return bad;
  long v = 0;
  if (t.size() > 1 && (t.back() == 's' || t.back() == 'm' || t.back() == 'h')) {
    if (!ParseUint(t.substr(0, t.size() - 1), &v)) return bad;
    return static_cast<double>(v) * (t.back() == 's' ? 1 : t.back() == 'm' ? 60 : 3600);
  }
  long days = 0;
  bool has_days = false;
  if (size_t dash = t.find('-'); dash != std::string::npos) {
    if (!ParseUint(t.substr(0, dash), &days)) return bad;
    has_days = true;
    t = t.substr(dash + 1);
  }
  std::vector<long> parts;
  size_t start = 0;
  for (;;) {
    size_t colon = t.find(':', start);
    if (!ParseUint(t.substr(start, colon == std::string::npos ? std::string::npos : colon - start), &v)) return bad;
    parts.push_back(v);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() > 3) return bad;
  long h = 0, m = 0, s = 0;
  if (has_days) {  // D-H, D-H:M, D-H:M:S
    h = parts[0];
    if (parts.size() > 1) m = parts[1];
    if (parts.size() > 2) s = parts[2];
  } else if (parts.size() == 1) {  // M
    m = parts[0];
  } else if (parts.size() == 2) {  // M:S
    m = parts[0];
    s = parts[1];
  } else {  // H:M:S
    h = parts[0];
    m = parts[1];
    s = parts[2];
  }
  return static_cast<double>(((days * 24 + h) * 60 + m) * 60 + s);
}

StatusOr<std::time_t> JobEndTime(const std::string& job_id) {
  int code = 0;
  ASSIGN_OR_RETURN(std::string out, Capture({"squeue", "-h", "-j", job_id, "-o", "%e"}, &code));
  out = Trim(out);
  if (code != 0) return Status::Error(fmt::format("squeue -j {} failed (exit code {})", job_id, code));
  struct tm tm {};
  const char* end = strptime(out.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr || *end != '\0') {
    return Status::Error(fmt::format("Slurm job {} has no end time (squeue says '{}')", job_id, out));
  }
  tm.tm_isdst = -1;
  std::time_t t = mktime(&tm);
  if (t == static_cast<std::time_t>(-1)) return Status::Error("bad end time '" + out + "'");
  return t;
}

Status Requeue(const std::string& job_id) {
  int code = 0;
  ASSIGN_OR_RETURN(std::string out, Capture({"scontrol", "requeue", job_id}, &code));
  if (code != 0) return Status::Error(fmt::format("scontrol requeue {} failed (exit code {})", job_id, code));
  return Status::Ok();
}

std::string EnvOrUnset(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : "unset";
}

}  // namespace stasis::cli::slurm
