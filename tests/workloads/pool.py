"""pool.py N WORKERS DELAY: multiprocessing.Pool (fork) of WORKERS processes
maps a CPU-and-sleep work function over N items, in batches of 2*WORKERS
(Pool.map), printing "item <i> <hash>" in item order after each batch, then
"done <xor of all hashes>".  Output depends only on N (tests/e2e/test_jobs.py)."""
import multiprocessing as mp
import sys
import time

DELAY = 0.0


def init(delay):
    global DELAY
    DELAY = delay


def work(i):
    # A 64-bit LCG iterated a few thousand times: CPU work whose result
    # depends on every step, so a lost or repeated step changes it.
    h = i
    for _ in range(20000 + 37 * i):
        h = (h * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    time.sleep(DELAY)
    return i, h


def main():
    n, workers, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    ctx = mp.get_context("fork")
    acc = 0
    with ctx.Pool(workers, initializer=init, initargs=(delay,)) as pool:
        batch = 2 * workers
        for start in range(0, n, batch):
            for i, h in pool.map(work, range(start, min(n, start + batch)), chunksize=1):
                acc ^= h
                print(f"item {i} {h:016x}", flush=True)
    print(f"done {acc:016x}", flush=True)


if __name__ == "__main__":
    main()
