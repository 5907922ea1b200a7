#!/usr/bin/env bash
# Periodic checkpoints, a crash (kill -9), restart from the newest checkpoint.
# looper.py keeps its output file open in append mode the whole time.
set -euo pipefail
source "$(dirname "$0")/common.sh"
export TMPDIR=$WORK

say "stasis launch --interval 2 --keep 2 /usr/bin/python3 looper.py 30 0.2 &"
setsid "$STASIS" launch --interval 2 --keep 2 /usr/bin/python3 "$PYWORKLOADS/looper.py" 30 0.2 \
  >"$WORK/out.txt" &
LAUNCH=$!
for _ in $(seq 300); do ls "$STASIS_CKPT_DIR"/stasis_manifest_*.json >/dev/null 2>&1 && break; sleep 0.1; done
echo "first checkpoint written: $(ls "$STASIS_CKPT_DIR"/stasis_manifest_*.json)"
n=$(wc -l <"$WORK/out.txt")
while [ "$(wc -l <"$WORK/out.txt")" -lt $((n + 3)) ]; do sleep 0.1; done

say "kill -9 the whole job (a node crash)"
kill -9 -- -"$LAUNCH" 2>/dev/null || true   # launch, its job and everything in its process group
wait "$LAUNCH" 2>/dev/null || true
echo "looper.txt has $(wc -l <"$WORK/looper.txt") lines; checkpoints:"
ls "$STASIS_CKPT_DIR"

say "$STASIS_CKPT_DIR/stasis_restart.sh"
"$STASIS_CKPT_DIR/stasis_restart.sh"

echo
echo "looper.txt now holds lines 1..30 exactly once:"
cut -d' ' -f1 "$WORK/looper.txt" | tr '\n' ' '; echo
