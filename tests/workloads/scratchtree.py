"""Two processes holding the same scratch file and the same deleted file
(tests/e2e/test_save_files.py): the parent opens both (O_APPEND), unlinks
the temp file and forks; the child appends STEPS records to both, then the
parent appends STEPS more, reads both files back and prints their CRC-32.

usage: scratchtree.py SCRATCH_DIR STEPS PERIOD_S"""
import os
import sys
import time
import zlib

d, steps, period = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
os.makedirs(d, exist_ok=True)
flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
shared = os.open(os.path.join(d, "shared.dat"), flags, 0o644)
tmp = os.path.join(d, "hidden.tmp")
hidden = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
os.unlink(tmp)


def work(who):
    for i in range(1, steps + 1):
        rec = f"{who} {i} {i * i}\n".encode()
        os.write(shared, rec)
        os.write(hidden, rec)
        print(f"{who} step {i}", flush=True)
        time.sleep(period)


pid = os.fork()
if pid == 0:
    work("child")
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert status == 0, status
work("parent")
with open(os.path.join(d, "shared.dat"), "rb") as f:
    a = f.read()
b = os.pread(hidden, 1 << 24, 0)
print(f"shared {zlib.crc32(a):08x} {len(a)}")
print(f"hidden {zlib.crc32(b):08x} {len(b)}")
print("done")
