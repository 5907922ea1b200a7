#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/cli.h"
#include "common/version.h"
#include "coordinator/protocol.h"
#include "job/runtime_dir.h"
#include "state/written_files.h"

namespace stasis::cli {

namespace fs = std::filesystem;
using coordinator::Client;

void AddGlobalOptions(CLI::App& app, GlobalOptions& g, bool with_env) {
  auto* host = app.add_option("--coord-host", g.coord_host, "Host of the coordinator (env STASIS_COORD_HOST)")
                   ->capture_default_str();
  auto* port = app.add_option("-p,--coord-port", g.coord_port,
                              "TCP port of the coordinator (env STASIS_COORD_PORT; 0 = any free port when "
                              "starting one)")
                   ->check(CLI::Range(0, 65535))
                   ->capture_default_str();
  if (with_env) {
    host->envname(coordinator::kHostEnv);
    port->envname(coordinator::kPortEnv);
  }
  app.add_flag("-q,--quiet", g.quiet, "Print only errors");
  app.add_flag("--verbose", g.verbose, "Print progress details");
}

void PrintError(const std::string& cmd, const std::string& message) {
  std::cerr << "stasis " << cmd << ": " << message << std::endl;
}

std::string OwnExe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("stasis") : p.string();
}

std::optional<std::string> FindProgram(const std::string& program) {
  auto usable = [](const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
  };
  if (program.empty()) return std::nullopt;
  if (program.find('/') != std::string::npos) {
    if (!usable(program)) return std::nullopt;
    return fs::absolute(program).lexically_normal().string();
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  for (;;) {
    size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (dir.empty()) dir = ".";
    fs::path cand = fs::path(dir) / program;
    if (usable(cand)) return fs::absolute(cand).lexically_normal().string();
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return std::nullopt;
}

StatusOr<std::string> FindAgentLib() {
  if (const char* env = std::getenv("STASIS_AGENT_LIB"); env && *env) {
    std::error_code ec;
    if (!fs::is_regular_file(env, ec)) {
      return Status::Error("STASIS_AGENT_LIB=" + std::string(env) + ": no such file");
    }
    return fs::absolute(env).string();
  }
  // Installed: <prefix>/bin/stasis and <prefix>/lib/stasis/<version>/ (a
  // directory per version, so that installing another version keeps the
  // agent older checkpoints map).  Build tree: build/bin and build/lib.
  const fs::path dir = fs::path(OwnExe()).parent_path();
  const fs::path candidates[] = {dir / ".." / StasisAgentInstallDir() / "libstasis_agent.so",
                                 dir / "../lib/libstasis_agent.so"};
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return c.lexically_normal().string();
  }
  return Status::Error("cannot find the agent library libstasis_agent.so (looked in " +
                       candidates[0].lexically_normal().string() + " and " +
                       candidates[1].lexically_normal().string() + "); set STASIS_AGENT_LIB to its path");
}

StatusOr<std::string> PrepareCkptDir(const std::string& dir) {
  std::error_code ec;
  fs::path abs = fs::absolute(dir, ec).lexically_normal();
  if (ec) return Status::Error("--ckptdir " + dir + ": " + ec.message());
  std::string s = abs.string();
  if (s.size() > 1 && s.back() == '/') s.pop_back();
  fs::create_directories(abs, ec);
  if (ec) return Status::Error("--ckptdir " + dir + ": cannot create (" + ec.message() + ")");
  if (!fs::is_directory(abs, ec)) return Status::Error("--ckptdir " + dir + ": not a directory");
  if (::access(s.c_str(), W_OK | X_OK) != 0) {
    return Status::Error("--ckptdir " + dir + ": not writable (" + std::strerror(errno) + ")");
  }
  return s;
}

std::string LocalTime(double epoch) {
  // From a manifest or a reply: out of time_t's range the cast is undefined.
  if (!(epoch >= 0 && epoch < 253402300800.0)) return "(invalid time)";  // year 10000
  time_t t = static_cast<time_t>(epoch);
  struct tm tm;
  localtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm);
  return buf;
}

std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

namespace {

std::string Where(const GlobalOptions& g) { return g.coord_host + ":" + std::to_string(g.coord_port); }

bool IsLocalHost(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// Starts `stasis coordinator --daemon --exit-on-last ...` and waits until
// it listens (the daemon's parent exits only then).  Returns the port.
StatusOr<int> SpawnCoordinator(const GlobalOptions& g, const CoordinatorSpawn& spawn) {
  std::vector<std::string> args = {OwnExe(), "coordinator", "--daemon", "--exit-on-last",
                                   "--coord-host", g.coord_host, "--coord-port", std::to_string(g.coord_port),
                                   "--ckptdir", spawn.ckptdir, "--keep", std::to_string(spawn.keep),
                                   "--compress", spawn.compression};
  if (spawn.interval) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", *spawn.interval);
    args.insert(args.end(), {"--interval", buf});
  }
  if (const char* log = std::getenv("STASIS_COORD_LOG"); log && *log) args.insert(args.end(), {"--log", log});
  std::string port_file;
  if (g.coord_port == 0) {
    // In the private runtime directory: in /tmp another user could plant
    // "<port file>.tmp" and make the coordinator fail to write it.
    ASSIGN_OR_RETURN(std::string base, job::RuntimeBaseDir());
    std::string tmpl = base + "/port-XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) return Status::Errno("mkstemp " + tmpl);
    ::close(fd);
    port_file = tmpl;
    args.insert(args.end(), {"--port-file", port_file});
  }
  if (g.verbose) std::cerr << "stasis: starting a coordinator at " << Where(g) << std::endl;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return Status::Errno("fork");
  if (pid == 0) {
    ::execv(argv[0], argv.data());
    std::perror(argv[0]);
    ::_exit(127);
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  int port = g.coord_port;
  if (!port_file.empty()) {
    std::ifstream in(port_file);
    in >> port;
    ::unlink(port_file.c_str());
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    // Maybe another `stasis launch` won the race for the port: the caller
    // tries to connect again before giving up.
    return Status::Error("could not start a coordinator at " + Where(g) + " (see the message above)");
  }
  return port;
}

}  // namespace

StatusOr<std::unique_ptr<Client>> ConnectToCoordinator(const GlobalOptions& g) {
  Client::Failure failure;
  auto c = Client::Connect(g.coord_host, static_cast<uint16_t>(g.coord_port), 5, &failure);
  // A coordinator under a connection flood drops connections that have not
  // said hello yet (coordinator/flood.cc): ours may be one if it was slow to
  // speak.  Try again for a few seconds before giving up.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!c.ok() && failure == Client::Failure::kNotCoordinator && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    c = Client::Connect(g.coord_host, static_cast<uint16_t>(g.coord_port), 5, &failure);
  }
  if (c.ok()) return c;
  if (failure == Client::Failure::kNoCoordinator) {
    return Status::Error("no coordinator at " + Where(g) + " (is a job running under 'stasis launch'?)");
  }
  return c.status();
}

StatusOr<std::unique_ptr<Client>> EnsureCoordinator(GlobalOptions& g, const CoordinatorSpawn& spawn) {
  Status spawn_error;
  bool spawned = false;
  for (int attempt = 0; attempt < 20; ++attempt) {
    Client::Failure failure = Client::Failure::kOther;
    auto c = g.coord_port == 0 ? StatusOr<std::unique_ptr<Client>>(Status::Error("no port yet"))
                               : Client::Connect(g.coord_host, static_cast<uint16_t>(g.coord_port), 5, &failure);
    if (g.coord_port == 0) failure = Client::Failure::kNoCoordinator;
    if (c.ok()) {
      if (spawn.interval && spawn.interval_given) {
        auto r = (*c)->Request({{"type", "set_interval"}, {"interval", *spawn.interval}}, 10);
        if (!r.ok()) return r.status();
        RETURN_IF_ERROR(coordinator::ReplyError(*r));
      }
      if (g.verbose) std::cerr << "stasis: using the coordinator at " << Where(g) << std::endl;
      return c;
    }
    switch (failure) {
      case Client::Failure::kUntrusted:
        return c.status();
      case Client::Failure::kWrongUser:
        return Status::Error(c.status().message() +
                             "; use --coord-port (or STASIS_COORD_PORT) to run your own coordinator on another port");
      case Client::Failure::kNoCoordinator: {
        if (spawned) break;  // it exited already, or lost a race: retry connecting
        if (!IsLocalHost(g.coord_host)) {
          return Status::Error("no coordinator at " + Where(g) + "; start one there with 'stasis coordinator'");
        }
        auto port = SpawnCoordinator(g, spawn);
        spawned = true;
        if (!port.ok()) spawn_error = port.status();
        else g.coord_port = *port;
        continue;
      }
      case Client::Failure::kNotCoordinator:
        // A coordinator that is just exiting (--exit-on-last) closes without
        // answering: wait for it to go away, then start a new one.
        if (attempt >= 10) {
          return Status::Error(c.status().message() + "; use --coord-port to pick another port");
        }
        spawned = false;
        break;
      default:
        return c.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!spawn_error.ok()) return spawn_error;
  return Status::Error("no coordinator answers at " + Where(g));
}

job::JobSettings MakeJobSettings(const GlobalOptions& g, const CoordinatorSpawn& spawn,
                                 const std::string& agent_lib) {
  job::JobSettings s;
  s.coord_host = g.coord_host;
  s.coord_port = static_cast<uint16_t>(g.coord_port);
  s.ckptdir = spawn.ckptdir;
  s.interval = spawn.interval.value_or(0);
  s.keep = spawn.keep;
  s.compression = spawn.compression;
  s.verbose = g.verbose;
  s.quiet = g.quiet;
  s.strict = g.strict;
  s.agent_lib = agent_lib;
  s.stasis_exe = OwnExe();
  if (!g_written_files.limit.empty()) {  // checked when parsed
    if (auto n = state::ParseByteSize(g_written_files.limit); n.ok()) s.written_files_limit = *n;
  }
  s.keep_current_files = g_written_files.keep_current;
  return s;
}

}  // namespace stasis::cli
