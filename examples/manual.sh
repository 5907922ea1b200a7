#!/usr/bin/env bash
# Launch a program, checkpoint it on demand, checkpoint+kill, restart.
set -euo pipefail
source "$(dirname "$0")/common.sh"

say "stasis launch $WORKLOADS/count 20 0.3 > $WORK/out.txt &"
"$STASIS" launch "$WORKLOADS/count" 20 0.3 >"$WORK/out.txt" &
LAUNCH=$!
wait_for_line "$WORK/out.txt" 3

say "stasis checkpoint            # the program keeps running"
"$STASIS" checkpoint
say "stasis status"
"$STASIS" status
wait_for_line "$WORK/out.txt" 6

say "stasis checkpoint --kill     # checkpoint, then stop the program"
"$STASIS" checkpoint --kill
wait "$LAUNCH"
echo "output before the kill:"; tr '\n' ' ' <"$WORK/out.txt"; echo

say "stasis inspect $STASIS_CKPT_DIR/ckpt_*.stasis"
"$STASIS" inspect "$STASIS_CKPT_DIR"/ckpt_*.stasis

say "stasis restart $STASIS_CKPT_DIR      # continues after the last number above"
"$STASIS" restart "$STASIS_CKPT_DIR"
