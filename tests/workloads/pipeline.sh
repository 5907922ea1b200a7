#!/bin/bash
# pipeline.sh LOG N COUNT_BINARY: `count N 0.01 | while read ...` appending
# "got <i>" to LOG (slower than count writes, so lines wait in the pipe),
# then "done" (tests/e2e/test_trees.py).
log=$1
n=$2
"$3" "$n" 0.01 | while read -r l; do
  echo "got $l" >> "$log"
  sleep 0.03
done
echo done >> "$log"
