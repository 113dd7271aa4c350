"""Real-scheduler tier: ``python run.py machine=docker-slurm`` through Parsl's SlurmProvider
on the single-node Slurm that ``cluster/slurm/start.sh`` starts from Debian's packages.

A Slurm that cannot be started is a failure here, never a skip.
"""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, RunPy, Store, slurm_env

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]
SLURM = ROOT / "cluster" / "slurm"


def squeue_ids() -> list[str]:
    """Job ids in the queue."""
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                         env=slurm_env(), timeout=30, check=True)
    return out.stdout.split()


@pytest.fixture(scope="module", autouse=True)
def slurm() -> Iterator[None]:
    """Start (or reuse) the local Slurm; fail loudly when it cannot start."""
    proc = subprocess.run(["bash", str(SLURM / "start.sh")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"cluster/slurm/start.sh failed:\n{proc.stdout}\n{proc.stderr}"
    yield


def test_mpi4py_import_runs_under_srun(run_py: RunPy, store: Store, tmp_path: Path) -> None:
    run_py("machine=docker-slurm", "fs=scratch", "bench=mpi4py_import", "bench.ranks=2",
           "bench.trials=2", *store.overrides(), check=True)
    run = store.runs()[0]
    assert run.info.status == "FINISHED"
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["scheduler.job_id"].isdigit(), tags
    assert run.data.params["machine.launcher"] == "srun"
    assert metrics["ranks_seen"] == 2.0
    local = store.client().download_artifacts(run.info.run_id, "results/per_rank.csv",
                                              str(tmp_path))
    with open(local) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    steps = {(r["trial"], r["launch_step"]) for r in rows}
    assert steps == {("0", "0"), ("1", "1")}    # one srun step per trial, both ranks in it
    assert tags["scheduler.job_id"] not in squeue_ids()   # the block was cancelled


def test_walltime_exceeded_ends_failed_and_cancels_the_block(run_py: RunPy,
                                                              store: Store) -> None:
    proc = run_py("machine=docker-slurm", "fs=scratch", "machine.walltime_min=1",
                  "bench.trials=1000", "bench.timeout_s=900", *store.overrides(), timeout=600)
    assert proc.returncode == 1, proc.stderr
    run = store.runs()[0]
    assert run.info.status == "FAILED"
    tags = run.data.tags
    assert tags["failure.kind"] == "walltime", tags
    assert "exceeded its walltime" in tags["failure.message"]
    assert "TimeLimit" in tags["failure.message"] or "TIME LIMIT" in tags["failure.message"]
    done = store.client().get_metric_history(run.info.run_id, "total_s")
    assert 1 <= len(done) < 1000   # the trials that completed stay logged; the rest did not run
    assert squeue_ids() == []


def test_slurm_down_is_a_clear_error_not_a_hang(run_py: RunPy, store: Store) -> None:
    subprocess.run(["bash", str(SLURM / "stop.sh")], check=True, timeout=120,
                   capture_output=True)
    try:   # a hang would end in run_py's TimeoutExpired
        proc = run_py("machine=docker-slurm", "fs=scratch", "bench.trials=1",
                      *store.overrides(), timeout=300)
    finally:
        subprocess.run(["bash", str(SLURM / "start.sh")], check=True, timeout=600,
                       capture_output=True)
    # One line before any run is opened (it used to open a run and fail deep in Parsl).
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "controller" in lines[0] and "cluster/slurm/start.sh" in lines[0]
    assert store.runs() == []


def test_more_nodes_than_the_partition_has_is_one_line_before_a_run(run_py: RunPy,
                                                                   store: Store) -> None:
    proc = run_py("machine=docker-slurm", "fs=scratch", "machine.nodes=99", "bench.trials=1",
                  *store.overrides(), timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "machine.nodes=99 exceeds partition debug: sinfo reports" in lines[0]
    assert store.runs() == []


def test_osu_command_and_parsl_perf_run_on_slurm(run_py: RunPy, store: Store) -> None:
    run_py("machine=docker-slurm", "bench=osu", "bench.tests=[latency,bw]", "bench.max_size=64",
           "bench.trials=1", *store.overrides(), check=True)
    osu = store.runs("osu")[0]
    assert osu.info.status == "FINISHED" and osu.data.tags["scheduler.job_id"].isdigit()
    steps = [m.step for m in store.client().get_metric_history(osu.info.run_id, "osu_latency")]
    assert sorted(steps) == [1, 2, 4, 8, 16, 32, 64]
    run_py("machine=docker-slurm", "bench=command", "bench.params.n=1000", "bench.trials=1",
           *store.overrides(), check=True)
    assert store.runs("command")[0].info.status == "FINISHED"
    run_py("machine=docker-slurm", "bench=parsl_perf", "bench.time=1", *store.overrides(),
           check=True, timeout=300)
    perf = store.runs("parsl_perf")[0]
    assert perf.info.status == "FINISHED" and perf.data.metrics["tasks_per_s_final"] > 1
    assert squeue_ids() == []


def test_a_sweep_across_local_and_slurm_runs_on_both(run_py: RunPy, store: Store) -> None:
    proc = run_py("-m", "machine=local,docker-slurm", "fs=tmpfs", "bench=sleep",
                  "bench.params.seconds=0", "bench.trials=1,2", *store.overrides(), check=True)
    kids = [r for r in store.runs("sleep") if "mlflow.parentRunId" in r.data.tags]
    assert len(kids) == 4 and {r.info.status for r in kids} == {"FINISHED"}, proc.stderr
    assert sorted(r.data.tags["machine"] for r in kids) == ["docker-slurm"] * 2 + ["local"] * 2
    on_slurm = [r for r in kids if r.data.tags["machine"] == "docker-slurm"]
    assert all(r.data.tags["scheduler.job_id"].isdigit() for r in on_slurm)
    assert len({r.data.tags["mlflow.parentRunId"] for r in kids}) == 1
