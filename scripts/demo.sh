#!/usr/bin/env bash
# The seeds' count demo: count is launched under Stasis, checkpointed and
# killed after it printed 3, and restarted: it continues with 4; the
# output of launch and restart together must be exactly 1..10.
#   STASIS=/path/to/stasis COUNT=/path/to/count scripts/demo.sh
set -euo pipefail
STASIS=${STASIS:-stasis}
COUNT=${COUNT:?COUNT: path of the count program (build/workloads/count)}
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
"$STASIS" restart "$DEMO/ckpt" | tee "$DEMO/restart.out"
if [ "$(cat "$DEMO/launch.out" "$DEMO/restart.out")" != "$(seq 10)" ]; then
  echo "demo FAILED: the output of launch + restart is not 1..10" >&2
  exit 1
fi

echo
echo "== done.  Checkpoint files: $DEMO/ckpt"
ls -l "$DEMO/ckpt"
