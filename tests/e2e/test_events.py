"""Task state transitions (events.csv) and the throughput / utilization analytics."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from runners.analysis import throughput as ev
from tests.support import RunPy, Store


def synthetic() -> pd.DataFrame:
    """Two workers; tasks a, b run at once, then c; d fails while launched."""
    rows = []
    for task, start, end in (("a", 10.0, 12.0), ("b", 10.5, 13.0), ("c", 12.0, 15.0)):
        rows += [(task, "submitted", 9.0), (task, "launched", start - 0.1),
                 (task, "running", start), (task, "done", end)]
    rows += [("d", "submitted", 9.0), ("d", "launched", 13.0), ("d", "failed", 14.0)]
    return pd.DataFrame(rows, columns=["task", "state", "time"])


def test_throughput_counts_completed_tasks_over_time() -> None:
    tp = ev.throughput(synthetic())
    assert tp["completed"].tolist() == [0, 1, 2, 3]
    assert tp["time"].tolist() == [0.0, 3.0, 4.0, 6.0]      # since the first event at 9 s


def test_utilization_counts_tasks_running_at_once() -> None:
    util = ev.utilization(synthetic())
    assert util["busy"].max() == 2
    at = dict(zip(util["time"], util["busy"], strict=False))
    assert at[1.5] == 2 and at[6.0] == 0     # a and b overlap; all ended at 15 s
    s = ev.summary(synthetic())
    assert (s["tasks"], s["completed"], s["failed"]) == (4, 3, 1)
    assert s["makespan_s"] == 6.0 and s["peak_busy"] == 2
    busy_seconds = 2 + 2.5 + 3 + 1           # a, b, c running; d launched → failed
    assert s["mean_busy"] == pytest.approx(busy_seconds / 6.0)


def test_runs_concatenated_keep_tasks_apart() -> None:
    both = pd.concat([synthetic().assign(run_id="r1"), synthetic().assign(run_id="r2")])
    assert ev.summary(both)["tasks"] == 8 and ev.utilization(both)["busy"].max() == 4


@pytest.mark.e2e
def test_a_run_records_its_task_transitions(run_py: RunPy, store: Store,
                                            tmp_path: Path) -> None:
    run_py("bench=sleep", "bench.params.seconds=0.2", "bench.trials=2", "bench.warmup=1",
           *store.overrides(), check=True)
    run = store.runs("sleep")[0]
    local = store.client().download_artifacts(run.info.run_id, "events/events.csv",
                                              str(tmp_path))
    with open(local) as fh:
        rows = list(csv.DictReader(fh))
    tasks = {r["task"] for r in rows}
    assert tasks == {"run_trial#0", "run_trial#1", "run_trial#2"}     # warm-up + 2 trials
    for task in tasks:
        states = [r["state"] for r in rows if r["task"] == task]
        assert states == ["submitted", "launched", "running", "done"], states
    running = [r for r in rows if r["state"] == "running"]
    assert all(r["executor"] == "local" and r["block"] == "0" for r in running)
    s = ev.summary(pd.DataFrame(rows).astype({"time": float}))
    assert s["completed"] == 3 and s["peak_busy"] == 1       # the trials are chained


@pytest.mark.e2e
def test_bench_analytics_on_a_sweep(run_py: RunPy, store: Store, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from runners.cli.main import main

    run_py("-m", "bench=sleep", "bench.params.seconds=1", "+bench.params.k=1,2,3,4",
           *store.overrides(), check=True)
    parent = [r for r in store.runs("sleep") if "mlflow.parentRunId" not in r.data.tags][0]
    out = tmp_path / "analytics"
    rc = main(["analytics", "--tracking-uri", store.uri, "--sweep-id",
               parent.data.tags["sweep.id"], "--output", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "4 tasks (4 completed, 0 failed)" in text and "peak 2" in text   # 2 workers
    assert (out / "throughput.png").stat().st_size > 1000
    assert (out / "utilization.png").stat().st_size > 1000

    assert main(["analytics", "--tracking-uri", store.uri]) == 2
    assert main(["analytics", "--tracking-uri", store.uri, "--sweep-id", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: no runs with sweep.id='nope' in {store.uri}"
