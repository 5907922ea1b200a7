"""Soak: many consecutive `checkpoint --kill` / `restart DIR` cycles of a
counting program.  The outputs of all runs, concatenated, are exactly
1..M: no line lost or repeated across any cycle.  Prints the time per
cycle (restart until the program printed again, checkpoint --kill, exit).

STASIS_SOAK_CYCLES sets the number of cycles (default 200: 0.16-0.25 s per
cycle on a shared 2-core machine, under a minute in all)."""

import os
import statistics
import time

import pytest

CYCLES = int(os.environ.get("STASIS_SOAK_CYCLES", "200"))


@pytest.mark.timeout(60 + CYCLES * 6)
def test_checkpoint_kill_restart_cycles(h, capsys):
    launch = h.launch(h.wl("count", 10**7, 0.02))
    launch.wait_line("1")
    h.checkpoint(kill=True)
    assert launch.wait(30) == 0, h.diag()
    parts = [launch.lines()]
    times = []
    for i in range(CYCLES):
        t0 = time.monotonic()
        r = h.restart(h.ckpt, name=f"restart{i:03d}")
        r.wait_nlines(1, timeout=60)
        gen, _ = h.checkpoint(kill=True)
        rc = r.wait(60)
        assert rc == 0, f"cycle {i}: restart exited {rc}\n{h.diag()}"
        times.append(time.monotonic() - t0)
        lines = r.lines()
        assert lines, f"cycle {i}: the restarted program printed nothing"
        expect = int(parts[-1][-1]) + 1
        got = [int(l) for l in lines]
        assert got == list(range(expect, expect + len(got))), (
            f"cycle {i} (generation {gen}): expected to continue at {expect}, got {got[:5]}...")
        parts.append(lines)
        h.procs.remove(r)  # keep the harness's diagnostics short
    allnums = [int(l) for p in parts for l in p]
    assert allnums == list(range(1, len(allnums) + 1)), "lines lost or repeated"
    with capsys.disabled():
        print(f"\nsoak: {CYCLES} checkpoint --kill/restart cycles, {len(allnums)} lines 1..{len(allnums)} "
              f"exact; per cycle mean {statistics.mean(times):.3f} s, median {statistics.median(times):.3f} s, "
              f"max {max(times):.3f} s, total {sum(times):.1f} s")
