#!/usr/bin/python3
# count.py: the seed's DMTCP demo (print a number, sleep, increment), made
# finite so outputs can be compared:
#   count.py [N=10] [DELAY_SECONDS=1] [PROGRESS_FILE]
# Prints 0..N-1 with plain print(): when stdout is a file, Python block-buffers
# it (run with -u to unbuffer).  If PROGRESS_FILE is given, each number is also
# appended to it (open/close each time, flushed), so a test can tell how far
# the program got even while stdout sits in Python's buffer.
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
progress = sys.argv[3] if len(sys.argv) > 3 else None

i = 0
while i < n:
    print(i)
    if progress:
        with open(progress, "a") as f:
            f.write("%d\n" % i)
    if i < n - 1:
        time.sleep(delay)
    i += 1
