"""A real single-node Slurm for the Slurm tests (tests/slurm/slurm_cluster.sh).

Session fixture `slurm`: starts munged, slurmctld and slurmd on this machine
(root only), waits until the node is idle, and stops them at the end.
Without root, or without slurm-wlm installed, the tests are skipped, except in
CI (CI=true), where that is an error.  The build directory comes from
STASIS_BUILD_DIR (ctest sets it), else <repo>/build.
"""

import os
import pathlib
import shutil
import signal
import subprocess

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
CLUSTER = HERE / "slurm_cluster.sh"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test time limit (SIGALRM)")


@pytest.fixture(autouse=True)
def _per_test_timeout(request):
    marker = request.node.get_closest_marker("timeout")
    seconds = int(marker.args[0]) if marker else 300

    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded its time limit of {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _unavailable(reason):
    if IN_CI:
        pytest.fail(f"Slurm tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def build_dir():
    d = pathlib.Path(os.environ.get("STASIS_BUILD_DIR", REPO / "build"))
    if not (d / "bin" / "stasis").exists():
        _unavailable(f"no stasis binary in {d}/bin (build first)")
    return d


@pytest.fixture(scope="session")
def slurm():
    if os.geteuid() != 0:
        _unavailable("the Slurm tests start slurmctld/slurmd and need root")
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        _unavailable("slurm-wlm/munge not installed (tests/slurm/slurm_cluster.sh install)")
    r = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"could not start Slurm:\n{r.stdout}\n{r.stderr}")
    yield
    subprocess.run([str(CLUSTER), "stop"], capture_output=True, text=True, timeout=60)
