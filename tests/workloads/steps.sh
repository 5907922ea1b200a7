#!/bin/bash
# steps.sh LOG N: N steps, each a `sleep` and an external echo appended to
# LOG with >>, then "done" (tests/e2e/test_trees.py).
log=$1
n=$2
for ((i = 1; i <= n; i++)); do
  sleep 0.05
  /bin/echo "step $i" >> "$log"
done
echo done >> "$log"
