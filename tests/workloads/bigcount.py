"""bigcount: a counter with a large, deterministic memory image.
    bigcount.py N DELAY MIB
Fills MIB MiB with seeded pseudo-random bytes (the same in every run), then
prints 1..N, one line every DELAY seconds, and finally the SHA-256 of the
buffer: the output equals an uninterrupted run's only if every byte of the
memory came back at restart."""
import hashlib
import random
import sys
import time

n, delay, mib = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
buf = bytearray(random.Random(12345).randbytes(mib << 20))
for i in range(1, n + 1):
    print(i, flush=True)
    time.sleep(delay)
print("sha256", hashlib.sha256(buf).hexdigest(), flush=True)
