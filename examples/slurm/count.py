#!/usr/bin/env python3
"""The seeds' count.py, bounded: prints 0..N-1, one number a second, then "done"."""
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
i = 0
while i < n:
    print(i, flush=True)
    time.sleep(delay)
    i += 1
print("done", flush=True)
