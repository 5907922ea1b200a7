#!/usr/bin/env bash
# Checks the C/C++ files changed since BASE (default: HEAD~1) with
# clang-format (.clang-format) and, with --tidy, clang-tidy (.clang-tidy,
# using build/compile_commands.json).  Prints what differs; exit 1 if any.
#   scripts/check_style.sh [--tidy] [BASE]
set -euo pipefail
cd "$(dirname "$0")/.."
tidy=0
if [ "${1:-}" = --tidy ]; then tidy=1; shift; fi
base=${1:-HEAD~1}
mapfile -t files < <(git diff --name-only --diff-filter=AM "$base" -- '*.cc' '*.h' '*.c' | grep -v '^tests/fuzz/corpus/' || true)
[ ${#files[@]} -eq 0 ] && { echo "no C/C++ files changed since $base"; exit 0; }
rc=0
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" 2>/dev/null || { echo "clang-format: $f differs (clang-format -i $f)"; rc=1; }
done
if [ $tidy -eq 1 ]; then
  [ -f build/compile_commands.json ] || { echo "build/compile_commands.json missing: configure build/ first"; exit 1; }
  for f in "${files[@]}"; do
    case $f in *.cc) clang-tidy -p build --quiet "$f" || rc=1 ;; esac
  done
fi
exit $rc
