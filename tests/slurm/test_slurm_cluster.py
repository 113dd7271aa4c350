"""The real single-node Slurm cluster of cluster/slurm/ (Debian's slurm-wlm packages).

These tests start the cluster if needed (cluster/slurm/start.sh is idempotent) and leave it
running for the other tests. They FAIL, never skip, when Slurm cannot be started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support import ROOT

REPO = ROOT
SLURM_DIR = REPO / "cluster" / "slurm"
START, STOP, STATUS = (SLURM_DIR / f"{n}.sh" for n in ("start", "stop", "status"))

pytestmark = pytest.mark.slurm


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _describe(p: subprocess.CompletedProcess[str]) -> str:
    return f"{p.args} -> rc={p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


def _start(*args: str) -> subprocess.CompletedProcess[str]:
    # Generous timeout: a machine without the packages installs them first (~10 s).
    p = _run([START, *args], timeout=600)
    if p.returncode != 0:
        pytest.fail(f"cluster/slurm/start.sh failed:\n{_describe(p)}")
    return p


def _slurm_conf() -> str:
    p = _run(["bash", "-c", 'source "$1" && printf %s "$SLURM_CONF"', "_", SLURM_DIR / "env.sh"])
    assert p.returncode == 0 and p.stdout, _describe(p)
    return p.stdout


@pytest.fixture(scope="module")
def slurm_env() -> dict[str, str]:
    """Environment for Slurm client commands, with the cluster up."""
    _start()
    return {**os.environ, "SLURM_CONF": _slurm_conf()}


def _squeue_ids(env: dict[str, str]) -> list[str]:
    p = _run(["squeue", "-h", "-o", "%A"], env=env)
    assert p.returncode == 0, _describe(p)
    return p.stdout.split()


def _job_field(env: dict[str, str], job_id: str, field: str) -> str:
    p = _run(["scontrol", "-o", "show", "job", job_id], env=env)
    assert p.returncode == 0, _describe(p)
    for item in p.stdout.split():
        key, _, value = item.partition("=")
        if key == field:
            return value
    raise AssertionError(f"no {field} in: {p.stdout}")


def _wait(pred, timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll pred() until true; return the seconds it took, fail after timeout."""
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - t0


def _sbatch(env: dict[str, str], *args: str) -> str:
    p = _run(["sbatch", "--parsable", "-o", "/dev/null", *args], env=env)
    assert p.returncode == 0, _describe(p)
    return p.stdout.strip().split(";")[0]


def _project_python() -> str:
    venv_python = REPO / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def test_start_is_idempotent_and_fast(slurm_env: dict[str, str]) -> None:
    conf = Path(slurm_env["SLURM_CONF"])
    run_dir = conf.parent.parent / "run"
    before = (conf.stat().st_mtime_ns, sorted(p.read_text() for p in run_dir.glob("*.pid")))
    for _ in range(2):     # its speed is in benchmarks/latencies.py
        p = _start()
        assert "is up" in p.stdout and f"export SLURM_CONF={conf}" in p.stdout, _describe(p)
    after = (conf.stat().st_mtime_ns, sorted(p.read_text() for p in run_dir.glob("*.pid")))
    assert after == before, "a second start.sh changed the config or restarted a daemon"


def test_status_ok(slurm_env: dict[str, str]) -> None:
    p = _run([STATUS])
    assert p.returncode == 0, _describe(p)
    assert p.stdout.startswith("node "), _describe(p)


def test_srun_mpi_two_ranks(slurm_env: dict[str, str]) -> None:
    code = "from mpi4py import MPI; c = MPI.COMM_WORLD; print(c.Get_rank(), c.Get_size())"
    p = _run(
        ["srun", "--mpi=pmi2", "-n", "2", "-t", "2", _project_python(), "-c", code],
        env=slurm_env,
        timeout=120,
    )
    assert p.returncode == 0, _describe(p)
    assert sorted(p.stdout.splitlines()) == ["0 2", "1 2"], _describe(p)


def test_sbatch_round_trip(slurm_env: dict[str, str]) -> None:
    """A batch job runs and completes (its round-trip time is in benchmarks/latencies.py)."""
    job = _sbatch(slurm_env, "-t", "1", "--wrap", "sleep 1")
    _wait(lambda: job not in _squeue_ids(slurm_env), 60, f"job {job} to leave the queue")
    # MinJobAge keeps the finished job visible to scontrol for a while.
    assert _job_field(slurm_env, job, "JobState") == "COMPLETED"
    assert _job_field(slurm_env, job, "ExitCode") == "0:0"


def test_scancel_running_job_empties_queue(slurm_env: dict[str, str]) -> None:
    # (The minimum walltime is 1 min, too slow to test expiry; test scancel instead.)
    job = _sbatch(slurm_env, "-t", "5", "--wrap", "sleep 300")
    _wait(lambda: _job_field(slurm_env, job, "JobState") == "RUNNING", 30, f"job {job} to run")
    p = _run(["scancel", job], env=slurm_env)
    assert p.returncode == 0, _describe(p)
    _wait(lambda: job not in _squeue_ids(slurm_env), 30, f"job {job} to leave the queue")
    assert _job_field(slurm_env, job, "JobState") == "CANCELLED"
    assert _squeue_ids(slurm_env) == [], "squeue is not empty after scancel"


def test_stop_then_status_fails_then_start_again(slurm_env: dict[str, str]) -> None:
    """Last in the module: leaves the cluster running again for the other tests."""
    # stop.sh forgets the accounting mode; bring the cluster back the way it was.
    accounting = (Path(slurm_env["SLURM_CONF"]).parent.parent / "accounting").exists()
    try:
        p = _run([STOP], timeout=120)
        assert p.returncode == 0, _describe(p)
        p = _run([STATUS])
        assert p.returncode == 1, _describe(p)
        assert len(p.stdout.strip().splitlines()) == 1 and "DOWN" in p.stdout, _describe(p)
        p = _run([STOP])  # idempotent
        assert p.returncode == 0, _describe(p)
    finally:
        _start(*(["--accounting"] if accounting else []))  # whatever happened above
    p = _run([STATUS])
    assert p.returncode == 0, _describe(p)
    p = _run(["srun", "-N1", "-t", "1", "hostname"], env=slurm_env, timeout=60)
    assert p.returncode == 0 and p.stdout.strip(), _describe(p)
