#!/bin/bash
# pysteps.sh LOG N [DELAY=0.05]: N steps, each runs /usr/bin/python3 (which
# sleeps DELAY, then prints "step <i> <sha256 of i, 16 hex digits>") piped
# into `tee -a LOG`; then "done" through tee as well.  The log and stdout get
# the same lines (tests/e2e/test_jobs.py).
log=$1
n=$2
delay=${3:-0.05}
prog='
import hashlib, sys, time
i = int(sys.argv[1])
time.sleep(float(sys.argv[2]))
print(f"step {i} {hashlib.sha256(str(i).encode()).hexdigest()[:16]}")
'
for ((i = 1; i <= n; i++)); do
  /usr/bin/python3 -c "$prog" "$i" "$delay" | tee -a "$log"
done
echo done | tee -a "$log"
