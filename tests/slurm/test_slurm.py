"""Stasis under a real Slurm: the examples/slurm sbatch scripts submitted with
sbatch, requeued until done, killed and resubmitted.

Slurm delays a requeued job until its old credential expired (AuthInfo
cred_expire, 120 s by default); the test cluster sets 10 s.
"""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import time

import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples" / "slurm"
SYS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Debian's python3, with numpy
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


@pytest.fixture
def work(slurm, build_dir):
    d = pathlib.Path(tempfile.mkdtemp(prefix="stasis-slurm-"))
    os.chmod(d, 0o755)
    jobs = []
    yield d, build_dir, jobs
    for j in jobs:
        subprocess.run(["scancel", j], capture_output=True)
    for j in jobs:  # let the job's processes go before removing their files
        for _ in range(100):
            if job_field(j, "JobState") in FINAL_STATES | {None}:
                break
            time.sleep(0.2)
    shutil.rmtree(d, ignore_errors=True)


def submit(work, script, *args, **env):
    d, build, jobs = work
    exports = {"STASIS": str(build / "bin" / "stasis"), "EXAMPLES": str(EXAMPLES), "PATH": SYS_PATH, **env}
    export = "ALL," + ",".join(f"{k}={v}" for k, v in exports.items())
    r = subprocess.run(["sbatch", "--parsable", f"--chdir={d}", f"--export={export}", *args,
                        str(EXAMPLES / script)], capture_output=True, text=True, check=True)
    job = r.stdout.strip().split(";")[0]
    jobs.append(job)
    return job


def job_fields(job):
    r = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True)
    if r.returncode != 0:
        return {}
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", r.stdout))


def job_field(job, name):
    return job_fields(job).get(name)


def wait_job(job, timeout, states=FINAL_STATES):
    """Polls until the job is in one of `states`; returns (state, fields)."""
    deadline = time.time() + timeout
    f = {}
    while time.time() < deadline:
        f = job_fields(job)
        state = f.get("JobState")
        if state in states:
            return state, f
        time.sleep(0.5)
    pytest.fail(f"job {job} not in {states} after {timeout}s: {f}")


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out ({timeout}s) waiting for {what}")


def read(path):
    return path.read_text() if path.exists() else ""


def numpy_expected(n, size=200):
    rng = np.random.default_rng(12345)
    lines = ["Code started"]
    for i in range(n):
        a = rng.random((size, size))
        b = rng.random((size, size))
        lines.append(f"iter {i:4d} result {np.matmul(a, b).sum():.6f}")
    return lines + ["done"]


def manifests(ckpt):
    return sorted(ckpt.glob("stasis_manifest_*.json"))


@pytest.mark.timeout(330)
def test_signal_before_walltime_requeues_until_done(work):
    """count.py, 1-minute jobs, USR1 20 s before the end: checkpoint, requeue,
    restart, until done; the appended output equals an uninterrupted run."""
    d = work[0]
    n = 100
    job = submit(work, "signal_requeue.sbatch", COUNT=n)
    state, f = wait_job(job, 300)
    out, err = read(d / "count.out"), read(d / "count.err")
    assert state == "COMPLETED", f"{state}\n{err}"
    assert out.split() == [str(i) for i in range(n)] + ["done"], err
    assert int(f["Restarts"]) >= 1
    assert "stasis run: launching" in err and "SLURM_RESTART_COUNT=unset" in err
    assert re.search(r"restarting from .*stasis_manifest_\d+\.json \(SLURM_RESTART_COUNT=[1-9]", err), err
    assert "received SIGUSR1" in err and "requeueing Slurm job " + job in err


@pytest.mark.timeout(150)
def test_checkpointer_style_checkpoint_after(work):
    """Gizmo's checkpointer: STASIS_CHECKPOINT_AFTER=10 s, requeue, continue."""
    d = work[0]
    n = 40
    job = submit(work, "checkpointer.sbatch", ITERS=n, STASIS_CHECKPOINT_AFTER="0-0:00:10")
    state, f = wait_job(job, 140)
    out, err = read(d / "ckptr.out"), read(d / "ckptr.err")
    assert state == "COMPLETED", f"{state}\n{err}"
    assert out.splitlines() == numpy_expected(n), err
    assert int(f["Restarts"]) >= 1
    assert "--checkpoint-after 0-0:00:10 reached" in err


@pytest.mark.timeout(150)
def test_scancel_kill_then_resubmit_continues_from_last_periodic_checkpoint(work):
    d = work[0]
    n = 40
    ckpt = d / "ckpt-lor"
    job = submit(work, "launch_or_restart.sbatch", ITERS=n, STASIS_INTERVAL=2)
    wait_for(lambda: len(manifests(ckpt)) >= 2 and read(d / "numpy.out").count("iter") >= 8, 60,
             "two periodic checkpoints")
    subprocess.run(["scancel", "--signal=KILL", job], check=True)
    wait_job(job, 60)
    last = manifests(ckpt)[-1]
    job2 = submit(work, "launch_or_restart.sbatch", ITERS=n, STASIS_INTERVAL=2)
    state, _ = wait_job(job2, 100)
    out, err = read(d / "numpy.out"), read(d / "numpy.err")
    assert state == "COMPLETED", f"{state}\n{err}"
    assert f"restarting from {last}" in err, err
    # The lines after the last checkpoint are printed again; dropping the
    # repeats gives the uninterrupted output.
    seen = []
    for line in out.splitlines():
        if line not in seen:
            seen.append(line)
    assert seen == numpy_expected(n)


@pytest.mark.timeout(150)
def test_corrupt_newest_checkpoint_falls_back_to_previous(work):
    d = work[0]
    n = 30
    ckpt = d / "ckpt-lor"
    job = submit(work, "launch_or_restart.sbatch", ITERS=n, STASIS_INTERVAL=2)
    wait_for(lambda: len(manifests(ckpt)) >= 2, 60, "two checkpoints")
    subprocess.run(["scancel", "--signal=KILL", job], check=True)
    wait_job(job, 60)
    newest, previous = manifests(ckpt)[-1], manifests(ckpt)[-2]
    gen = re.search(r"(\d+)\.json$", newest.name).group(1)
    for img in ckpt.glob(f"*_{gen}.stasis"):
        data = bytearray(img.read_bytes())
        for off in range(len(data) // 2, len(data), 4096):
            data[off] ^= 0xFF
        img.write_bytes(bytes(data))
    job2 = submit(work, "launch_or_restart.sbatch", ITERS=n, STASIS_INTERVAL=2)
    state, _ = wait_job(job2, 100)
    out, err = read(d / "numpy.out"), read(d / "numpy.err")
    assert state == "COMPLETED", f"{state}\n{err}"
    assert f"trying the previous checkpoint {previous}" in err, err
    assert out.splitlines()[-1] == "done"


@pytest.mark.timeout(120)
def test_second_job_with_same_ckptdir_fails_with_lock_error(work):
    d = work[0]
    ckpt = d / "ckpt-lor"
    first = submit(work, "launch_or_restart.sbatch", ITERS=400, STASIS_INTERVAL=0)
    wait_for(lambda: "Code started" in read(d / "numpy.out"), 60, "the first job to start")
    second = submit(work, "launch_or_restart.sbatch", "--output=second.out", "--error=second.err",
                    ITERS=5)
    state, _ = wait_job(second, 60)
    err = read(d / "second.err")
    assert state == "FAILED", err
    assert f"checkpoint directory {ckpt} is in use by another job" in err
    assert f"Slurm job {first}" in err
    assert job_field(first, "JobState") == "RUNNING"
    subprocess.run(["scancel", first], check=True)


@pytest.mark.timeout(200)
def test_periodic_and_checkpoint_before_end_without_signal(work):
    """No --signal: stasis run reads the end time from Slurm and checkpoints
    30 s before it; periodic checkpoints (-i 10) keep running meanwhile."""
    d = work[0]
    n = 60
    job = submit(work, "periodic.sbatch", COUNT=n, STASIS_INTERVAL=10)
    state, f = wait_job(job, 190)
    out, err = read(d / "periodic.out"), read(d / "periodic.err")
    assert state == "COMPLETED", f"{state}\n{err}"
    assert out.split() == [str(i) for i in range(n)] + ["done"], err
    assert int(f["Restarts"]) >= 1
    assert "(--checkpoint-before-end)" in err
    # More checkpoints than requeues: the periodic ones.
    assert len(manifests(d / "ckpt-periodic")) >= 1
    assert int(re.findall(r"checkpoint (\d+) complete", err)[-1]) > int(f["Restarts"])


@pytest.mark.timeout(300)
def test_walltime_sigterm_without_signal_and_append_log(work):
    """No --signal: the SIGTERM at the time limit reaches every process; the
    program survives it (agent) until stasis run's checkpoint; requeue; the
    appended log reads as one run."""
    d = work[0]
    n = 110  # Slurm enforces the limit within 30 s: at least one SIGTERM
    job = submit(work, "append_log.sbatch", COUNT=n)
    state, f = wait_job(job, 290)
    log = read(d / "append.log")
    assert state == "COMPLETED", log
    assert int(f["Restarts"]) >= 1
    assert "received SIGTERM" in log and "requeueing Slurm job " + job in log
    numbers = [line for line in log.splitlines() if not line.startswith(("stasis", "slurmstepd"))]
    assert numbers == [str(i) for i in range(n)] + ["done"], log


def step_pids(job, comm):
    """Pids of processes named `comm` whose environment has SLURM_JOB_ID=job."""
    out = []
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if (p / "comm").read_text().strip() != comm:
                continue
            if f"SLURM_JOB_ID={job}".encode() in (p / "environ").read_bytes().split(b"\0"):
                out.append(int(p.name))
        except OSError:
            continue
    return out


@pytest.mark.timeout(260)
def test_step_signal_without_b_reaches_program_and_stasis_run(work):
    """--signal=USR1@20 without B: and `srun stasis run --requeue`: USR1 goes
    to every process of the step, the program too; the agent defers it and
    asks for the checkpoint, stasis run asks as well; one checkpoint per
    run, requeue, and the appended output equals an uninterrupted run."""
    d = work[0]
    n = 70
    job = submit(work, "step_signal.sbatch", COUNT=n, STASIS_COORD_LOG=d / "coord.log")
    state, f = wait_job(job, 250)
    out, err, coord = read(d / "step.out"), read(d / "step.err"), read(d / "coord.log")
    assert state == "COMPLETED", f"{state}\n{err}\n{coord}"
    assert out.split() == [str(i) for i in range(n)] + ["done"], err
    assert int(f["Restarts"]) >= 1
    assert "received SIGUSR1" in err and "requeueing Slurm job " + job in err
    # The program itself got the signal, survived it, and asked.
    assert re.search(r"pid \d+ \(python3\) on \S+ received SIGUSR1: checkpointing and stopping the job", coord), coord
    # Concurrent requests (program, stasis run) gave one checkpoint per stop.
    stops = err.count("job checkpointed and stopped")
    assert stops == int(f["Restarts"]), err
    assert len(re.findall(r"checkpoint \d+ started", coord)) == stops, coord


@pytest.mark.timeout(150)
def test_signal_to_the_program_only_stops_and_requeues(work):
    """Only the program receives the signal (stasis run does not): its agent
    asks for the checkpoint, the job stops, and stasis run still requeues."""
    d = work[0]
    n = 25
    job = submit(work, "step_signal.sbatch", "--time=5", COUNT=n)
    wait_for(lambda: "5" in read(d / "step.out").split(), 60, "the program to count to 5")
    pids = step_pids(job, "python3")
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGUSR1)
    state, f = wait_job(job, 120)
    out, err = read(d / "step.out"), read(d / "step.err")
    assert state == "COMPLETED", f"{state}\n{err}"
    assert out.split() == [str(i) for i in range(n)] + ["done"], err
    assert int(f["Restarts"]) == 1, err
    assert "stasis run: received SIG" not in err
    assert re.search(r"pid \d+ \(python3\) on \S+ received SIGUSR1: checkpoint \d+ complete: .*; job stopped", err), err
    assert "requeueing Slurm job " + job in err


def coordinator_pids(job):
    """The job's coordinator daemon(s) (`stasis coordinator`, started by stasis run)."""
    out = []
    for pid in step_pids(job, "stasis"):
        try:
            args = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"coordinator" in args:
            out.append(pid)
    return out


@pytest.mark.timeout(200)
def test_scancel_term_full_to_every_process_checkpoints_then_requeues(work):
    """`scancel --signal=TERM --full`: SIGTERM to the batch shell (stasis run)
    and every process of the job at once, the coordinator included: under
    proctrack/cgroup it is in the job's cgroup; this test cluster tracks
    processes by parentage (proctrack/linuxproc), from which the daemonized
    coordinator escapes, so the test signals it first, as the cgroup would.
    The coordinator stays until the final checkpoint is durable; stasis run
    checkpoints, requeues and exits 0; the requeued job continues; the
    appended log reads as one run."""
    d = work[0]
    n = 30
    job = submit(work, "append_log.sbatch", "--time=3", COUNT=n)
    wait_for(lambda: "5" in read(d / "append.log").split(), 60, "the program to count to 5")
    coords = coordinator_pids(job)
    assert len(coords) == 1, coords
    os.kill(coords[0], signal.SIGTERM)
    subprocess.run(["scancel", "--signal=TERM", "--full", job], check=True)
    state, f = wait_job(job, 180)
    log = read(d / "append.log")
    assert state == "COMPLETED", f"{state}\n{log}"
    assert int(f["Restarts"]) >= 1, log
    assert "received SIGTERM" in log and "requeueing Slurm job " + job in log, log
    numbers = [line for line in log.splitlines() if not line.startswith(("stasis", "slurmstepd"))]
    assert numbers == [str(i) for i in range(n)] + ["done"], log
