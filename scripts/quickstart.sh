#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine: installs the build dependencies
# (with sudo unless root), builds Stasis into build/, and runs the demo:
# the classic count program is launched under Stasis, checkpointed and
# killed after it printed 3, then restarted: it continues with 4.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake ninja-build pkg-config libzstd-dev libxxhash-dev libcli11-dev
      libfmt-dev nlohmann-json3-dev libssl-dev libgtest-dev libbenchmark-dev python3 python3-numpy
      python3-pytest util-linux procps r-base-core help2man screen tmux clang libclang-rt-dev)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

echo "== building (build/)"
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja
fi
# The CLI, the agent and the demo program (./scripts/test.sh builds everything).
ninja -C build stasis stasis_agent wl_count

# ---- demo (scripts/demo.sh) -------------------------------------------------
STASIS=$(pwd)/build/bin/stasis COUNT=$(pwd)/build/workloads/count ./scripts/demo.sh
echo "Run all tests with: ./scripts/test.sh"
