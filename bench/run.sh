#!/usr/bin/env bash
# Checkpoint/restart benchmark: memwork (tests/workloads/memwork.c) at
# 256 MiB, 1 GiB, 4 GiB x random/zero/mixed data, checkpoints on tmpfs.
# Prints a Markdown table (paste it into docs/performance.md).
#   bench/run.sh [--sizes 256M,1G] [--kinds random,mixed] [--ckpt-root /dev/shm] [--compress zstd:3] [-v]
# Builds build/ first if needed (BUILD_DIR overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
fi
ninja -C "$BUILD_DIR" stasis stasis_agent wl_memwork wl_jobwork >&2
exec /usr/bin/python3 bench/bench.py --build "$BUILD_DIR" "$@"
