// `stasis doctor`: what this node allows, in one screen, with the fix an
// admin would apply for each problem (kernel probes: common/kerndat.h).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "common/kerndat.h"

namespace stasis::cli {
namespace {

using kerndat::Finding;
using kerndat::Verdict;
using Json = nlohmann::json;

struct DoctorOptions {
  std::string ckptdir;
  bool json = false;
};

Finding AgentFinding() {
  auto lib = FindAgentLib();
  if (!lib.ok()) return {"agent library", Verdict::kFail, lib.status().message(), "reinstall stasis, or set STASIS_AGENT_LIB"};
  return {"agent library", Verdict::kOk, *lib, ""};
}

Finding CoordinatorFinding(GlobalOptions& g) {
  const std::string where = fmt::format("{}:{}", g.coord_host, g.coord_port);
  auto client = ConnectToCoordinator(g);
  if (!client.ok()) {
    return {"coordinator", Verdict::kInfo,
            fmt::format("none answers at {} (stasis launch starts one)", where), ""};
  }
  auto reply = (*client)->Request({{"type", "status"}}, 5);
  if (!reply.ok()) return {"coordinator", Verdict::kWarn, fmt::format("{}: {}", where, reply.status().message()), ""};
  const std::string job = reply->value("job_id", Json()).is_string() ? reply->value("job_id", std::string()) : "none";
  return {"coordinator", Verdict::kInfo, fmt::format("one of yours runs at {} (job {})", where, job),
          "a second job needs another port: stasis launch -p 0 (or --coord-port N)"};
}

Finding SlurmFinding() {
  const char* job = std::getenv("SLURM_JOB_ID");
  struct stat st {};
  const bool munge = stat("/run/munge/munge.socket.2", &st) == 0;
  std::string d = job ? fmt::format("inside Slurm job {} on {}", job,
                                    std::getenv("SLURM_JOB_NODELIST") ? std::getenv("SLURM_JOB_NODELIST") : "?")
                      : "not inside a Slurm job";
  d += munge ? "; munged is running" : "; no munged socket";
  return {"Slurm", Verdict::kInfo, d, ""};
}

int RunDoctor(GlobalOptions& g, const DoctorOptions& o) {
  std::vector<Finding> all = {kerndat::KernelRelease()};
  for (auto& f : kerndat::ProbeNamespaces()) all.push_back(std::move(f));
  all.push_back(kerndat::ProbePtraceScope());
  all.push_back(kerndat::ProbePagemapScan());
  all.push_back(kerndat::ProbeUserfaultfd());
  for (auto& f : kerndat::ProbeCkptDir(o.ckptdir)) all.push_back(std::move(f));
  all.push_back(AgentFinding());
  all.push_back(CoordinatorFinding(g));
  all.push_back(SlurmFinding());
  int failures = 0;
  for (const auto& f : all) failures += f.verdict == Verdict::kFail;
  if (o.json) {
    Json out = Json::array();
    for (const auto& f : all) {
      out.push_back({{"name", f.name}, {"verdict", kerndat::VerdictName(f.verdict)}, {"detail", f.detail},
                     {"fix", f.fix}});
    }
    std::cout << Json{{"ok", failures == 0}, {"findings", out}}.dump(2) << "\n";
  } else {
    for (const auto& f : all) {
      std::cout << fmt::format("{:<5} {:<17} {}\n", kerndat::VerdictName(f.verdict), f.name, f.detail);
      if (!f.fix.empty() && f.verdict != Verdict::kOk) std::cout << fmt::format("{:23} fix: {}\n", "", f.fix);
    }
    std::cout << (failures == 0 ? "Stasis can run jobs on this node.\n"
                                : fmt::format("Stasis cannot run jobs here: {} problem(s) above.\n", failures));
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

Action AddDoctor(CLI::App& app, GlobalOptions& g) {
  auto opts = std::make_shared<DoctorOptions>();
  auto* sub = app.add_subcommand("doctor",
                                 "Check what this node allows (user namespaces, ptrace, kernel features, the "
                                 "checkpoint directory, the coordinator port, Slurm) and how to fix problems");
  sub->add_option("-c,--ckptdir", opts->ckptdir, "Checkpoint directory to examine (env STASIS_CKPT_DIR)")
      ->envname("STASIS_CKPT_DIR")
      ->default_str(".");
  sub->add_flag("--json", opts->json, "Machine-readable output");
  return [&g, opts] {
    if (opts->ckptdir.empty()) opts->ckptdir = ".";
    return RunDoctor(g, *opts);
  };
}

}  // namespace stasis::cli
