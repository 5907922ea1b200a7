// The Stasis version, from CMake's project(VERSION) and, when built from a
// git checkout, `git describe` at configure time (generated version.cc).
#pragma once

namespace stasis {

// "0.1.0" (PROJECT_VERSION): names the agent's install directory.
const char* StasisVersionNumber();
// "0.1.0 (git 0194a1d)", or the number alone: recorded in every image and
// manifest, printed by `stasis --version`.
const char* StasisVersion();
// Where the installed agent lives relative to the install prefix:
// "lib/stasis/<version number>".
const char* StasisAgentInstallDir();

}  // namespace stasis
