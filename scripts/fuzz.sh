#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) in a
# separate build directory and runs each one for a bounded time, starting
# from the checked-in seeds (tests/fuzz/corpus/<target>/).  Any crash, UB
# report, leak, input slower than STASIS_FUZZ_TIMEOUT or memory blow-up
# fails the run, and the reproducer is printed with the command replaying it.
#   ./scripts/fuzz.sh [target...]       (default: all targets)
# Environment:
#   STASIS_FUZZ_SECONDS  per target (default 60)
#   STASIS_FUZZ_TIMEOUT  seconds one input may take before it is a hang (default 10)
#   FUZZ_BUILD_DIR       default build-fuzz
#   STASIS_FUZZ_REQUIRED =1: missing clang/libFuzzer is an error, not a skip (CI sets it)
# Exit: 0 clean, 1 a finding or build failure, 77 skipped (no clang).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${STASIS_FUZZ_SECONDS:-60}
TIMEOUT=${STASIS_FUZZ_TIMEOUT:-10}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
ALL="image_reader metadata manifest coordinator_line agent_message"
TARGETS=${*:-$ALL}

CXX_BIN=$(command -v clang++ || true)
if [ -z "$CXX_BIN" ] || ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' |
     "$CXX_BIN" -x c++ -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null; then
  echo "fuzz: clang++ with libFuzzer not found (apt-get install clang libclang-rt-dev)" >&2
  if [ "${STASIS_FUZZ_REQUIRED:-}" = 1 ] || [ "${CI:-}" = true ]; then exit 1; fi
  exit 77
fi

start=$(date +%s)
if [ ! -f "$BUILD/build.ninja" ]; then
  launcher=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DSTASIS_FUZZ=ON "${launcher[@]}" >/dev/null
fi
ninja -C "$BUILD" fuzz_targets
echo "fuzz: build took $(( $(date +%s) - start )) s"

# ASan: leaks are findings; UBSan reports are fatal (-fno-sanitize-recover).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in $TARGETS; do
  bin="$BUILD/fuzz/fuzz_$t"
  seeds="tests/fuzz/corpus/$t"
  work="$BUILD/fuzz-work/$t"    # grows across runs; the seeds stay as checked in
  art="$BUILD/fuzz-artifacts/$t"
  rm -rf "$art"
  mkdir -p "$work" "$art"
  log="$BUILD/fuzz-work/$t.log"
  echo "fuzz: $t for ${SECONDS_PER_TARGET} s"
  rc=0
  "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$art/" "$work" "$seeds" >"$log" 2>&1 || rc=$?
  grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added' "$log" |
    sed "s/^/fuzz: $t: /" || true
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "fuzz: $t FAILED (exit $rc); the report:" >&2
    grep -E -A40 'ERROR: |FUZZ_CHECK failed|runtime error|ALARM|out-of-memory|deadly signal' "$log" | head -80 >&2 || tail -60 "$log" >&2
    for f in "$art"/*; do
      [ -f "$f" ] || continue
      echo "fuzz: reproducer $f ($(stat -c %s "$f") bytes), replay with: $bin $f" >&2
      echo "fuzz: first bytes:" >&2
      od -A d -t x1 -N 256 "$f" | head -16 >&2
    done
  fi
done
echo "fuzz: total $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]} (add the fixed reproducer to tests/fuzz/corpus/<target>/ as a regression)" >&2
  exit 1
fi
