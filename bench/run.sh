#!/usr/bin/env bash
# Checkpoint/restart benchmark, checkpoints on tmpfs; prints Markdown tables
# (paste them into docs/performance.md, which says what each column measures):
#   memory   memwork (tests/workloads/memwork.c) at 256 MiB, 1 GiB, 4 GiB x
#            random/zero/mixed data
#   procs    jobwork (tests/workloads/jobwork.c): N = 1,2,4,8 processes x 512 MiB
#   threads  jobwork: one process with 1, 8, 64 busy threads
#   bench/run.sh [--suites memory,procs,threads] [--sizes 256M,1G] [--kinds random,mixed]
#                [--procs 1,2,4,8] [--proc-size 512M] [--threads 1,8,64] [--thread-size 64M]
#                [--repeat N] [--ckpt-root /dev/shm] [--compress zstd:3] [-v]
# Builds build/ first if needed (BUILD_DIR overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
fi
ninja -C "$BUILD_DIR" stasis stasis_agent wl_memwork wl_jobwork >&2
exec /usr/bin/python3 bench/bench.py --build "$BUILD_DIR" "$@"
