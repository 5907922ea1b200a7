#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine: installs the build dependencies
# (with sudo unless root), builds Stasis into build/, and runs the demo:
# the classic count program is launched under Stasis, checkpointed and
# killed after it printed 3, then restarted: it continues with 4.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake ninja-build pkg-config libzstd-dev libxxhash-dev libcli11-dev
      libfmt-dev nlohmann-json3-dev libgtest-dev libbenchmark-dev python3 python3-numpy
      python3-pytest util-linux procps r-base-core clang libclang-rt-dev)

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

# ---- demo -------------------------------------------------------------------
STASIS=$(pwd)/build/bin/stasis
COUNT=$(pwd)/build/workloads/count
DEMO=$(mktemp -d /tmp/stasis-demo.XXXXXX)
mkdir -p "$DEMO/ckpt"
# A port of our own, so the demo never talks to someone else's coordinator.
export STASIS_COORD_PORT=${STASIS_COORD_PORT:-$((20000 + RANDOM % 20000))}
TAIL_PID=""
cleanup() {
  [ -n "$TAIL_PID" ] && kill "$TAIL_PID" 2>/dev/null || true
  "$STASIS" quit >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo
echo "== \$ stasis launch -c $DEMO/ckpt ./count 10 0.5      (prints 1..10, one every 0.5 s)"
: >"$DEMO/launch.out"
"$STASIS" launch -c "$DEMO/ckpt" "$COUNT" 10 0.5 >"$DEMO/launch.out" &
LAUNCH_PID=$!
tail -n +1 -f --pid="$LAUNCH_PID" "$DEMO/launch.out" &
TAIL_PID=$!
for _ in $(seq 300); do
  grep -qx 3 "$DEMO/launch.out" && break
  kill -0 "$LAUNCH_PID" 2>/dev/null || { echo "launch exited early" >&2; exit 1; }
  sleep 0.1
done
grep -qx 3 "$DEMO/launch.out" || { echo "count did not print 3 within 30 s" >&2; exit 1; }

echo "== \$ stasis checkpoint --kill"
"$STASIS" checkpoint --kill
wait "$LAUNCH_PID"
wait "$TAIL_PID" 2>/dev/null || true
TAIL_PID=""

echo "== \$ stasis restart $DEMO/ckpt      (count continues where it was checkpointed)"
"$STASIS" restart "$DEMO/ckpt"

echo
echo "== done.  Checkpoint files: $DEMO/ckpt"
ls -l "$DEMO/ckpt"
echo "Run all tests with: ./scripts/test.sh"
