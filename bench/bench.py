#!/usr/bin/python3
"""Stasis checkpoint/restart benchmark (driver for bench/run.sh).

For every memory size x data kind, runs tests/workloads/memwork.c under
`stasis launch` with the checkpoint directory on tmpfs (/dev/shm by default)
and measures:

  ckpt_s     wall time of `stasis checkpoint` (the job keeps running)
  image      total image size of that checkpoint (from its manifest)
  pause_ms   the pause the program itself observed during that checkpoint
             (memwork prints pause_ms=... when its 1 ms loop sees a gap > 50 ms)
  restart_s  after kill -9 of the job: from starting `stasis restart DIR`
             until memwork writes a new heartbeat (the program runs again)

and prints a Markdown table.  See docs/performance.md.
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZES = {"256M": 256 << 20, "1G": 1 << 30, "4G": 4 << 30}
KINDS = ["random", "zero", "mixed"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def mem_available():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def port_pids(port):
    needle = f"STASIS_COORD_PORT={port}".encode()
    pids = []
    for e in os.listdir("/proc"):
        if e.isdigit() and int(e) != os.getpid():
            try:
                if needle in pathlib.Path(f"/proc/{e}/environ").read_bytes().split(b"\0"):
                    pids.append(int(e))
            except OSError:
                pass
    return pids


def kill_port(port):
    for _ in range(500):
        pids = port_pids(port)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def read_text(path):
    try:
        return pathlib.Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def run_one(stasis, memwork, size_name, kind, root, compress, verbose):
    size = SIZES[size_name]
    port = free_port()
    work = pathlib.Path(tempfile.mkdtemp(prefix="stasis-bench-", dir=root))
    ckpt = work / "ckpt"
    ckpt.mkdir()
    hb = work / "heartbeat"
    env = dict(os.environ, STASIS_COORD_PORT=str(port))
    procs = []
    result = {"size": size_name, "kind": kind}
    try:
        out = open(work / "launch.out", "wb")
        err = open(work / "launch.err", "wb")
        launch_cmd = [stasis, "launch", "--coord-port", str(port), "-c", str(ckpt), "-q"]
        if compress:
            launch_cmd += ["--compress", compress]
        launch = subprocess.Popen(launch_cmd + [memwork, str(size), kind, str(hb)],
                                  stdout=out, stderr=err, env=env, start_new_session=True,
                                  stdin=subprocess.DEVNULL)
        procs.append(launch)
        wait_until(lambda: "ready" in read_text(work / "launch.out") or launch.poll() is not None,
                   600, "memwork to fill its memory")
        if launch.poll() is not None:
            raise RuntimeError(f"launch exited: {read_text(work / 'launch.err')}")
        wait_until(lambda: read_text(hb).strip(), 30, "a first heartbeat")
        n_pauses = read_text(work / "launch.out").count("pause_ms=")

        t0 = time.monotonic()
        r = subprocess.run([stasis, "checkpoint"], capture_output=True, text=True, env=env,
                           timeout=1800)
        result["ckpt_s"] = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError(f"stasis checkpoint failed: {r.stderr.strip()}")
        m = re.search(r"checkpoint (\d+) complete: (\S+)", r.stdout + r.stderr)
        manifest = json.loads(pathlib.Path(m.group(2)).read_text())
        result["image_bytes"] = sum(p["image_size"] for p in manifest["processes"])

        def pause():
            found = re.findall(r"pause_ms=([0-9.]+)", read_text(work / "launch.out"))
            return found[n_pauses:] and found[n_pauses:]
        try:
            result["pause_ms"] = max(float(x) for x in wait_until(pause, 10, "pause_ms line"))
        except TimeoutError:
            result["pause_ms"] = None  # never paused > 50 ms

        # Crash the job, restart it, and time until it runs again.
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kill_port(port)
        launch.wait()
        before = read_text(hb)
        rout = open(work / "restart.out", "wb")
        rerr = open(work / "restart.err", "wb")
        t0 = time.monotonic()
        restart = subprocess.Popen([stasis, "restart", str(ckpt)], stdout=rout, stderr=rerr,
                                   env=env, start_new_session=True, stdin=subprocess.DEVNULL)
        procs.append(restart)

        def beat():
            if restart.poll() is not None:
                raise RuntimeError(f"restart exited ({restart.returncode}): "
                                   f"{read_text(work / 'restart.err').strip()}")
            now = read_text(hb)
            return now.strip() and now != before
        wait_until(beat, 1800, "a heartbeat after restart")
        result["restart_s"] = time.monotonic() - t0
        subprocess.run([stasis, "quit"], capture_output=True, env=env, timeout=60)
    except Exception as e:  # report and go on with the next configuration
        result["error"] = str(e)
        if verbose:
            print(f"  launch.err: {read_text(work / 'launch.err')[-2000:]}", file=sys.stderr)
            print(f"  restart.err: {read_text(work / 'restart.err')[-2000:]}", file=sys.stderr)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait()
        kill_port(port)
        shutil.rmtree(work, ignore_errors=True)
    return result


def fmt(v, f):
    return "–" if v is None else f.format(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("STASIS_BUILD_DIR", str(REPO / "build")))
    ap.add_argument("--sizes", default="256M,1G,4G", help="comma list of 256M,1G,4G")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma list of random,zero,mixed")
    ap.add_argument("--ckpt-root", default="/dev/shm", help="where checkpoints are written (tmpfs)")
    ap.add_argument("--compress", default=None, help="passed to stasis launch --compress")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()

    stasis = str(pathlib.Path(a.build) / "bin" / "stasis")
    memwork = str(pathlib.Path(a.build) / "workloads" / "memwork")
    for f in (stasis, memwork):
        if not os.access(f, os.X_OK):
            sys.exit(f"bench: {f} not found; build first (bench/run.sh does)")
    sizes = [s.strip().upper() for s in a.sizes.split(",") if s.strip()]
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    for s in sizes:
        if s not in SIZES:
            sys.exit(f"bench: unknown size {s} (use {', '.join(SIZES)})")
    for k in kinds:
        if k not in KINDS:
            sys.exit(f"bench: unknown kind {k} (use {', '.join(KINDS)})")

    uname = os.uname()
    print(f"# Stasis benchmark: {uname.sysname} {uname.release}, {os.cpu_count()} CPUs, "
          f"{mem_available() >> 30} GiB available, checkpoints in {a.ckpt_root}"
          f"{', compress ' + a.compress if a.compress else ''}")
    print()
    print("| memory | data | checkpoint (s) | image (MiB) | image/memory | pause seen by program (ms) | restart until running (s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    sys.stdout.flush()
    for s in sizes:
        for k in kinds:
            need = SIZES[s] * 3  # process + image on tmpfs + restarted process
            free_root = shutil.disk_usage(a.ckpt_root).free
            if mem_available() < need or free_root < SIZES[s] + (256 << 20):
                print(f"| {s} | {k} | skipped: needs ~{need >> 30 or 1} GiB RAM and "
                      f"{SIZES[s] >> 20} MiB in {a.ckpt_root} | | | | |")
                continue
            r = run_one(stasis, memwork, s, k, a.ckpt_root, a.compress, a.verbose)
            if "error" in r:
                print(f"| {s} | {k} | error: {r['error'][:200]} | | | | |")
            else:
                print(f"| {s} | {k} | {r['ckpt_s']:.2f} | {r['image_bytes'] / 2**20:.1f} | "
                      f"{r['image_bytes'] / SIZES[s]:.3f} | {fmt(r['pause_ms'], '{:.0f}')} | "
                      f"{r['restart_s']:.2f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
