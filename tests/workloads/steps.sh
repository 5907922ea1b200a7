#!/bin/bash
# steps.sh LOG N [DELAY=0.05]: N steps, each a `sleep DELAY` and an
# external echo appended to LOG with >>, then "done" (tests/e2e/test_trees.py).
log=$1
n=$2
delay=${3:-0.05}
for ((i = 1; i <= n; i++)); do
  sleep "$delay"
  /bin/echo "step $i" >> "$log"
done
echo done >> "$log"
