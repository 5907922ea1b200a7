#!/usr/bin/python3
"""Stasis checkpoint/restart benchmark (driver for bench/run.sh).

Three suites, checkpoints on tmpfs (/dev/shm by default); see
docs/performance.md for exactly what is measured.

memory   tests/workloads/memwork.c, one process, for every memory size x data
         kind:
           ckpt_s     wall time of `stasis checkpoint` (the job keeps running)
           image      total image size of that checkpoint (from its manifest)
           pause_ms   the pause the program itself observed during that
                      checkpoint (memwork prints pause_ms=... when its 1 ms
                      loop sees a gap > 50 ms)
           restart_s  after kill -9 of the job: from starting
                      `stasis restart DIR` until memwork writes a new
                      heartbeat (the program runs again)
procs    tests/workloads/jobwork.c: a job of N processes (a parent and N-1
         forked workers) x --proc-size of mixed data, one busy thread each
threads  jobwork: one process with T busy threads and --thread-size of mixed
         data
         For both: ckpt_s and image as above; the resumed job is then told to
         verify its state and must exit 0; then `stasis restart DIR`:
           first_s    until the first thread of the job writes a new heartbeat
           restart_s  until every thread of every process has written a new
                      heartbeat (the whole job runs again)
         and the restarted job must verify its state and exit 0 as well.

Prints Markdown tables.
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


def parse_size(text):
    m = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper())
    if not m:
        raise ValueError(f"bad size {text!r} (use e.g. 512M, 1G)")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)]


def load1():
    return float(read_text("/proc/loadavg").split()[0])


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_cont_latency(jobwork, port, hbs, nprocs):
    """The scheduler's share of "until every thread runs again", without
    Stasis: SIGSTOP every process of the job, wait until all are stopped,
    SIGCONT them and time until every thread has written a new heartbeat."""
    exe = os.path.realpath(jobwork)
    pids = []
    for p in port_pids(port):
        try:
            if os.path.realpath(f"/proc/{p}/exe") == exe:
                pids.append(p)
        except OSError:
            pass
    if len(pids) != nprocs:
        raise RuntimeError(f"found {len(pids)} jobwork processes, expected {nprocs}")

    def all_stopped():
        for p in pids:
            for t in os.listdir(f"/proc/{p}/task"):
                stat = read_text(f"/proc/{p}/task/{t}/stat")
                if stat and stat[stat.rindex(")") + 2] not in "Tt":
                    return False
        return True
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        wait_until(all_stopped, 60, "the job to stop")
        before = {h: read_text(h) for h in hbs}
    finally:
        t0 = time.monotonic()
        for p in pids:
            os.kill(p, signal.SIGCONT)
    waiting = set(hbs)

    def beat():
        for h in list(waiting):
            if read_text(h) != before[h]:
                waiting.discard(h)
        return not waiting
    wait_until(beat, 60, "every thread to beat after SIGCONT")
    return time.monotonic() - t0


def run_job(stasis, jobwork, nprocs, nthreads, size, root, compress, verbose):
    """One jobwork job of nprocs processes x nthreads threads x size bytes:
    checkpoint, verify the resumed job, restart, verify the restarted job."""
    port = free_port()
    work = pathlib.Path(tempfile.mkdtemp(prefix="stasis-bench-", dir=root))
    ckpt = work / "ckpt"
    ckpt.mkdir()
    env = dict(os.environ, STASIS_COORD_PORT=str(port))
    procs = []
    hbs = [work / f"hb.{p}.{t}" for p in range(nprocs) for t in range(nthreads)]
    result = {"load1": load1()}

    def verified(out_name):
        text = read_text(work / out_name)
        ok = set(re.findall(r"^verified (\d+) ok$", text, re.M))
        failed = re.findall(r"^FAILED .*$", text, re.M)
        if failed or len(ok) != nprocs:
            raise RuntimeError(f"verification failed: {failed or text[-300:]!r}")

    try:
        out = open(work / "launch.out", "wb")
        err = open(work / "launch.err", "wb")
        # --verbose: the supervisor logs each image it wrote with its time.
        launch_cmd = [stasis, "launch", "--coord-port", str(port), "-c", str(ckpt), "--verbose"]
        if compress:
            launch_cmd += ["--compress", compress]
        launch = subprocess.Popen(
            launch_cmd + [jobwork, str(nprocs), str(nthreads), str(size), "mixed", str(work)],
            stdout=out, stderr=err, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
        procs.append(launch)

        def running():
            if launch.poll() is not None:
                raise RuntimeError(f"launch exited ({launch.returncode}): "
                                   f"{read_text(work / 'launch.err').strip()[-500:]}")
            return (read_text(work / "launch.out").count("ready") == nprocs
                    and all(read_text(h).strip() for h in hbs))
        wait_until(running, 600, "every process to fill its memory and every thread to beat")

        result["cont_s"] = stop_cont_latency(jobwork, port, hbs, nprocs)

        t0 = time.monotonic()
        r = subprocess.run([stasis, "checkpoint"], capture_output=True, text=True, env=env,
                           timeout=1800)
        result["ckpt_s"] = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError(f"stasis checkpoint failed: {r.stderr.strip()[-500:]}")
        m = re.search(r"checkpoint (\d+) complete: (\S+)", r.stdout + r.stderr)
        manifest = json.loads(pathlib.Path(m.group(2)).read_text())
        if len(manifest["processes"]) != nprocs:
            raise RuntimeError(f"checkpoint holds {len(manifest['processes'])} processes, "
                               f"expected {nprocs}")
        result["image_bytes"] = sum(p["image_size"] for p in manifest["processes"])
        # Images are written one process after the other while the whole job
        # stays quiesced; the rest of ckpt_s is quiesce, barrier and manifest.
        wrote = re.findall(r"wrote \S+_000001\.stasis \(\d+ bytes, ([0-9.]+) s\)",
                           read_text(work / "launch.err"))
        if len(wrote) != nprocs:
            raise RuntimeError(f"expected {nprocs} 'wrote' lines from the supervisor, got {len(wrote)}")
        result["dump_s"] = sum(float(x) for x in wrote)

        # The resumed job must still be right: verify, and it exits 0.
        (work / "verify").touch()
        try:
            rc = launch.wait(timeout=600)
        except subprocess.TimeoutExpired:
            raise RuntimeError("the resumed job did not finish verifying within 600 s")
        if rc != 0:
            raise RuntimeError(f"the resumed job exited {rc}: "
                               f"{read_text(work / 'launch.err').strip()[-500:]}")
        verified("launch.out")
        (work / "verify").unlink()
        kill_port(port)

        before = {h: read_text(h) for h in hbs}
        rout = open(work / "restart.out", "wb")
        rerr = open(work / "restart.err", "wb")
        t0 = time.monotonic()
        restart = subprocess.Popen([stasis, "restart", str(ckpt)], stdout=rout, stderr=rerr,
                                   env=env, start_new_session=True, stdin=subprocess.DEVNULL)
        procs.append(restart)
        waiting = set(hbs)

        def beat():
            if restart.poll() is not None:
                raise RuntimeError(f"restart exited ({restart.returncode}): "
                                   f"{read_text(work / 'restart.err').strip()[-500:]}")
            for h in list(waiting):
                now = read_text(h)
                if now.strip() and now != before[h]:
                    waiting.discard(h)
                    result.setdefault("first_s", time.monotonic() - t0)
            return not waiting
        wait_until(beat, 1800, "every thread to beat after restart")
        result["restart_s"] = time.monotonic() - t0

        (work / "verify").touch()
        try:
            rc = restart.wait(timeout=600)
        except subprocess.TimeoutExpired:
            raise RuntimeError("the restarted job did not finish verifying within 600 s")
        if rc != 0:
            raise RuntimeError(f"the restarted job exited {rc}: "
                               f"{read_text(work / 'restart.err').strip()[-500:]}")
        verified("restart.out")
        result["verified"] = True
    except Exception as e:  # report and go on with the next configuration
        result["error"] = str(e)
        if verbose:
            for name in ("launch.out", "launch.err", "restart.out", "restart.err"):
                print(f"  {name}: {read_text(work / name)[-2000:]}", file=sys.stderr)
    finally:
        for p in procs:
            kill_group(p)
            p.wait()
        kill_port(port)
        shutil.rmtree(work, ignore_errors=True)
    return result


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def repeat_job(repeat, *args):
    """Runs run_job `repeat` times; the median of each measurement, or the first error."""
    runs = []
    for _ in range(repeat):
        r = run_job(*args)
        if "error" in r:
            return r
        runs.append(r)
    return {k: median([r[k] for r in runs]) for k in runs[0] if k != "verified"}


def job_row(label, r, mem_bytes):
    if "error" in r:
        return f"| {label} | error: {r['error'][:300]} | | | | | | | |"
    return (f"| {label} | {r['ckpt_s']:.2f} | {r['dump_s']:.2f} | {r['image_bytes'] / 2**20:.1f} | "
            f"{mem_bytes / r['ckpt_s'] / 1e9:.2f} | {r['first_s']:.2f} | {r['restart_s']:.2f} | "
            f"{r['cont_s']:.2f} | {r['load1']:.1f} |")


def job_fits(nprocs, size, root):
    # Every process plus the image on tmpfs (at most the memory) plus room;
    # the resumed job has exited before the restarted one fills its memory.
    need = 2 * nprocs * size + (512 << 20)
    return mem_available() >= need and shutil.disk_usage(root).free >= nprocs * size + (256 << 20)


def suite_procs(a, stasis, jobwork):
    size = parse_size(a.proc_size)
    print(f"## Processes: a job of N processes x {a.proc_size} of mixed data, one busy thread each")
    print()
    print("| processes | checkpoint (s) | writing images (s) | image (MiB) | checkpoint GB/s of memory | restart until first runs (s) | restart until all run (s) | SIGCONT until all run (s) | load avg |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    sys.stdout.flush()
    for n in [int(x) for x in a.procs.split(",") if x.strip()]:
        if not job_fits(n, size, a.ckpt_root):
            print(f"| {n} | skipped: needs ~{(2 * n * size) >> 20} MiB available | | | | | | | |")
        else:
            r = repeat_job(a.repeat, stasis, jobwork, n, 1, size, a.ckpt_root, a.compress,
                           a.verbose)
            print(job_row(str(n), r, n * size))
        sys.stdout.flush()
    print()


def suite_threads(a, stasis, jobwork):
    size = parse_size(a.thread_size)
    print(f"## Threads: one process with T busy threads and {a.thread_size} of mixed data")
    print()
    print("| threads | checkpoint (s) | writing images (s) | image (MiB) | checkpoint GB/s of memory | restart until first runs (s) | restart until all run (s) | SIGCONT until all run (s) | load avg |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    sys.stdout.flush()
    for t in [int(x) for x in a.threads.split(",") if x.strip()]:
        if not job_fits(1, size, a.ckpt_root):
            print(f"| {t} | skipped: needs ~{(2 * size) >> 20} MiB available | | | | | | | |")
        else:
            r = repeat_job(a.repeat, stasis, jobwork, 1, t, size, a.ckpt_root, a.compress,
                           a.verbose)
            print(job_row(str(t), r, size))
        sys.stdout.flush()
    print()


def fmt(v, f):
    return "–" if v is None else f.format(v)


def suite_memory(a, stasis, memwork):
    sizes = [s.strip().upper() for s in a.sizes.split(",") if s.strip()]
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    print("## Memory: one process, memory size x data kind")
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
    print()


SUITES = ["memory", "procs", "threads"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("STASIS_BUILD_DIR", str(REPO / "build")))
    ap.add_argument("--suites", default=",".join(SUITES), help="comma list of memory,procs,threads")
    ap.add_argument("--sizes", default="256M,1G,4G", help="memory: comma list of 256M,1G,4G")
    ap.add_argument("--kinds", default=",".join(KINDS), help="memory: comma list of random,zero,mixed")
    ap.add_argument("--procs", default="1,2,4,8", help="procs: comma list of process counts")
    ap.add_argument("--proc-size", default="512M", help="procs: memory per process")
    ap.add_argument("--threads", default="1,8,64", help="threads: comma list of thread counts")
    ap.add_argument("--thread-size", default="64M", help="threads: memory of the process")
    ap.add_argument("--repeat", type=int, default=1,
                    help="procs, threads: runs per configuration; the table shows medians")
    ap.add_argument("--ckpt-root", default="/dev/shm", help="where checkpoints are written (tmpfs)")
    ap.add_argument("--compress", default=None, help="passed to stasis launch --compress")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()

    stasis = str(pathlib.Path(a.build) / "bin" / "stasis")
    memwork = str(pathlib.Path(a.build) / "workloads" / "memwork")
    jobwork = str(pathlib.Path(a.build) / "workloads" / "jobwork")
    for f in (stasis, memwork, jobwork):
        if not os.access(f, os.X_OK):
            sys.exit(f"bench: {f} not found; build first (bench/run.sh does)")
    suites = [x.strip() for x in a.suites.split(",") if x.strip()]
    for x in suites:
        if x not in SUITES:
            sys.exit(f"bench: unknown suite {x} (use {', '.join(SUITES)})")
    for s in a.sizes.split(","):
        if s.strip() and s.strip().upper() not in SIZES:
            sys.exit(f"bench: unknown size {s} (use {', '.join(SIZES)})")
    for k in a.kinds.split(","):
        if k.strip() and k.strip() not in KINDS:
            sys.exit(f"bench: unknown kind {k} (use {', '.join(KINDS)})")
    try:
        parse_size(a.proc_size)
        parse_size(a.thread_size)
    except ValueError as e:
        sys.exit(f"bench: {e}")
    if a.repeat < 1:
        sys.exit("bench: --repeat must be at least 1")

    uname = os.uname()
    print(f"# Stasis benchmark: {uname.sysname} {uname.release}, {os.cpu_count()} CPUs, "
          f"{mem_available() >> 30} GiB available, checkpoints in {a.ckpt_root}"
          f"{', compress ' + a.compress if a.compress else ''}; "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average {read_text('/proc/loadavg').split()[0]}")
    print()
    sys.stdout.flush()
    if "memory" in suites:
        suite_memory(a, stasis, memwork)
    if "procs" in suites:
        suite_procs(a, stasis, jobwork)
    if "threads" in suites:
        suite_threads(a, stasis, jobwork)


if __name__ == "__main__":
    main()
