#!/usr/bin/env bash
# With stdout redirected to a file, Python buffers print() output in memory.
# A checkpoint saves that buffer with the rest of the memory: after restart
# the buffered lines are printed, nothing is lost.
set -euo pipefail
source "$(dirname "$0")/common.sh"
unset PYTHONUNBUFFERED   # show the default: block-buffered stdout when it is a file

say "stasis launch /usr/bin/python3 count.py 10 0.3 PROGRESS > $WORK/out.txt &"
"$STASIS" launch /usr/bin/python3 "$PYWORKLOADS/count.py" 10 0.3 "$WORK/progress.txt" \
  >"$WORK/out.txt" &
LAUNCH=$!
wait_for_line "$WORK/progress.txt" 3
say "stasis checkpoint --kill"
"$STASIS" checkpoint --kill
wait "$LAUNCH"
echo "out.txt after the kill has $(wc -l <"$WORK/out.txt") lines (the output is still in Python's buffer)"

say "stasis restart $STASIS_CKPT_DIR > $WORK/out2.txt"
"$STASIS" restart "$STASIS_CKPT_DIR" >"$WORK/out2.txt"
echo "after restart:"; tr '\n' ' ' <"$WORK/out2.txt"; echo
echo "(use python3 -u or print(..., flush=True) to see output as it is produced)"
