#!/usr/bin/env bash
# Builds Stasis if needed and runs every test: the GoogleTest unit tests and
# the end-to-end pytest suite (tests/e2e), both through ctest.
#   ./scripts/test.sh [extra ctest args, e.g. -R e2e -V]
# Environment: BUILD_DIR (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja
fi
ninja -C "$BUILD_DIR"

if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null &&
   ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$(cd "$BUILD_DIR" && pwd)/bin/stasis" 2>/dev/null; then
  echo "note: user nobody cannot reach $(pwd)/$BUILD_DIR; the e2e tests that run as nobody" \
       "will be skipped (put the repository in a world-readable path, e.g. under /tmp)." >&2
fi

# Two at a time: every e2e file and the Slurm suite is its own ctest entry.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${STASIS_TEST_JOBS:-2}" "$@"
