#!/usr/bin/env bash
# ctest wrapper around pytest: runs the given pytest arguments and turns
# "every test was skipped" (or none collected) into exit 77, which ctest
# reports as "Not Run (skipped)" (SKIP_RETURN_CODE), instead of "Passed".
#   run_pytest.sh <pytest args...>
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
/usr/bin/python3 -m pytest -q -p no:cacheprovider -rs "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)|no tests ran' "$log" | tail -1)
if [ "$rc" -eq 5 ]; then exit 77; fi
if [ "$rc" -eq 0 ] && ! grep -qE '[0-9]+ passed' <<<"$summary"; then
  echo "note: every test was skipped (see the reasons above)" >&2
  exit 77
fi
exit "$rc"
