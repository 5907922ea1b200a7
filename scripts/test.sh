#!/usr/bin/env bash
# Builds Stasis if needed and runs every test: the GoogleTest unit tests and
# the end-to-end pytest suite (tests/e2e), both through ctest.
#   ./scripts/test.sh [extra ctest args, e.g. -R e2e -V]
# Environment: BUILD_DIR (default: build); STASIS_FUZZ_SECONDS (per fuzz
# target, default 60); STASIS_SANITIZE_TESTS=1 (see below).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  werror=()
  if [ "${CI:-}" = true ]; then werror=(-DSTASIS_WERROR=ON); fi
  cmake -S . -B "$BUILD_DIR" -G Ninja "${werror[@]}"
fi
ninja -C "$BUILD_DIR"

if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null &&
   ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$(cd "$BUILD_DIR" && pwd)/bin/stasis" 2>/dev/null; then
  echo "note: user nobody cannot reach $(pwd)/$BUILD_DIR; the e2e tests that run as nobody" \
       "will be skipped (put the repository in a world-readable path, e.g. under /tmp)." >&2
fi

# Opt-in: the unit tests built with ASan + UBSan (a second full build,
# about 17 CPU-minutes with gcc, then ~1.5 min of tests; too much for CI's
# budget by default).  Environment: STASIS_SANITIZE_TESTS=1, SANITIZE_BUILD_DIR.
if [ "${STASIS_SANITIZE_TESTS:-0}" = 1 ]; then
  SAN_DIR=${SANITIZE_BUILD_DIR:-build-asan}
  if [ ! -f "$SAN_DIR/build.ninja" ]; then
    cmake -S . -B "$SAN_DIR" -G Ninja -DSTASIS_SANITIZE=address,undefined
  fi
  ninja -C "$SAN_DIR"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$SAN_DIR/tests/stasis_unit_tests"
fi

# Two at a time: every e2e file and the Slurm suite is its own ctest entry.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${STASIS_TEST_JOBS:-2}" "$@"
