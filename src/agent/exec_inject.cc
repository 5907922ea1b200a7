// Keeps the agent in every program the job executes.  A process that runs
// execve(2) with an environment of its own (`env -i prog`, execve with an
// empty envp, Python's subprocess with env={}) would otherwise start without
// LD_PRELOAD and the STASIS_* variables: no agent, so it could not be
// checkpointed.  The exec family and posix_spawn are interposed and the
// environment they pass is copied with LD_PRELOAD (the agent first, the
// program's own preloads kept), the agent's STASIS_* variables where missing
// and the current supervisor socket; every other variable is passed
// unchanged, none twice.  Technique: DMTCP's
// execwrappers (it re-adds LD_PRELOAD and its DMTCP_* variables the same
// way); symbols resolved with dlsym(RTLD_NEXT) (dlsym(3)).
//
// The wrappers may run in the child of vfork(2), which shares the parent's
// memory: no allocation, no locks, only the stack (alloca) and data captured
// by the constructor.  Not covered: system(3) and popen(3) (glibc spawns
// with its internal posix_spawn and `environ`, so only a program that
// cleared its own environment loses the agent there) and raw execve system
// calls.  A statically linked program never loads the agent; the supervisor
// refuses to checkpoint a job with such a process (supervisor.cc).
#include <alloca.h>
#include <dlfcn.h>
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/agent_internal.h"
#include "common/raw_log.h"

extern char** environ;

namespace stasis::agent {
namespace {

using ExecveFn = int (*)(const char*, char* const[], char* const[]);
using ExecveatFn = int (*)(int, const char*, char* const[], char* const[], int);
using FexecveFn = int (*)(int, char* const[], char* const[]);
using SpawnFn = int (*)(pid_t*, const char*, const posix_spawn_file_actions_t*,
                        const posix_spawnattr_t*, char* const[], char* const[]);

ExecveFn g_execve, g_execvpe;
ExecveatFn g_execveat;
FexecveFn g_fexecve;
SpawnFn g_spawn, g_spawnp;

constexpr size_t kMaxVars = 32;      // STASIS_* variables carried across exec
constexpr char kPreload[] = "LD_PRELOAD=";
constexpr char kAgentBase[] = "libstasis_agent.so";

char* g_vars[kMaxVars];              // "STASIS_X=value", copied by the constructor
size_t g_n_vars = 0;
char g_agent_path[4096];             // this library, as the dynamic linker loaded it

bool StartsWith(const char* s, const char* prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

// Length of "NAME=" of an environment entry (0 if it has no '=').
size_t NameLen(const char* entry) {
  const char* eq = strchr(entry, '=');
  return eq == nullptr ? 0 : static_cast<size_t>(eq - entry) + 1;
}

// True if a LD_PRELOAD value (ld.so(8): separated by ':' or ' ') already
// names the agent (this path, or any libstasis_agent.so).
bool PreloadHasAgent(const char* value) {
  const size_t path_len = strlen(g_agent_path);
  const size_t base_len = sizeof(kAgentBase) - 1;
  for (const char* p = value; *p != '\0';) {
    while (*p == ':' || *p == ' ') ++p;
    const char* end = p;
    while (*end != '\0' && *end != ':' && *end != ' ') ++end;
    const size_t len = static_cast<size_t>(end - p);
    if (len == path_len && strncmp(p, g_agent_path, len) == 0) return true;
    if (len >= base_len && strncmp(end - base_len, kAgentBase, base_len) == 0 &&
        (len == base_len || end[-static_cast<long>(base_len) - 1] == '/'))
      return true;
    p = end;
  }
  return false;
}

bool Active() { return g_agent_path[0] != '\0' && g.socket_path[0] != '\0'; }

// Sizes the caller must alloca for BuildEnv.
struct EnvSizes {
  size_t slots;     // pointers, with the terminating nullptr
  size_t preload;   // bytes of a rewritten LD_PRELOAD entry
  size_t socket;    // bytes of the STASIS_SUPERVISOR_SOCKET entry
};

EnvSizes Measure(char* const* envp) {
  EnvSizes s = {g_n_vars + 3, sizeof(kPreload) + strlen(g_agent_path) + 1, 0};
  for (size_t i = 0; envp != nullptr && envp[i] != nullptr; ++i) {
    ++s.slots;
    if (StartsWith(envp[i], kPreload)) s.preload += strlen(envp[i]) + 1;
  }
  s.socket = strlen(kSupervisorSocketEnv) + 1 + strlen(g.socket_path) + 1;
  return s;
}

// Fills `out` with envp's entries, LD_PRELOAD naming the agent first, the
// agent's STASIS_* variables that envp lacks (a value the program passes
// is kept) and the supervisor socket (always the current one: it changes on
// restart).  `preload` and `socket` are scratch of Measure's sizes.
char** BuildEnv(char* const* envp, char** out, char* preload, char* socket) {
  size_t n = 0;
  bool have_preload = false;
  uint64_t present = 0;  // bit v: envp has g_vars[v]'s name
  const size_t sock_name = strlen(kSupervisorSocketEnv);
  for (size_t i = 0; envp != nullptr && envp[i] != nullptr; ++i) {
    char* e = envp[i];
    if (strncmp(e, kSupervisorSocketEnv, sock_name) == 0 && e[sock_name] == '=') continue;
    const size_t len = NameLen(e);
    bool twice = false;
    for (size_t v = 0; v < g_n_vars && len > 0; ++v) {
      if (strncmp(e, g_vars[v], len) != 0) continue;
      twice = (present >> v) & 1;
      present |= 1ull << v;
      break;
    }
    if (twice) continue;  // the first one counts (getenv(3)); never pass two
    if (StartsWith(e, kPreload) && !have_preload) {
      have_preload = true;
      const char* value = e + sizeof(kPreload) - 1;
      if (!PreloadHasAgent(value)) {
        strcpy(preload, kPreload);
        strcat(preload, g_agent_path);
        if (*value != '\0') {
          strcat(preload, ":");
          strcat(preload, value);
        }
        e = preload;
      }
    }
    out[n++] = e;
  }
  if (!have_preload) {
    strcpy(preload, kPreload);
    strcat(preload, g_agent_path);
    out[n++] = preload;
  }
  for (size_t v = 0; v < g_n_vars; ++v)
    if (!((present >> v) & 1)) out[n++] = g_vars[v];
  strcpy(socket, kSupervisorSocketEnv);
  strcat(socket, "=");
  strcat(socket, g.socket_path);
  out[n++] = socket;
  out[n] = nullptr;
  return out;
}

// alloca must run in the wrapper's own frame: a macro declares `name` as the
// rewritten environment of `envp` (or envp itself when the agent is inert).
#define STASIS_AGENT_ENV(name, envp)                                                     \
  char* const* name = (envp);                                                           \
  if (stasis::agent::Active()) {                                                        \
    stasis::agent::EnvSizes sz_ = stasis::agent::Measure(envp);                        \
    name = stasis::agent::BuildEnv(envp, static_cast<char**>(alloca(sz_.slots * sizeof(char*))), \
                                   static_cast<char*>(alloca(sz_.preload)),             \
                                   static_cast<char*>(alloca(sz_.socket)));             \
  }

template <typename Fn>
Fn Lookup(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

// Variadic execl*: the arguments up to the terminating nullptr (and, with
// `want_env`, the envp after it).  Two passes over copies of the va_list.
#define STASIS_COLLECT_ARGS(argv_name, env_name, first, want_env)                         \
  size_t argc_ = 1;                                                                      \
  {                                                                                      \
    va_list ap_;                                                                         \
    va_start(ap_, first);                                                                \
    while (va_arg(ap_, char*) != nullptr) ++argc_;                                       \
    va_end(ap_);                                                                         \
  }                                                                                      \
  char** argv_name = static_cast<char**>(alloca((argc_ + 1) * sizeof(char*)));           \
  char* const* env_name = environ;                                                       \
  {                                                                                      \
    va_list ap_;                                                                         \
    va_start(ap_, first);                                                                \
    argv_name[0] = const_cast<char*>(first);                                             \
    for (size_t i_ = 1; i_ <= argc_; ++i_) argv_name[i_] = va_arg(ap_, char*);           \
    if (want_env) env_name = va_arg(ap_, char* const*);                                  \
    va_end(ap_);                                                                         \
  }

int NoFunction() {
  errno = ENOSYS;
  return -1;
}

}  // namespace

void InitExecInjection() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&InitExecInjection), &info) == 0 || info.dli_fname == nullptr ||
      strlen(info.dli_fname) >= sizeof(g_agent_path)) {
    RawLog("agent: cannot find the agent's own path; programs it executes get no agent");
    return;
  }
  g_execve = Lookup<ExecveFn>("execve");
  g_execvpe = Lookup<ExecveFn>("execvpe");
  g_execveat = Lookup<ExecveatFn>("execveat");
  g_fexecve = Lookup<FexecveFn>("fexecve");
  g_spawn = Lookup<SpawnFn>("posix_spawn");
  g_spawnp = Lookup<SpawnFn>("posix_spawnp");
  const size_t sock_name = strlen(kSupervisorSocketEnv);
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!StartsWith(*e, "STASIS_") || NameLen(*e) == 0) continue;
    if (strncmp(*e, kSupervisorSocketEnv, sock_name) == 0 && (*e)[sock_name] == '=') continue;
    if (g_n_vars == kMaxVars) {
      RawLog("agent: more than %d STASIS_* variables; the rest are not passed across exec",
             static_cast<int>(kMaxVars));
      break;
    }
    g_vars[g_n_vars] = strdup(*e);  // constructor: allocation is fine here
    if (g_vars[g_n_vars] != nullptr) ++g_n_vars;
  }
  strcpy(g_agent_path, info.dli_fname);
}

}  // namespace stasis::agent

#define STASIS_EXPORT extern "C" __attribute__((visibility("default")))

STASIS_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) noexcept {
  if (stasis::agent::g_execve == nullptr) return static_cast<int>(syscall(SYS_execve, path, argv, envp));
  STASIS_AGENT_ENV(env, envp);
  return stasis::agent::g_execve(path, argv, env);
}

STASIS_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) noexcept {
  if (stasis::agent::g_execvpe == nullptr) return stasis::agent::NoFunction();
  STASIS_AGENT_ENV(env, envp);
  return stasis::agent::g_execvpe(file, argv, env);
}

// execv and execvp pass `environ`, which the program may have cleared
// (`env -i` does clearenv(3) and then execvp).
STASIS_EXPORT int execv(const char* path, char* const argv[]) noexcept {
  return execve(path, argv, environ);
}

STASIS_EXPORT int execvp(const char* file, char* const argv[]) noexcept {
  return execvpe(file, argv, environ);
}

STASIS_EXPORT int execle(const char* path, const char* arg, ...) noexcept {
  STASIS_COLLECT_ARGS(argv, envp, arg, true);
  return execve(path, argv, envp);
}

STASIS_EXPORT int execl(const char* path, const char* arg, ...) noexcept {
  STASIS_COLLECT_ARGS(argv, envp, arg, false);
  return execve(path, argv, envp);
}

STASIS_EXPORT int execlp(const char* file, const char* arg, ...) noexcept {
  STASIS_COLLECT_ARGS(argv, envp, arg, false);
  return execvpe(file, argv, envp);
}

STASIS_EXPORT int execveat(int dirfd, const char* path, char* const argv[], char* const envp[],
                           int flags) noexcept {
  STASIS_AGENT_ENV(env, envp);
  if (stasis::agent::g_execveat == nullptr)
    return static_cast<int>(syscall(SYS_execveat, dirfd, path, argv, env, flags));
  return stasis::agent::g_execveat(dirfd, path, argv, env, flags);
}

STASIS_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) noexcept {
  if (stasis::agent::g_fexecve == nullptr) return stasis::agent::NoFunction();
  STASIS_AGENT_ENV(env, envp);
  return stasis::agent::g_fexecve(fd, argv, env);
}

STASIS_EXPORT int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                              const posix_spawnattr_t* attr, char* const argv[],
                              char* const envp[]) noexcept {
  if (stasis::agent::g_spawn == nullptr) return ENOSYS;
  STASIS_AGENT_ENV(env, envp);
  return stasis::agent::g_spawn(pid, path, actions, attr, argv, env);
}

STASIS_EXPORT int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* actions,
                               const posix_spawnattr_t* attr, char* const argv[],
                               char* const envp[]) noexcept {
  if (stasis::agent::g_spawnp == nullptr) return ENOSYS;
  STASIS_AGENT_ENV(env, envp);
  return stasis::agent::g_spawnp(pid, file, actions, attr, argv, env);
}
