#!/bin/bash
# victim.sh COUNT_BINARY N DELAY: starts a helper `sleep 600` in the
# background (the process a fault test kills in the middle of a
# checkpoint), runs `COUNT N DELAY` in the foreground, then stops the helper
# if it still runs, reaps it and prints "done" (tests/e2e/test_jobs.py).
sleep 600 &
helper=$!
"$1" "$2" "$3"
kill "$helper" 2>/dev/null
wait "$helper" 2>/dev/null
echo done
