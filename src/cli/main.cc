// `stasis`: checkpoint/restart for unmodified Linux programs.  Dispatches to
// the subcommands in cmd_*.cc.
#include <iostream>
#include <algorithm>
#include <map>

#include "cli/cli.h"
#include "common/version.h"

int main(int argc, char** argv) {
  using namespace stasis::cli;
  CLI::App app{
      "Stasis: transparent checkpoint/restart of unmodified Linux programs, without root.\n"
      "Run a program under 'stasis launch', checkpoint it with 'stasis checkpoint' (or every\n"
      "--interval seconds), and resume it later with 'stasis restart DIR'.",
      "stasis"};
  app.set_version_flag("--version", std::string("stasis ") + stasis::StasisVersion());
  app.require_subcommand(1);
  // Global options are accepted after the subcommand too.
  app.fallthrough();
  GlobalOptions g;
  AddGlobalOptions(app, g);
  std::map<CLI::App*, Action> actions;
  auto add = [&](Action (*fn)(CLI::App&, GlobalOptions&)) {
    size_t before = app.get_subcommands({}).size();
    Action a = fn(app, g);
    actions[app.get_subcommands({})[before]] = std::move(a);
  };
  add(AddLaunch);
  add(AddRun);
  add(AddCheckpoint);
  add(AddStatus);
  add(AddRestart);
  add(AddInspect);
  add(AddCoordinator);
  add(AddQuit);
  add(AddDoctor);
  // CLI11 hands "--" of a subcommand without positionals back to the parent,
  // so `stasis launch [opts] -- PROGRAM ARGS` is split here.
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") break;
    if (args[i] != "launch" && args[i] != "run") continue;
    for (size_t j = i + 1; j < args.size(); ++j) {
      if (args[j] != "--") continue;
      g_launch_command.assign(args.begin() + j + 1, args.end());
      g_launch_dashdash = true;
      args.resize(j);
      break;
    }
    break;
  }
  std::reverse(args.begin(), args.end());  // CLI11's vector form takes them reversed
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // usage error
  }
  if (g.quiet && g.verbose) g.verbose = false;
  for (auto& [sub, action] : actions) {
    if (sub->parsed()) return action();
  }
  return 2;
}
