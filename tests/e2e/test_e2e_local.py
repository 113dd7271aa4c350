"""Local end-to-end tier: ``python run.py`` in a subprocess, real MPI ranks (the mpich
wheel), the real Parsl HighThroughputExecutor, a temporary SQLite MLflow store."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, RunPy, Store, child_env

pytestmark = pytest.mark.e2e


def test_run_py_records_a_finished_run(run_py: RunPy, store: Store, tmp_path: Path) -> None:
    proc = run_py("bench.ranks=2", "bench.trials=2", "bench.warmup=1", "+tags.purpose=e2e",
                  *store.overrides(), check=True)
    assert "mlflow ui --backend-store-uri" in proc.stdout and store.uri in proc.stdout
    assert "total_s" in proc.stdout and "slowest_rank_s" in proc.stdout
    runs = store.runs()
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    p, t, m = run.data.params, run.data.tags, run.data.metrics
    assert p["bench.ranks"] == "2" and p["bench.trials"] == "2" and p["machine.name"] == "local"
    assert p["bench.packages"] == '["numpy"]' and p["fs.name"] == "tmpfs"
    assert (t["machine"], t["fs"], t["bench"], t["purpose"]) == ("local", "tmpfs",
                                                                 "mpi4py_import", "e2e")
    for key in ("host", "user", "version.python", "version.mlflow", "version.parsl",
                "version.mpi4py", "config.hash", "git.commit", "git.dirty", "env.hash"):
        assert t.get(key), key
    assert t["mlflow.source.git.commit"] == t["git.commit"]
    assert m["ranks_seen"] == 2.0
    for key in ("stage.env_s", "stage.stage_s", "stage.warmup_s", "stage.bench_s",
                "warmup.import_s", "total_s.median", "total_s.min", "total_s.max",
                "total_s.std", "total_s.cv", "slowest_rank_s.mean", "peak_rss_mb.max"):
        assert key in m, key
    assert 0 < m["slowest_rank_s.median"] < m["total_s.median"]
    if os.environ.get("CI"):      # CI installs strace (cluster/host-packages.sh): it must work
        assert t["warmup.strace"] == "ok", t["warmup.strace"]
    if t["warmup.strace"] == "ok":
        assert m["warmup.syscalls.openat"] > 50
    else:
        assert t["warmup.strace"].startswith("unavailable")
    history = store.client().get_metric_history(run.info.run_id, "total_s")
    assert sorted(h.step for h in history) == [0, 1]
    arts = store.artifact_paths(run.info.run_id)
    for expected in ("results/per_rank.csv", "config/config.yaml", "config/overrides.yaml",
                     "config/resolved.yaml", "env/bench-freeze.txt",
                     "logs/bench/trial-0.stdout.log", "logs/bench/trial-1.stderr.log",
                     "logs/bench/warmup-0.stdout.log", "logs/warmup/warmup.stdout.log"):
        assert expected in arts, (expected, arts)
    local = store.client().download_artifacts(run.info.run_id, "results/per_rank.csv",
                                              str(tmp_path))
    with open(local) as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["trial"], r["rank"]) for r in rows] == [("0", "0"), ("0", "1"), ("1", "0"),
                                                       ("1", "1")]
    assert all(float(r["import_s"]) > 0 for r in rows)
    freeze = store.client().download_artifacts(run.info.run_id, "env/bench-freeze.txt",
                                               str(tmp_path))
    assert "mpi4py==" in Path(freeze).read_text()


def test_unknown_package_ends_the_run_failed_with_its_cause(run_py: RunPy, store: Store) -> None:
    proc = run_py("bench.packages=[numpy,no_such_pkg_xyz]", "bench.trials=1",
                  *store.overrides())
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "no_such_pkg_xyz" in last and "FAILED" in last
    run = store.runs()[0]
    assert run.info.status == "FAILED"
    tags = run.data.tags
    assert (tags["failure.stage"], tags["failure.kind"]) == ("warmup", "sanity")
    assert "No module named 'no_such_pkg_xyz'" in tags["failure.message"]


@pytest.mark.parametrize(("args", "expected"), [
    (["bench.ranks=0"], "bench.ranks=0 is too small"),
    (["bench.ranks=two"], "bench.ranks='two' is not a whole number"),
    (["machine=nowhere"], "valid options for machine: "),
    (["fs=nowhere"], "valid options for fs: "),
    (["bench.env=missing_spec"], "has no spec"),
    (["machine.retries=-1"], "machine.retries=-1 is too small; give an integer >= 0"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_recorded(run_py: RunPy, store: Store,
                                                           args: list[str], expected: str) -> None:
    proc = run_py(*args, *store.overrides(), timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert store.runs() == []


def test_ctrl_c_ends_the_run_killed(store: Store, tmp_path: Path) -> None:
    argv = [sys.executable, str(ROOT / "run.py"), "bench.trials=500", *store.overrides(),
            f"hydra.run.dir={tmp_path}/out"]
    store.client().search_experiments()   # create the schema first: the test polls the DB
    proc = subprocess.Popen(argv, env=child_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            runs = store.runs()
            if runs and "stage.warmup_s" in runs[0].data.metrics:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
        time.sleep(3)       # let a few trials complete
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    run = store.runs()[0]
    assert run.info.status == "KILLED"
    assert run.data.tags["failure.kind"] == "interrupted"
    done = store.client().get_metric_history(run.info.run_id, "total_s")
    assert 1 <= len(done) < 500    # the trials completed before Ctrl-C stay logged


def test_a_store_that_cannot_be_opened_is_one_line_exit_2(run_py: RunPy, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be")
    proc = run_py(f"tracking.uri=sqlite:///{blocker}/mlflow.db",
                  f"tracking.artifact_root={tmp_path}/a", "bench.trials=1", timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot open the MLflow store" in lines[0], proc.stderr
