"""Sweeps: `python run.py -m …` through the Parsl launcher, under one MLflow parent run.

Every test runs the real run.py, the real Parsl HighThroughputExecutor and a real SQLite
store; the benchmark is ``bench=sleep`` (runners/benches/sleep.py), so a job is cheap.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from runners.sweep import jobs as sw
from tests.support import ROOT, RunPy, Store, child_env

pytestmark = pytest.mark.e2e
SLEEP = ["bench=sleep", "bench.params.seconds=0"]


def children(store: Store, experiment: str = "sleep") -> list:
    return [r for r in store.runs(experiment) if "mlflow.parentRunId" in r.data.tags]


def parents(store: Store, experiment: str = "sleep") -> list:
    return [r for r in store.runs(experiment) if "sweep.id" in r.data.tags
            and "mlflow.parentRunId" not in r.data.tags]


def test_2x2x2_sweep_gives_8_children_under_one_parent_then_resumes_all(
        run_py: RunPy, store: Store, tmp_path: Path) -> None:
    sweep = ["-m", "bench=sleep", "bench.params.seconds=0,0.1", "bench.trials=1,2",
             "bench.warmup=0,1", *store.overrides()]
    first = run_py(*sweep, check=True)
    kids = children(store)
    assert len(kids) == 8 and {r.info.status for r in kids} == {"FINISHED"}
    [parent] = parents(store)
    assert parent.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in kids} == {parent.info.run_id}
    assert parent.data.metrics["jobs_finished"] == 8 and parent.data.metrics["jobs_failed"] == 0
    combos = {(float(r.data.params["bench.params.seconds"]), r.data.params["bench.trials"],
               r.data.params["bench.warmup"]) for r in kids}
    assert combos == set(itertools.product([0.0, 0.1], ["1", "2"], ["0", "1"]))
    for r in kids:     # each child's params are its own point of the sweep
        point = dict(o.split("=") for o in r.data.tags["sweep.point"].split())
        assert float(point["bench.params.seconds"]) == float(r.data.params["bench.params.seconds"])
        assert point["bench.trials"] == r.data.params["bench.trials"]
        assert r.data.metrics["total_s.median"] >= 0   # the trials were measured
    # Hydra's contract: a directory per job with its .hydra/ files and log
    for num in range(8):
        assert (tmp_path / "multirun" / str(num) / ".hydra" / "overrides.yaml").is_file()
        assert (tmp_path / "multirun" / str(num) / "run.log").is_file()
    assert "8 finished, 0 failed" in first.stdout

    second = run_py(*sweep, check=True)
    assert "skipping 8 of 8 jobs that already FINISHED" in second.stderr
    assert len(children(store)) == 8                       # nothing ran again
    newest = parents(store)[0]
    assert newest.data.metrics["jobs_skipped"] == 8 and newest.info.status == "FINISHED"
    assert newest.data.tags["sweep.id"] == parent.data.tags["sweep.id"]

    third = run_py(*sweep[:-2], "bench.trials=1", "bench.warmup=0", "rerun=true",
                   *store.overrides(), check=True)
    assert "skipping" not in third.stderr and len(children(store)) == 10


def test_a_failing_point_fails_the_parent_and_only_that_child(run_py: RunPy,
                                                              store: Store) -> None:
    proc = run_py("-m", *SLEEP, "bench.params.exit=0,3,0", "bench.trials=1,2",
                  *store.overrides())
    assert proc.returncode == 1, proc.stderr
    kids = children(store)
    assert len(kids) == 6
    failed = [r for r in kids if r.info.status == "FAILED"]
    assert {r.data.params["bench.params.exit"] for r in failed} == {"3"} and len(failed) == 2
    assert all(r.data.tags["failure.stage"] == "bench" and "exited 3" in
               r.data.tags["failure.message"] for r in failed)
    assert sum(r.info.status == "FINISHED" for r in kids) == 4
    [parent] = parents(store)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["failure.message"] == "2 of 6 jobs failed"
    assert parent.data.metrics["jobs_failed"] == 2


def _marked(marker: str) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("BENCH_DRIVER") == marker:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def test_sigkill_mid_sweep_then_the_same_sweep_finishes_and_marks_stale_runs_killed(
        run_py: RunPy, store: Store, tmp_path: Path) -> None:
    sweep = ["-m", "bench=sleep", "bench.params.seconds=2,2.01,2.02,2.03",
             "hydra.launcher.concurrency=1", *store.overrides()]
    argv = [sys.executable, str(ROOT / "run.py"), *sweep, f"hydra.sweep.dir={tmp_path}/m1"]
    store.client().search_experiments()     # the store exists before two processes use it
    log = tmp_path / "driver.log"
    with open(log, "w") as fh:
        driver = subprocess.Popen(argv, stdout=fh, stderr=fh, env=child_env(), cwd=tmp_path)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        states = [r.info.status for r in children(store)]
        if states.count("FINISHED") >= 1 and "RUNNING" in states:   # one done, one running
            break
        time.sleep(0.3)
    else:
        driver.kill()
        pytest.fail(f"the sweep did not get going:\n{log.read_text()}")
    tags = children(store)[0].data.tags
    assert tags["driver.pid"] == str(driver.pid)
    marker = ":".join(tags[f"driver.{k}"] for k in ("host", "pid", "started"))
    assert _marked(marker)       # its workers carry the marker
    [parent0] = parents(store)
    listed = parent0.data.tags["driver.parsl_pids"]       # and its interchange is listed
    interchange = int(listed.split("@")[0])
    assert "interchange" in " ".join(psutil.Process(interchange).cmdline())
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    stale = [r.info.run_id for r in store.runs("sleep") if r.info.status == "RUNNING"]
    assert len(stale) >= 2                  # the running child and the parent

    again = run_py(*sweep, check=True)
    assert "marked KILLED" in again.stderr
    runs = {r.info.run_id: r for r in store.runs("sleep")}
    for run_id in stale:
        assert runs[run_id].info.status == "KILLED"
        assert runs[run_id].data.tags["failure.kind"] == "driver_killed"
    done = {float(r.data.params["bench.params.seconds"]) for r in children(store)
            if r.info.status == "FINISHED"}
    assert done == {2.0, 2.01, 2.02, 2.03}
    assert not _marked(marker)              # what the killed driver left was stopped
    assert not psutil.pid_exists(interchange) or psutil.Process(interchange).status() == "zombie"


def test_select_random_with_a_seed_is_reproducible(run_py: RunPy, store: Store) -> None:
    sweep = ["-m", *SLEEP, "bench.params.exit=0", "bench.trials=1,2,3",
             "+bench.params.pad=a,b,c", "select=random", "seed=11", *store.overrides()]
    draws = []
    for _ in range(2):
        proc = run_py(*sweep, check=True)
        assert "select=random seed=11: drew #" in proc.stderr
        draws.append(parents(store)[0].data.tags["sweep.draw"])
    assert draws[0] == draws[1]
    assert len(children(store)) == 2        # one job per draw, run again (not skipped)
    assert parents(store)[0].data.tags["sweep.seed"] == "11"
    expected, _ = sw.draw(list(range(9)), 11)    # type: ignore[arg-type]
    assert draws[0].startswith(f"#{expected} of 9")


def test_an_invalid_point_is_refused_before_anything_runs(run_py: RunPy, store: Store) -> None:
    proc = run_py("-m", *SLEEP, "fs=tmpfs,project", *store.overrides())
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "sweep point #1" in lines[0] and "fs=project" in lines[0]
    assert "skip_invalid=true" in lines[0]
    assert not store.db.exists()             # nothing recorded

    proc = run_py("-m", *SLEEP, "fs=tmpfs,project", "skip_invalid=true", *store.overrides(),
                  check=True)
    assert "skip #1 (fs=project): invalid" in proc.stderr
    [kid] = children(store)
    assert kid.data.tags["fs"] == "tmpfs"
    assert parents(store)[0].data.metrics["jobs_invalid"] == 1


@pytest.mark.parametrize("override, words", [
    ("bench.params.seconds=range(0)", "the sweep has no jobs"),
    ("bench.trials=1,x", "bench.trials='x' is not a whole number"),
    ("seed=abc", "could not be converted to Integer"),
    ("select=some", "select='some' is not valid"),
])
def test_bad_sweep_input_is_one_line_and_exit_2(run_py: RunPy, store: Store, override: str,
                                                 words: str) -> None:
    proc = run_py("-m", *SLEEP, override, *store.overrides())
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert not store.db.exists()


def test_the_basic_launcher_still_works(run_py: RunPy, store: Store) -> None:
    run_py("-m", *SLEEP, "bench.trials=1,2", "hydra/launcher=basic", *store.overrides(),
           check=True)
    kids = store.runs("sleep")
    assert len(kids) == 2 and {r.info.status for r in kids} == {"FINISHED"}


def test_sigterm_ends_the_sweep_killed_with_its_running_child(store: Store,
                                                              tmp_path: Path) -> None:
    argv = [sys.executable, str(ROOT / "run.py"), "-m", "bench=sleep",
            "bench.params.seconds=30,31", "hydra.launcher.concurrency=1", *store.overrides(),
            f"hydra.sweep.dir={tmp_path}/m"]
    store.client().search_experiments()
    driver = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=child_env(), cwd=tmp_path, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
            r.info.status == "RUNNING" for r in children(store)):
        time.sleep(0.3)
    time.sleep(1.0)     # the trial is running in a worker
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err
    assert "interrupted [sweep run" in err
    [kid] = children(store)                         # the second job never started
    assert kid.info.status == "KILLED" and kid.data.tags["failure.kind"] == "interrupted"
    [parent] = parents(store)
    assert parent.info.status == "KILLED"
    marker = ":".join(kid.data.tags[f"driver.{k}"] for k in ("host", "pid", "started"))
    assert not _marked(marker)                      # Parsl's processes were stopped


def test_a_sweep_on_a_terminal_streams_its_progress_and_errors(store: Store,
                                                                tmp_path: Path) -> None:
    """stderr is a terminal: the live progress line is drawn while the jobs run, and a
    failed job's error line is written as it happens (Hydra's held-back error text is
    released once the sweep starts)."""
    import pty
    import select

    main, child = pty.openpty()
    argv = [sys.executable, str(ROOT / "run.py"), "-m", "bench=sleep",
            "bench.params.seconds=1", "bench.params.exit=0,3", "hydra.launcher.concurrency=1",
            *store.overrides(), f"hydra.sweep.dir={tmp_path}/m"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=child, env=child_env(), cwd=tmp_path)
    os.close(child)
    seen, first_error_while_running = b"", None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if first_error_while_running is None and b"[run " in seen and b"FAILED]" in seen:
                first_error_while_running = proc.poll() is None
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(main)
    text = seen.decode(errors="replace")
    assert proc.returncode == 1, text[-2000:]
    assert "jobs  ok" in text and "[local x1]" in text, text[-2000:]      # the progress line
    assert first_error_while_running, text[-2000:]     # streamed, not held to the end
