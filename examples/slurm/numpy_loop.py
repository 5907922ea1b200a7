#!/usr/bin/env python3
"""The Sulis seed's numpy loop, small and deterministic: N iterations of a
seeded random matrix product; each prints its index and result.  The output
of an interrupted-and-restarted run must equal an uninterrupted one."""
import sys
import time

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
size = int(sys.argv[2]) if len(sys.argv) > 2 else 200
rng = np.random.default_rng(12345)
print("Code started", flush=True)
for i in range(n):
    a = rng.random((size, size))
    b = rng.random((size, size))
    c = np.matmul(a, b).sum()
    print(f"iter {i:4d} result {c:.6f}", flush=True)
    time.sleep(0.5)
print("done", flush=True)
